"""Interference-pattern analysis at stronger effort, and the recruitment pattern of the decomposed units.

- Turns-amplitude (Willison 1964, J Neurol Neurosurg Psychiatry 27:386; cloud form: Stålberg et al. 1983,
  Electroencephalogr Clin Neurophysiol 56:672): per epoch (default 100 ms) the number of turns per second (changes
  of direction with at least 100 µV on either side) and the mean amplitude between consecutive turns. Each epoch is
  one point of the cloud. Myopathy moves the cloud to many turns at low amplitude, neuropathy to few turns at high
  amplitude.
- Envelope (Nandedkar et al. 1986, Muscle Nerve 9:431): mean peak-to-peak amplitude of the signal in 10 ms
  sub-windows; envelope/turns ratio = envelope (µV) / turns per second, in µV·s, low in myopathy, high in neuropathy.
- Recruitment (Petajan 1991, AAEM minimonograph 3): the recruitment ratio, the highest firing rate of the units
  active at once divided by their number (normal below ~5, reduced recruitment above ~10), and the recruitment
  frequency, the rate of the first recruited unit when the second appears (normal ~10 Hz, raised in neuropathy),
  when the recording shows units appearing one after another. A few units (<= 3) firing at 15 Hz or faster with no
  others recruited is reduced recruitment whatever the ratio (Daube's rule of thumb).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp.mup import MotorUnit
from dsp.mup_measures import count_turns, json_number

WILLISON_STEP_UV = 100.0
RECRUITMENT_RATIO_HIGH = 10.0  # above it: reduced (neurogenic) recruitment
RECRUITMENT_RATIO_NORMAL = 5.0
RECRUITMENT_FREQUENCY_HIGH_HZ = 15.0
FEW_UNITS = 3  # a few units firing at or above RECRUITMENT_FREQUENCY_HIGH_HZ alone is reduced recruitment


@dataclass(frozen=True)
class InterferencePattern:
    """Per-epoch turns-amplitude cloud and its summary for one channel."""

    channel: int
    turns_per_s: np.ndarray  # (E,)
    mean_amplitude_uv: np.ndarray  # (E,) mean |step| between consecutive turns; nan where < 2 turns
    envelope_uv: np.ndarray  # (E,)

    @property
    def median_turns_per_s(self) -> float:
        return float(np.median(self.turns_per_s)) if self.turns_per_s.size else 0.0

    @property
    def median_amplitude_uv(self) -> float:
        finite = self.mean_amplitude_uv[np.isfinite(self.mean_amplitude_uv)]
        return float(np.median(finite)) if finite.size else 0.0

    @property
    def median_envelope_uv(self) -> float:
        return float(np.median(self.envelope_uv)) if self.envelope_uv.size else 0.0

    @property
    def envelope_turns_ratio(self) -> float:
        """Envelope (µV) per turn per second; nan when there are no turns."""
        turns = self.median_turns_per_s
        return self.median_envelope_uv / turns if turns > 0 else float("nan")

    def to_dict(self, with_cloud: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "channel": self.channel,
            "epochs": int(self.turns_per_s.size),
            "turns_per_s": json_number(self.median_turns_per_s, 2),
            "mean_amplitude_uv": json_number(self.median_amplitude_uv, 2),
            "envelope_uv": json_number(self.median_envelope_uv, 2),
            "envelope_turns_ratio": json_number(self.envelope_turns_ratio),
        }
        if with_cloud:
            out["cloud"] = [
                [json_number(t, 2), json_number(a, 2)]
                for t, a in zip(self.turns_per_s, self.mean_amplitude_uv, strict=True)
            ]
        return out


def analyse_interference(
    x: np.ndarray,
    fs: float,
    channel: int = 0,
    epoch_ms: float = 100.0,
    step_uv: float = WILLISON_STEP_UV,
    envelope_ms: float = 10.0,
) -> InterferencePattern:
    """Turns-amplitude cloud of one filtered channel ``x`` (n,) in µV."""
    x = np.asarray(x, dtype=np.float64)
    epoch = max(2, int(round(epoch_ms * 1e-3 * fs)))
    sub = max(2, int(round(envelope_ms * 1e-3 * fs)))
    n_epochs = x.size // epoch
    turns_rate = np.zeros(n_epochs)
    amplitude = np.full(n_epochs, np.nan)
    envelope = np.zeros(n_epochs)
    for e in range(n_epochs):
        segment = x[e * epoch : (e + 1) * epoch]
        turns = count_turns(segment, step_uv)
        turns_rate[e] = turns.size / (epoch / fs)
        if turns.size >= 2:
            amplitude[e] = float(np.mean(np.abs(np.diff(segment[turns]))))
        blocks = segment[: (segment.size // sub) * sub].reshape(-1, sub)
        envelope[e] = float(np.mean(np.ptp(blocks, axis=1))) if blocks.size else 0.0
    return InterferencePattern(channel, turns_rate, amplitude, envelope)


@dataclass(frozen=True)
class Recruitment:
    n_active_units: int
    highest_rate_hz: float
    first_units_rate_hz: float  # mean rate of the (up to) two earliest-recruited units
    recruitment_ratio: float  # highest rate / active units
    recruitment_frequency_hz: float | None  # first unit's rate when the second appears, if seen in the record
    pattern: str  # "reduced", "borderline", "normal" or "unknown" (too few units)

    def to_dict(self) -> dict[str, object]:
        return {
            "n_active_units": self.n_active_units,
            "highest_rate_hz": json_number(self.highest_rate_hz, 2),
            "first_units_rate_hz": json_number(self.first_units_rate_hz, 2),
            "recruitment_ratio": json_number(self.recruitment_ratio, 3),
            "recruitment_frequency_hz": None
            if self.recruitment_frequency_hz is None
            else json_number(self.recruitment_frequency_hz, 2),
            "pattern": self.pattern,
        }


def recruitment(units: list[MotorUnit], min_onset_gap_s: float = 0.5) -> Recruitment:
    """Recruitment pattern of the units of one channel (their firing rates and first discharges)."""
    firing = [u for u in units if u.firing_rate_hz > 0]
    if not firing:
        return Recruitment(0, 0.0, 0.0, float("nan"), None, "unknown")
    by_onset = sorted(firing, key=lambda u: u.first_discharge_s)
    rates = np.array([u.firing_rate_hz for u in firing])
    ratio = float(rates.max() / len(firing))
    frequency = None
    if len(by_onset) >= 2 and by_onset[1].first_discharge_s - by_onset[0].first_discharge_s >= min_onset_gap_s:
        first, second = by_onset[0], by_onset[1]
        onset = second.first_discharge_s * first.fs
        before = first.discharges[(first.discharges < onset) & (first.discharges >= onset - first.fs)]
        if before.size >= 3:
            frequency = float(first.fs / np.median(np.diff(before)))
    few_fast = len(firing) <= FEW_UNITS and rates.max() >= RECRUITMENT_FREQUENCY_HIGH_HZ
    if few_fast or (frequency is not None and frequency > RECRUITMENT_FREQUENCY_HIGH_HZ):
        pattern = "reduced"
    elif len(firing) < 2:
        pattern = "unknown"  # one unit at an ordinary rate: the ratio of a single unit says nothing
    elif ratio > RECRUITMENT_RATIO_HIGH:
        pattern = "reduced"
    elif ratio <= RECRUITMENT_RATIO_NORMAL:
        pattern = "normal"
    else:
        pattern = "borderline"
    first_two = np.mean([u.firing_rate_hz for u in by_onset[:2]])
    return Recruitment(len(firing), float(rates.max()), float(first_two), ratio, frequency, pattern)
