"""Inputs for the model tests."""

from __future__ import annotations


def emg_windows(n_windows: int, n_channels: int, n_samples: int, fs: float = 2048.0, seed: int = 0):
    """Band-limited noise at EMG amplitudes with a different gain per channel."""
    import numpy as np
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    noise = rng.standard_normal((n_windows, n_channels, n_samples + 300))
    sos = butter(4, [20, min(450, 0.45 * fs)], btype="bandpass", fs=fs, output="sos")
    filtered = sosfilt(sos, noise, axis=-1)[..., 300:]
    return (filtered * rng.uniform(10, 300, size=(n_windows, n_channels, 1))).astype(np.float32)
