"""XDF files (LabRecorder) through pyxdf: one EMG stream as the recording, the rest alongside it.

The EMG stream is the one named by ``stream`` (stream name, else stream type), else the only stream of type EMG,
else the only regularly sampled numeric stream. Every string stream (markers) goes into ``markers``; every other
numeric stream (e.g. the monitor's decisions, fatigue, quality) into ``other_streams`` by name. pyxdf aligns all
streams on one clock, so their timestamps compare directly. Units come from the stream description's channel
``unit`` entries (``scale`` replaces them); the electrode layout from its ``layout`` entry (as the amplifier writes
it) or the ``layout`` option. A file cut short (a crashed recorder) reads up to its last complete chunk.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import (
    Recording,
    error_summary,
    layout_by_name,
    microvolts_per_unit,
    reject_unknown_options,
    select_channels,
)
from monitor.recordings.otb import FORCE_KEY

OPTIONS = ("stream", "channels", "scale", "layout", "fs")

log = logging.getLogger(__name__)
_PYXDF_LOGGER = logging.getLogger("pyxdf")
_PYXDF_LOCK = threading.Lock()  # the logger is process-wide: one load at a time re-routes it


def read(path: Path, **options: Any) -> Recording:
    reject_unknown_options(options, OPTIONS, "XDF")
    streams = _load(path)
    emg = _choose_stream(streams, options.get("stream"), path.name)
    info = emg["info"]
    values = np.asarray(emg["time_series"])
    timestamps = np.asarray(emg["time_stamps"], dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise UserError(f"{path.name}: stream {_name(emg)!r} holds no samples")
    fs = options.get("fs") or float(_first(info, "nominal_srate", "0"))
    if not fs:
        raise UserError(f"{path.name}: stream {_name(emg)!r} has no nominal rate; --fs supplies it")
    description = _channel_descriptions(info, values.shape[1])
    labels = [entry.get("label") or f"ch{i + 1}" for i, entry in enumerate(description)]
    # channels typed other than EMG (a replay's force in %MVC, a test player's sample index) are not electrodes:
    # left out unless --channels names them, a %MVC one kept as the recording's force, as the OTB reader keeps it
    typed_other = [i for i, entry in enumerate(description) if entry.get("type", "EMG").upper() != "EMG"]
    if options.get("channels") is None and typed_other and len(typed_other) < len(labels):
        chosen = [i for i in range(len(labels)) if i not in typed_other]
    else:
        chosen = select_channels(options.get("channels"), labels, path.name)
    force = [i for i in typed_other if "MVC" in description[i].get("unit", "").upper() and i not in chosen]
    auxiliary = {FORCE_KEY: values[:, force[0]].astype(np.float32)} if force else {}
    units = [description[i].get("unit", "") for i in chosen]
    scales = np.array([_scale(labels[i], units[k], options.get("scale"), path.name) for k, i in enumerate(chosen)])
    # the stream's layout describes its electrodes: all of them, or all but the channels typed other than EMG
    electrodes = [i for i in range(values.shape[1]) if i not in typed_other] if typed_other else None
    whole_stream = chosen in (list(range(values.shape[1])), electrodes)
    layout = _layout(info, options.get("layout"), len(chosen), whole_stream, path.name)
    markers: list[tuple[float, str]] = []
    others: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for stream in streams:
        if stream is emg:
            continue
        if _first(stream["info"], "channel_format", "") == "string":
            markers.extend((float(t), str(v[0])) for t, v in zip(stream["time_stamps"], stream["time_series"],
                                                                 strict=False))
        else:
            others[_name(stream)] = (np.asarray(stream["time_stamps"]), np.asarray(stream["time_series"]))
    markers.sort(key=lambda marker: marker[0])
    return Recording(
        data=values[:, chosen].astype(np.float64) * scales[None, :],
        timestamps=timestamps,
        fs=float(fs),
        channel_labels=[labels[i] for i in chosen],
        units=units,
        layout=layout,
        markers=markers,
        source=path,
        other_streams=others,
        auxiliary=auxiliary,
    )


class _OneLineRelay(logging.Handler):
    """pyxdf's log records, each as one line of ours: the message and the recovered error's first line, without the
    traceback pyxdf attaches (logger.exception for each damaged chunk it skips)."""

    def __init__(self, file_name: str) -> None:
        super().__init__()
        self.file_name = file_name

    def emit(self, record: logging.LogRecord) -> None:
        error = record.exc_info[1] if record.exc_info else None
        cause = "" if error is None else f" ({type(error).__name__}: {error_summary(error)})"
        log.log(record.levelno, "%s: pyxdf: %s%s", self.file_name, record.getMessage(), cause)


@contextmanager
def _pyxdf_in_one_line(file_name: str) -> Iterator[None]:
    """Around load_xdf: pyxdf's records go out as one line each, without a traceback. monitor/cli.py's formatter
    does this for the main process only; `analyze FOLDER` reads files in Dask worker processes whose handlers print
    the whole traceback. With -v (root at DEBUG) pyxdf's records pass unchanged, tracebacks included."""
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        yield
        return
    relay = _OneLineRelay(file_name)
    with _PYXDF_LOCK:
        propagate = _PYXDF_LOGGER.propagate
        _PYXDF_LOGGER.addHandler(relay)
        _PYXDF_LOGGER.propagate = False
        try:
            yield
        finally:
            _PYXDF_LOGGER.removeHandler(relay)
            _PYXDF_LOGGER.propagate = propagate


def _load(path: Path) -> list[dict[str, Any]]:
    import pyxdf

    try:
        with _pyxdf_in_one_line(path.name):
            streams, _header = pyxdf.load_xdf(str(path))
    except Exception as error:  # pyxdf raises anything from IOError to struct/XML errors on a damaged file
        raise UserError(f"{path.name}: not a readable XDF file ({error_summary(error)})") from None
    if not streams:
        raise UserError(f"{path.name}: the XDF file holds no streams (empty or cut off before any stream header)")
    return streams


def _first(info: dict[str, Any], key: str, default: str) -> str:
    value = info.get(key)
    return str(value[0]) if value else default


def _name(stream: dict[str, Any]) -> str:
    return _first(stream["info"], "name", "?")


def _describe(streams: list[dict[str, Any]]) -> str:
    return ", ".join(f"{_name(s)!r} ({_first(s['info'], 'type', '?')})" for s in streams)


def _choose_stream(streams: list[dict[str, Any]], wanted: str | None, file_name: str) -> dict[str, Any]:
    if wanted is not None:
        for field in ("name", "type"):
            matches = [s for s in streams if _first(s["info"], field, "").lower() == wanted.lower()]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise UserError(f"{file_name}: several streams have {field} {wanted!r}; --stream names one by name")
        raise UserError(f"{file_name}: no stream named or typed {wanted!r} (--stream); streams: {_describe(streams)}")
    numeric = [s for s in streams if _first(s["info"], "channel_format", "") != "string"]
    emg = [s for s in numeric if _first(s["info"], "type", "").upper() == "EMG"]
    regular = [s for s in numeric if float(_first(s["info"], "nominal_srate", "0")) > 0]
    for candidates in (emg, regular):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise UserError(f"{file_name}: several candidate EMG streams; --stream picks one: {_describe(candidates)}")
    raise UserError(f"{file_name}: no numeric sampled stream to read as EMG; streams: {_describe(streams)}")


def _channel_descriptions(info: dict[str, Any], n_channels: int) -> list[dict[str, str]]:
    """Per-channel label/unit/type from the XDF-style <desc><channels><channel> block, if present and complete."""
    try:
        channels = info["desc"][0]["channels"][0]["channel"]
        entries = [{key: str(value[0]) for key, value in channel.items() if value} for channel in channels]
    except (KeyError, IndexError, TypeError, AttributeError):
        entries = []
    return entries if len(entries) == n_channels else [{} for _ in range(n_channels)]


def _scale(label: str, unit: str, scale_option: float | None, file_name: str) -> float:
    if scale_option is not None:
        return float(scale_option)
    scale = microvolts_per_unit(unit)
    if scale is None:
        found = f"unit {unit!r}" if unit else "no unit"
        raise UserError(
            f"{file_name}: channel {label!r} has {found} in the stream description; --scale gives microvolts per unit"
        )
    return scale


def _layout(
    info: dict[str, Any], name: str | None, n_chosen: int, whole_stream: bool, file_name: str
) -> dict[str, Any] | None:
    if name:
        return layout_by_name(name, n_chosen, file_name)
    try:
        text = info["desc"][0]["layout"][0]
    except (KeyError, IndexError, TypeError):
        return None
    try:
        layout = json.loads(text)
    except (json.JSONDecodeError, TypeError):
        raise UserError(f"{file_name}: the stream's layout entry is not valid JSON; --layout supplies one") from None
    # a channel subset no longer matches the whole grid's layout
    return layout if isinstance(layout, dict) and whole_stream else None
