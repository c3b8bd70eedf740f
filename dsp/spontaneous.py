"""Spontaneous potentials in a needle EMG stretch the rest gate calls relaxed: fibrillation potentials and positive
sharp waves are the hallmark of denervated (or necrotic) muscle fibres and are looked for *at rest* (Daube & Rubin
2009, "Needle electromyography", Muscle Nerve 39:244-270). The live gate (monitor.needle_live) gives a relaxed
muscle no condition verdict, rightly: the condition model was trained on contractions. This flags what that gate
would otherwise hide in silence, so the clinician looks at the trace; it does not tell fibrillations from positive
sharp waves, fasciculations or end-plate spikes, and it is not a diagnosis.

Rule (ours, checked on the simulator's denervated fibres, ``simulators.fibres.fibrillating_fibres``, and against
the healthy simulated rest; no labelled real recording at rest is at hand): in the engine's needle-mode signal
(20 Hz high-pass, mains notches), peaks of |x| above ``noise_factor`` robust noise SDs (median |x| / 0.6745) and
at least ``dead_ms`` apart whose peak-to-peak amplitude within +-``half_window_ms`` is at least
``min_amplitude_uv``; ``min_count`` of them in the stretch flag it. 20 µV is the lower end of the amplitudes
usually given for fibrillation potentials and positive sharp waves (tens to a few hundred µV); 5 noise SDs keep
Gaussian baseline noise from ever reaching ``min_count`` in a 2 s stretch (~0.01 crossings per stretch).

What it cannot tell: small voluntary MUPs of a very weak contraction look the same to it. On the 258 clinical
recordings (all moderate contractions, no rest recordings; no label used for any choice), 39 of 3354 2 s stretches
fall under the needle rest gate (RMS <= 4 x 8 µV), all in the nearly silent myopathic recordings, and all 39 are
flagged: weak myopathic effort, not fibrillations. Simulator (8 kHz, 2 s at 0 %MVC, noise 40 dB under the
contraction level, seeds 3-4): severe / moderate / mild neuropathy 51-59 / 32-45 / 2-3 potentials found of
71-92 / 42-54 / 2-3 true fibrillation discharges; healthy rest 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpontaneousSettings:
    noise_factor: float = 5.0
    min_amplitude_uv: float = 20.0
    dead_ms: float = 10.0  # one potential per 10 ms: a biphasic spike's second phase is not a second potential
    half_window_ms: float = 5.0
    min_count: int = 2  # one lone spike is as likely a needle movement or an end-plate spike


@dataclass(frozen=True)
class SpontaneousActivity:
    """Potentials found in the stretch: how many, their rate, median peak-to-peak amplitude, the noise SD."""

    count: int
    rate_hz: float
    median_amplitude_uv: float
    noise_uv: float
    flagged: bool

    def to_dict(self) -> dict[str, float | int | bool]:
        return {"count": self.count, "rate_hz": round(self.rate_hz, 2),
                "median_amplitude_uv": round(self.median_amplitude_uv, 1), "noise_uv": round(self.noise_uv, 2),
                "flagged": self.flagged}  # fmt: skip


def spontaneous_potentials(signal: np.ndarray, fs: float,
                           settings: SpontaneousSettings | None = None) -> SpontaneousActivity:  # fmt: skip
    """Spontaneous potentials in ``signal`` (one channel, µV, high-passed as in needle mode, at ``fs``)."""
    from scipy.signal import find_peaks

    s = settings or SpontaneousSettings()
    x = np.asarray(signal, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size < 3 or not fs > 0:
        return SpontaneousActivity(0, 0.0, float("nan"), float("nan"), False)
    x = x - np.median(x)
    noise = float(np.median(np.abs(x)) / 0.6745)
    peaks, _ = find_peaks(np.abs(x), height=max(s.noise_factor * noise, s.min_amplitude_uv / 2),
                          distance=max(1, int(round(s.dead_ms * 1e-3 * fs))))  # fmt: skip
    half = max(1, int(round(s.half_window_ms * 1e-3 * fs)))
    amplitudes = np.array([np.ptp(x[max(0, p - half):p + half + 1]) for p in peaks])
    amplitudes = amplitudes[amplitudes >= s.min_amplitude_uv]
    count = int(amplitudes.size)
    return SpontaneousActivity(count, count / (x.size / fs), float(np.median(amplitudes)) if count else float("nan"),
                               noise, count >= s.min_count)  # fmt: skip
