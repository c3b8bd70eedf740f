"""Rate conversion with a proper anti-alias filter, and the one rate the needle path works at.

Needle recordings arrive at 4-32 kHz. The MUP analysis and the needle condition model both work at
``NEEDLE_FS``: 32768 Hz halves to it exactly, and it keeps the spike band a clinical 10 kHz low-pass passes
(a 4 kHz recording is upsampled and simply carries nothing above its own Nyquist frequency).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from scipy.signal import resample_poly

NEEDLE_FS = 16384.0
LOWEST_NEEDLE_FS = 4000.0
HIGHEST_NEEDLE_FS = 32768.0 * 1.01


def rational_ratio(fs_in: float, fs_out: float, max_denominator: int = 4096) -> tuple[int, int]:
    """(up, down) integers with up / down == fs_out / fs_in to within 1e-6 (ValueError otherwise)."""
    if not (np.isfinite(fs_in) and np.isfinite(fs_out) and fs_in > 0 and fs_out > 0):
        raise ValueError(f"sampling rates must be positive numbers, not {fs_in!r} -> {fs_out!r}")
    ratio = Fraction(fs_out / fs_in).limit_denominator(max_denominator)
    if abs(float(ratio) - fs_out / fs_in) > 1e-6 * fs_out / fs_in:
        raise ValueError(f"no exact rational ratio for {fs_in:g} -> {fs_out:g} Hz")
    return ratio.numerator, ratio.denominator


def resample(signal: np.ndarray, fs_in: float, fs_out: float, axis: int = 0) -> np.ndarray:
    """``signal`` at ``fs_out``: polyphase FIR (Kaiser window, beta 5) whose cut-off sits at the lower Nyquist.

    Zero phase (a recording, not a stream): a MUP's onset and end stay where they were. float32 out.
    """
    signal = np.asarray(signal, dtype=np.float64)
    up, down = rational_ratio(fs_in, fs_out)
    if up == down:
        return signal.astype(np.float32)
    return resample_poly(signal, up, down, axis=axis, window=("kaiser", 5.0)).astype(np.float32)


def to_needle_rate(signal: np.ndarray, fs: float) -> np.ndarray:
    """A needle recording (4-32 kHz) at ``NEEDLE_FS``; ValueError with one line for a rate outside that band."""
    if not LOWEST_NEEDLE_FS <= fs <= HIGHEST_NEEDLE_FS:
        raise ValueError(
            f"needle EMG needs 4-32 kHz; this recording is {fs:g} Hz (check --fs, or use --mode surface)"
        )
    return resample(signal, fs, NEEDLE_FS)
