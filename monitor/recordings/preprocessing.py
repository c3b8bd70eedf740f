"""The preprocessing summary (the paper's step 16): what was done to a recording before any model saw it.

``analyze`` and ``train`` write it (``preprocessing.json`` and a Markdown section): the filters with their
parameters and their measured response (-3 dB band edges, depth at each notch, from the chain actually built),
the mains frequency found in the raw signal next to the one notched, the channels masked and why, and how many
windows were kept or dropped and why. The filter figures come from ``scipy.signal.sosfreqz`` of the chain's own
sections, so the summary cannot drift from the code that filters.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np

#: seconds of raw signal searched for the mains line (a 1 Hz-resolution Welch spectrum needs a few)
MAINS_SEARCH_S = 30.0
#: a harmonic counts as notched where the chain attenuates it by more than this
NOTCHED_BELOW_DB = -20.0
#: depths are reported down to this (an IIR notch's centre is an exact zero: -inf dB)
DEPTH_FLOOR_DB = -120.0


def _db(response: np.ndarray) -> np.ndarray:
    return 20.0 * np.log10(np.maximum(np.abs(response), 1e-30))


def _default(function: Any, name: str) -> Any:
    return inspect.signature(function).parameters[name].default


def describe_filters(fs: float, n_channels: int, mode: str = "surface", mains_hz: float | None = 50.0,
                     low_hz: float = 20.0, high_hz: float = 450.0, adaptive_mains: bool = False,
                     adaptive_baseline: bool = False) -> dict[str, Any]:  # fmt: skip
    """The monitor's filter chain for these settings, described and measured (``dsp.filters.default_chain``)."""
    from scipy import signal

    from dsp.filters import default_chain, notch

    notched_hz = None if adaptive_mains else mains_hz
    chain = default_chain(fs, n_channels, mode=mode, mains_hz=notched_hz, low_hz=low_hz, high_hz=high_hz)
    # the band (and the attenuation the band-pass alone gives each harmonic) from the chain without its notches
    plain = default_chain(fs, n_channels, mode=mode, mains_hz=None, low_hz=low_hz, high_hz=high_hz)
    frequencies, response = signal.sosfreqz(plain.sos, worN=16384, fs=fs)
    gain_db = _db(response)
    passing = np.flatnonzero(gain_db >= gain_db.max() - 3.0)
    order = _default(default_chain, "order")
    described: dict[str, Any] = {
        "causal": True,
        "mode": mode,
        "kind": (f"Butterworth band-pass, order {order} per edge" if mode == "surface"
                 else f"Butterworth high-pass, order {order}"),  # fmt: skip
        "requested_hz": [low_hz, high_hz] if mode == "surface" else [low_hz],
        "band_edges_3db_hz": [round(float(frequencies[passing[0]]), 1), round(float(frequencies[passing[-1]]), 1)],
        "sections": int(chain.sos.shape[0]),
        "notch": None,
        "adaptive_mains_canceller": bool(adaptive_mains and mains_hz),
        "adaptive_baseline": bool(adaptive_baseline),
    }
    if notched_hz:
        harmonics = notched_hz * np.arange(1, int(fs / 2 // notched_hz) + 1)
        harmonics = harmonics[harmonics < fs / 2]
        # a notch's own depth: the whole chain's gain there minus what the band-pass alone gives
        depth = _db(signal.sosfreqz(chain.sos, worN=harmonics, fs=fs)[1]) - _db(
            signal.sosfreqz(plain.sos, worN=harmonics, fs=fs)[1]
        )
        depth = np.maximum(depth, DEPTH_FLOOR_DB)  # a notch's centre is an exact zero: -inf dB
        notched = depth < NOTCHED_BELOW_DB
        described["notch"] = {
            "mains_hz": notched_hz,
            "quality": _default(notch, "quality"),
            "frequencies_hz": [round(float(f), 1) for f in harmonics[notched]],
            "depth_db": [round(float(d), 1) for d in depth[notched]],
        }
    return described


def mains_found(raw: np.ndarray, fs: float) -> float | None:
    """50.0, 60.0 or None: the mains line in the first ``MAINS_SEARCH_S`` of raw signal (dsp.filters.detect_mains)."""
    from dsp.filters import detect_mains

    return detect_mains(np.asarray(raw)[: int(MAINS_SEARCH_S * fs)], fs)


def mains_advice(found: float | None, notched: float | None, adaptive_hz: float | None = None) -> str | None:
    """A sentence when the notch does not match the mains in the signal (None when it does)."""
    if found is None or adaptive_hz is not None:
        return None
    if notched is None:
        return f"{found:g} Hz mains found in the signal but no notch was applied"
    if abs(found - notched) > 1.0:
        return f"{found:g} Hz mains found in the signal but the notch was set to {notched:g} Hz"
    return None


def expected_windows(n_samples: int, window_samples: int, hop_samples: int, skip_samples: int = 0) -> int:
    """Windows a gap-free stream of ``n_samples`` yields (the first ends at ``skip_samples + window_samples``)."""
    first_end = skip_samples + window_samples
    return 0 if n_samples < first_end else (n_samples - first_end) // hop_samples + 1


def aligned_windows(n_samples: int, window_samples: int, hop_samples: int) -> int:
    """Windows the engine cuts from a gap-free stream: they end at every multiple of the hop from one full window
    on (``dsp.windows.Windower``: counter-aligned, so live and offline cut the same windows)."""
    first_end = -(-window_samples // hop_samples) * hop_samples
    return max(0, (n_samples - first_end) // hop_samples + 1) if n_samples >= first_end else 0


def markdown(summary: dict[str, Any]) -> str:
    """The summary as a Markdown section (for report.md and the training folder's preprocessing.md)."""
    filters = summary["filters"]
    lines = ["## Preprocessing", "", "| | |", "| --- | --- |"]
    band = "–".join(f"{edge:g}" for edge in filters["band_edges_3db_hz"])
    requested = ", ".join(f"{value:g}" for value in filters["requested_hz"])
    lines.append(f"| filters (causal) | {filters['kind']}, requested {requested} Hz, measured -3 dB band {band} Hz, "
                 f"{filters['sections']} second-order sections |")  # fmt: skip
    notch = filters.get("notch")
    if notch:
        if notch["depth_db"] and max(notch["depth_db"]) <= DEPTH_FLOOR_DB:
            depths = (f"{', '.join(f'{f:g}' for f in notch['frequencies_hz'])} Hz, each at least "
                      f"{-DEPTH_FLOOR_DB:.0f} dB deep at its centre")  # fmt: skip
        else:
            depths = ", ".join(f"{f:g} Hz {'<= ' if d <= DEPTH_FLOOR_DB else ''}{d:.0f} dB"
                               for f, d in zip(notch["frequencies_hz"], notch["depth_db"], strict=True))  # fmt: skip
        lines.append(f"| notch | mains {notch['mains_hz']:g} Hz and harmonics in the band, Q {notch['quality']:g}: "
                     f"{depths or 'none inside the band'} |")  # fmt: skip
    elif filters.get("adaptive_mains_canceller"):
        lines.append("| notch | none: adaptive mains canceller (LMS locked to the tracked mains frequency) |")
    else:
        lines.append("| notch | none |")
    if filters.get("adaptive_baseline"):
        lines.append("| baseline | adaptive baseline removal before the filters |")
    mains = summary.get("mains", {})
    found = mains.get("found_hz")
    text = "no mains line found" if found is None else f"{found:g} Hz line found in the raw signal"
    if mains.get("tracked_hz") is not None:
        text += f"; canceller tracked {mains['tracked_hz']:.2f} Hz at the end"
    if mains.get("advice"):
        text += f" — **{mains['advice']}**"
    lines.append(f"| mains | {text} |")
    masked = summary.get("channels_masked", {})
    if masked:
        parts = [f"{name}: {info['windows']} windows ({', '.join(f'{r} {n}' for r, n in info['reasons'].items())})"
                 for name, info in masked.items()]  # fmt: skip
        lines.append(f"| channels masked | {'; '.join(parts)} |")
    else:
        lines.append(f"| channels masked | {summary.get('channels_masked_note', 'none')} |")
    windows = summary.get("windows", {})
    if windows:
        lines.append(f"| windows | {windows_sentence(windows)} |")
    return "\n".join(lines) + "\n"


def windows_sentence(windows: dict[str, Any]) -> str:
    if "possible" not in windows:
        return f"{windows['kept']} kept ({windows.get('note', '')})"
    parts = [f"{windows['kept']} kept of {windows['possible']} possible"]
    for reason, count in windows.get("dropped", {}).items():
        if count:
            parts.append(f"{count} dropped: {reason}")
    if windows.get("with_masked_channels"):
        parts.append(f"{windows['with_masked_channels']} with masked channels (judged on the others)")
    if windows.get("without_usable_channels"):
        parts.append(f"{windows['without_usable_channels']} without any usable channel")
    for reason, count in windows.get("not_decided", {}).items():
        if count:
            parts.append(f"{count} without a model decision: {reason}")
    return "; ".join(parts)


def training_summary(args: Any, train: Any, validation: Any, test: Any) -> dict[str, Any]:
    """The preprocessing behind `neurofusion train`'s windows (``monitor.commands.train.load_split``'s options).

    Recordings are read again for the raw-signal figures (mains, quality): training keeps only windows, and
    re-reading costs far less than the training itself."""
    from models.datasets import cut_windows

    first = train if len(train) else test
    simulated = args.data == "simulator"
    hop_ms = args.hop_ms or (100.0 if simulated else 50.0)
    # the notch datasets.filter_like_pipeline applied to every training window (simulated subjects: its default)
    notched = 50.0 if simulated else args.mains
    summary: dict[str, Any] = {
        "filters": describe_filters(first.fs, first.n_channels, args.mode, notched),
        "window_ms": args.window_ms,
        "hop_ms": hop_ms,
        "windows_by_split": {"train": len(train), "validation": len(validation), "test": len(test)},
        "channels_masked_note": "none: training windows are never masked (flags below are what the monitor would mask)",
    }
    if simulated:
        summary["mains"] = {"found_hz": None, "notched_hz": notched, "note": "simulated subjects: no mains line"}
        summary["windows"] = {"kept": len(train) + len(validation) + len(test),
                              "note": "only windows entirely inside a simulated contraction are kept"}  # fmt: skip
        return summary
    from monitor.recordings import open_recording
    from monitor.recordings.analysis import _QualityTally

    options = train.description.get("reader_options", {})
    skip = {"possible": 0, "kept": 0, "settling": 0, "label change": 0}
    recordings, found_any = [], set()
    for path in train.description.get("files", []):
        recording = open_recording(Path(path), **options)
        fs, n = recording.fs, recording.n_samples
        window, hop = int(round(args.window_ms * fs / 1000)), max(1, int(round(hop_ms * fs / 1000)))
        settle = int(0.2 * fs)  # models.datasets.windows_from_recording skips this much
        _, _, ends = cut_windows(np.zeros((n, 1), np.float32), np.asarray(recording.labels), window, hop, settle)
        possible, after_settling = expected_windows(n, window, hop), expected_windows(n, window, hop, settle)
        found = mains_found(recording.data, fs)
        found_any.add(found)
        quality = _QualityTally(fs, recording.n_channels)
        quality.update(recording.data, recording.timestamps)
        recordings.append({"file": str(path), "seconds": round(n / fs, 2), "mains_found_hz": found,
                           "windows_possible": possible, "windows_kept": int(len(ends)),
                           "quality_flags": quality.issues(recording.channel_labels)})  # fmt: skip
        skip["possible"] += possible
        skip["kept"] += int(len(ends))
        skip["settling"] += possible - after_settling
        skip["label change"] += after_settling - int(len(ends))
    found = next((f for f in sorted(found_any, key=str) if f is not None), None)
    summary["mains"] = {"found_hz": found, "notched_hz": notched, "advice": mains_advice(found, notched)}
    summary["windows"] = {
        "possible": skip["possible"], "kept": skip["kept"],
        "dropped": {"first 0.2 s of each recording (filter settling)": skip["settling"],
                    "straddling a label change": skip["label change"]},
    }  # fmt: skip
    summary["recordings"] = recordings
    return summary


def write_training_summary(args: Any, train: Any, validation: Any, test: Any, out: Path) -> Path:
    """``preprocessing.json`` and ``preprocessing.md`` in the training folder; returns the Markdown path."""
    import json

    summary = training_summary(args, train, validation, test)
    out.mkdir(parents=True, exist_ok=True)
    (out / "preprocessing.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [markdown(summary)]
    split = summary["windows_by_split"]
    lines.append(f"Windows of {summary['window_ms']:g} ms every {summary['hop_ms']:g} ms: {split['train']} training, "
                 f"{split['validation']} validation, {split['test']} test.\n")  # fmt: skip
    for recording in summary.get("recordings", []):
        flags = "; ".join(recording["quality_flags"]) or "no quality flags"
        lines.append(f"- {recording['file']}: {recording['seconds']:g} s, {recording['windows_kept']} of "
                     f"{recording['windows_possible']} windows kept, mains {recording['mains_found_hz'] or 'none'}"
                     f"{' Hz' if recording['mains_found_hz'] else ''}, {flags}")  # fmt: skip
    path = out / "preprocessing.md"
    path.write_text("\n".join(lines) + "\n")
    return path
