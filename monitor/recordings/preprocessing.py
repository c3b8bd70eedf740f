"""The preprocessing summary (the paper's step 16): what was done to a recording before any model saw it.

``analyze`` and ``train`` write it (``preprocessing.json`` and a Markdown section): the filters with their
parameters and their measured response (-3 dB band edges, depth at each notch, from the chain actually built),
the mains frequency found in the raw signal next to the one notched, the channels masked and why, and how many
windows were kept or dropped and why. The filter figures come from ``scipy.signal.sosfreqz`` of the chain's own
sections, so the summary cannot drift from the code that filters.
"""

from __future__ import annotations

import inspect
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
