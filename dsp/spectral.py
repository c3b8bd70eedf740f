"""Welch's power spectral density in one pass of numpy, for the live and per-window paths.

``scipy.signal.welch`` in scipy 1.17 runs through its ShortTimeFFT and detrends segment by segment: ~3.5x the CPU of
the same arithmetic done on all segments at once (256 channels x 2 s: 25 -> 7 ms a call; it was a third of the
window view's CPU). This is that arithmetic, scipy's defaults only: Hann window, 50 % overlap, each segment's mean
removed, one-sided density in units²/Hz, segments averaged by their mean. Equal to scipy's to float rounding
(tests/dsp/test_spectral.py).
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import get_window


def welch(x: np.ndarray, fs: float, nperseg: int, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``scipy.signal.welch(x, fs, nperseg=nperseg, axis=axis)`` -> (frequencies, PSD with the frequencies along
    ``axis``), in the samples' precision (float32 stays float32). A ``nperseg`` longer than the signal is cut to the
    signal's length, as scipy does (without its warning)."""
    # time first: the segments are then views whose other axes keep the input's memory order (time last made the
    # subtraction and FFT below 3.5x slower on a (samples, 256 channels) window)
    x = np.moveaxis(np.asarray(x), axis, 0)
    segment = int(min(nperseg, x.shape[0]))
    if segment < 1:
        raise ValueError("welch needs at least one sample along the axis")
    step = segment - segment // 2
    count = (x.shape[0] - segment) // step + 1
    dtype = np.result_type(x.dtype, np.float32)
    window = hann(segment).astype(dtype)
    frames = np.lib.stride_tricks.sliding_window_view(x, segment, axis=0)[::step][:count]  # (K, ..., S) view
    frames = frames - frames.mean(axis=-1, keepdims=True, dtype=dtype).astype(dtype, copy=False)
    frames *= window
    spectrum = sp_fft.rfft(frames, axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    psd = power.mean(axis=0) * dtype.type(1.0 / (fs * float(np.sum(np.square(window, dtype=np.float64)))))
    psd[..., 1 : None if segment % 2 else -1] *= 2  # one-sided: every bin but DC (and Nyquist) counts twice
    return sp_fft.rfftfreq(segment, 1.0 / fs), np.moveaxis(psd, -1, axis)


@functools.cache
def hann(length: int) -> np.ndarray:
    """The periodic Hann window scipy's spectral functions use (``get_window("hann", length)``), kept per length."""
    return get_window("hann", length)
