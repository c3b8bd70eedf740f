"""Mains interference taken out of a needle recording before MUP analysis, without a notch filter.

Clinical needle recordings often carry mains at the amplitude of the MUPs themselves (up to ~1 mV at 50 Hz in
the shared clinical set's biceps files, tens to hundreds of µV in most). A median template does not cancel it:
spike detection triggers preferentially on the mains peaks, so discharges are partly phase-locked to it and the
templates wander by hundreds of µV, which the onset/end criterion then measures (MUPs of 0 or 30 ms). Notch filters
ring on MUPs and cut the band of their slow phases (docs/needle-emg.md), so the mains is instead *fitted and
subtracted*: the fundamental (50 or 60 Hz, its exact frequency estimated from the recording) and its harmonics up
to ``MAX_HARMONIC_HZ`` by least squares over the whole recording. MUPs are not time-locked to mains, so over a
5 s recording (250 cycles) they barely move the fit (a few µV), and a recording without mains is left as it is.
"""

from __future__ import annotations

import numpy as np

MAINS_CANDIDATES_HZ = (50.0, 60.0)
MAX_HARMONIC_HZ = 1000.0
SEARCH_HZ = 0.5  # mains frequency deviates by well under this from its nominal value
MIN_PROMINENCE = 10.0  # fundamental power over the median power nearby: below it there is no mains to remove
MIN_SECONDS = 0.5


def _power_at(x: np.ndarray, fs: float, frequencies: np.ndarray) -> np.ndarray:
    """|DFT|^2 of ``x`` at arbitrary frequencies (Hz)."""
    t = np.arange(x.size) / fs
    # an explicit sum, not a matrix product: BLAS threads on a busy machine made this 20x slower
    return np.abs((np.exp(-2j * np.pi * np.outer(frequencies, t)) * x).sum(axis=1)) ** 2


def mains_frequency(x: np.ndarray, fs: float) -> float | None:
    """The mains fundamental of a 1-D recording (Hz, to ~1 mHz), or None where no mains stands out."""
    if x.size < MIN_SECONDS * fs:
        return None
    # the search looks at 50-180 Hz only: block means down to ~500 Hz make it ~30x cheaper (a block of ~2 ms
    # keeps 80 % of a 180 Hz amplitude, and only where the power peaks matters)
    block = max(1, int(fs // 512))
    x = x[: x.size // block * block].reshape(-1, block).mean(axis=1)
    fs = fs / block
    x = x - x.mean()
    best: tuple[float, float] | None = None
    for nominal in MAINS_CANDIDATES_HZ:
        grid = np.linspace(nominal - SEARCH_HZ, nominal + SEARCH_HZ, 41)
        power = _power_at(x, fs, grid)
        around = _power_at(x, fs, nominal + np.array([-9.0, -7.0, -5.0, -3.0, 3.0, 5.0, 7.0, 9.0]))
        prominence = power.max() / max(float(np.median(around)), 1e-12)
        if prominence >= MIN_PROMINENCE and (best is None or prominence > best[1]):
            best = (float(grid[np.argmax(power)]), prominence)
    if best is None:
        return None
    # refine on the first harmonics together (their phases must stay fitted over the whole recording)
    centre, step = best[0], 2 * SEARCH_HZ / 40
    for _ in range(3):
        grid = centre + np.linspace(-step, step, 21)
        power = sum(_power_at(x, fs, k * grid) for k in (1, 2, 3))
        centre, step = float(grid[np.argmax(power)]), step / 10
    return centre


def remove_mains(x: np.ndarray, fs: float) -> np.ndarray:
    """``x`` (n,) or (n, C) with each channel's mains (fundamental and harmonics up to ``MAX_HARMONIC_HZ``,
    least-squares sinusoids at the frequency found in that channel) subtracted; channels without mains unchanged."""
    x = np.asarray(x, dtype=np.float64)
    columns = x[:, None] if x.ndim == 1 else x
    out = columns.copy()
    for channel in range(columns.shape[1]):
        fundamental = mains_frequency(columns[:, channel], fs)
        if fundamental is None:
            continue
        count = int(min(MAX_HARMONIC_HZ, 0.45 * fs) // fundamental)
        out[:, channel] -= mains_waveform(columns[:, channel], fs, fundamental, count)
    return out[:, 0] if x.ndim == 1 else out


def mains_waveform(x: np.ndarray, fs: float, fundamental: float, harmonics: int, bins: int = 512) -> np.ndarray:
    """The least-squares fit of ``harmonics`` harmonics of ``fundamental`` to ``x`` (1-D), evaluated at every
    sample. Synchronous averaging: the samples are binned by their phase in the mains cycle and averaged (the
    MUPs, not locked to mains, average out), the cycle's first harmonics are taken from its FFT and the cycle
    is read back at each sample's phase; linear in the number of samples, unlike one projection per harmonic."""
    phase = (np.arange(x.size) * (fundamental / fs)) % 1.0
    index = np.minimum((phase * bins).astype(np.int64), bins - 1)
    counts = np.bincount(index, minlength=bins)
    sums = np.bincount(index, weights=x - x.mean(), minlength=bins)
    cycle = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
    spectrum = np.fft.rfft(cycle)
    spectrum[0] = 0.0
    spectrum[harmonics + 1 :] = 0.0
    # bin b holds phases [b, b + 1) / bins: the fitted cycle sits at the bins' centres
    fitted = np.fft.irfft(spectrum, bins)
    centres = (np.arange(bins) + 0.5) / bins
    return np.interp(phase, centres, fitted, period=1.0)
