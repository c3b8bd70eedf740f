"""Rule-based reading of needle EMG (normal / myopathic / neurogenic) and the one-call analysis ``analyse_needle``.

The rules follow how an electromyographer reads quantitative MUP analysis (docs/needle-emg.md): short, small
MUPs point to myopathy and long, large ones to neuropathy, with the mean duration weighing most (amplitude and area
count once together: both measure size); more than ~20 %
single MUPs beyond the outlier limits count too (with fewer than 3 MUPs only those single-MUP limits are used);
polyphasia adds weight to whichever side already leads (it occurs in both); reduced recruitment (few units
firing fast) points to neuropathy. The reading is shown beside the network's probabilities and ``agreement``
says whether the two concur.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from dsp.interference import InterferencePattern, Recruitment, analyse_interference, recruitment
from dsp.mup import MotorUnit, MupSettings, analysis_signal, decompose_channel, detection_signal
from dsp.mup_measures import MeasureSummary, MupMeasures, measure_mup, reference_table, summarise

READINGS = ("normal", "myopathic", "neurogenic", "indeterminate", "not assessed")
# the network's classes (simulators.conditions.CONDITIONS) each reading corresponds to
READING_TO_CONDITION = {"normal": "healthy", "myopathic": "myopathy", "neurogenic": "neuropathy"}
NETWORK_CLASSES = ("healthy", "myopathy", "neuropathy")
NEEDLE_MIN_FS = 4000.0
MIN_UNITS = 3
OUTLIER_SHARE = 0.2
DECISION_SCORE = 2


@dataclass(frozen=True)
class Reading:
    label: str
    myopathic_score: int
    neurogenic_score: int
    evidence: tuple[str, ...]

    def to_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "myopathic_score": self.myopathic_score,
            "neurogenic_score": self.neurogenic_score,
            "evidence": list(self.evidence),
        }


def read_pattern(summary: MeasureSummary, recruitments: list[Recruitment]) -> Reading:
    """Scores myopathic and neurogenic evidence; 2 points or more on one side (and more than the other) decide."""
    if summary.n_units == 0:
        return Reading("not assessed", 0, 0, ("no motor-unit potential could be isolated",))
    myo, neuro, evidence = 0, 0, []
    flags = summary.mean_flags
    if summary.n_units >= MIN_UNITS:
        # amplitude and area both measure size (area ~ amplitude x thickness) and both fall steeply with the
        # needle's distance from the fibres: together they are one piece of evidence, worth 1; duration, which
        # the whole unit sets, weighs 2
        for names, weight in ((("duration_ms",), 2), (("amplitude_uv", "area_uv_ms"), 1)):
            sides = set()
            for name in names:
                flag = flags.get(name, "normal")
                if flag == "low":
                    sides.add("low")
                    evidence.append(f"mean {name} {summary.mean[name]:.3g} below the reference range (myopathic)")
                elif flag == "high":
                    sides.add("high")
                    evidence.append(f"mean {name} {summary.mean[name]:.3g} above the reference range (neurogenic)")
            myo += weight if "low" in sides else 0
            neuro += weight if "high" in sides else 0
        share = max(OUTLIER_SHARE * summary.n_units, 2)
        outlier_weights = {"duration_ms": 1}
    else:
        # too few MUPs for a mean: only MUPs beyond the single-MUP limits speak, each one counting
        evidence.append(f"only {summary.n_units} MUP(s) isolated (~20 are usual): single-MUP limits only")
        share = 1
        outlier_weights = {"duration_ms": 2, "amplitude_uv": 1}
    for name, weight in outlier_weights.items():
        counts = summary.outliers.get(name, {})
        if counts.get("low", 0) >= share:
            myo += weight
            evidence.append(f"{counts['low']} of {summary.n_units} MUPs below the single-MUP {name} limit")
        if counts.get("high", 0) >= share:
            neuro += weight
            evidence.append(f"{counts['high']} of {summary.n_units} MUPs above the single-MUP {name} limit")
    if flags.get("polyphasic_percent") == "high" and myo != neuro:
        evidence.append(f"{summary.polyphasic_percent:.0f} % polyphasic MUPs (supports the leading side)")
        if myo > neuro:
            myo += 1
        else:
            neuro += 1
    reduced = [r for r in recruitments if r.pattern == "reduced"]
    if reduced and len(reduced) * 2 >= len([r for r in recruitments if r.pattern != "unknown"]):
        neuro += 2
        ratio = float(np.median([r.recruitment_ratio for r in reduced]))
        evidence.append(f"reduced recruitment (recruitment ratio {ratio:.1f}: few units firing fast)")
    if max(myo, neuro) < DECISION_SCORE:
        label = "normal"
    elif myo == neuro:
        label = "indeterminate"
    else:
        label = "myopathic" if myo > neuro else "neurogenic"
    return Reading(label, myo, neuro, tuple(evidence))


def agreement(reading: Reading, probabilities: np.ndarray | list[float] | dict[str, float]) -> dict[str, object]:
    """How the rule-based reading compares with the network's class probabilities (healthy, myopathy, neuropathy).

    ``probabilities`` is a (3,) vector in ``NETWORK_CLASSES`` order, (W, 3) per window (averaged), or a mapping
    from class name to probability."""
    if isinstance(probabilities, dict):
        vector = np.array([float(probabilities.get(name, 0.0)) for name in NETWORK_CLASSES])
    else:
        array = np.asarray(probabilities, dtype=np.float64)
        vector = array.mean(axis=0) if array.ndim == 2 else array
    if vector.shape != (len(NETWORK_CLASSES),) or not np.all(np.isfinite(vector)):
        raise ValueError(f"network probabilities must be {len(NETWORK_CLASSES)} finite values, got {vector.shape}")
    network = NETWORK_CLASSES[int(np.argmax(vector))]
    rule = READING_TO_CONDITION.get(reading.label)
    return {
        "network_class": network,
        "network_probability": round(float(vector.max()), 4),
        "rule_class": rule,
        "agree": None if rule is None else rule == network,
        "network_probability_of_rule_class": None
        if rule is None
        else round(float(vector[NETWORK_CLASSES.index(rule)]), 4),
    }


@dataclass
class NeedleReport:
    """Everything ``analyse_needle`` found: units with their measures, the summary, interference and the reading."""

    fs: float
    n_channels: int
    duration_s: float
    units: list[MotorUnit]
    measures: list[MupMeasures]
    summary: MeasureSummary
    interference: list[InterferencePattern]
    recruitment: list[Recruitment]
    reading: Reading
    notes: list[str] = field(default_factory=list)

    def to_dict(self, with_templates: bool = False) -> dict[str, object]:
        """JSON-safe report; ``with_templates`` adds each unit's template and the turns-amplitude clouds."""
        return {
            "fs": self.fs,
            "n_channels": self.n_channels,
            "duration_s": round(self.duration_s, 4),
            "units": [
                {**unit.to_dict(with_templates), "measures": measures.to_dict()}
                for unit, measures in zip(self.units, self.measures, strict=True)
            ],
            "summary": self.summary.to_dict(),
            "interference": [pattern.to_dict(with_templates) for pattern in self.interference],
            "recruitment": [r.to_dict() for r in self.recruitment],
            "reading": self.reading.to_dict(),
            "references": reference_table(),
            "notes": list(self.notes),
        }


def analyse_needle(signal: np.ndarray, fs: float, settings: MupSettings | None = None) -> NeedleReport:
    """Quantitative needle EMG of ``signal`` (n,) or (n, C) in µV at ``fs`` Hz: MUPs per channel, their measures
    against the reference ranges, interference pattern and recruitment per channel, and the rule-based reading.

    Raises ValueError (one line) for a signal that cannot be analysed."""
    settings = settings or MupSettings()
    x = np.asarray(signal, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] == 0:
        raise ValueError(f"needle EMG must be shaped (samples,) or (samples, channels), not {np.shape(signal)}")
    if not fs > 0:
        raise ValueError(f"sampling rate must be positive, not {fs}")
    minimum = int((settings.window_before_ms + settings.window_after_ms) * 1e-3 * fs) * 10
    if x.shape[0] < minimum:
        seconds = x.shape[0] / fs
        raise ValueError(f"needle EMG analysis needs at least {minimum / fs:.2f} s of signal, got {seconds:.2f} s")
    if not np.all(np.isfinite(x)):
        raise ValueError("the signal contains NaN or infinite samples; cut or repair them before analysis")
    notes = []
    analysis = analysis_signal(x, fs, settings)
    detection = detection_signal(x, fs, settings)
    units: list[MotorUnit] = []
    patterns, recruitments = [], []
    for channel in range(x.shape[1]):
        channel_units = decompose_channel(analysis[:, channel], detection[:, channel], fs, channel, settings)
        units.extend(channel_units)
        patterns.append(analyse_interference(analysis[:, channel], fs, channel))
        recruitments.append(recruitment(channel_units))
    measures = [measure_mup(u.template, fs, noise_uv=u.template_noise_uv) for u in units]
    summary = summarise(measures)
    if fs < NEEDLE_MIN_FS:
        notes.append(
            f"sampled at {fs:g} Hz, below the {NEEDLE_MIN_FS:g} Hz needle EMG needs (surface EMG?): measures are "
            "indicative only and the needle reference ranges do not apply, so no reading is given"
        )
        reading = Reading("not assessed", 0, 0, (notes[-1],))
    else:
        reading = read_pattern(summary, recruitments)
    return NeedleReport(
        fs=float(fs),
        n_channels=x.shape[1],
        duration_s=x.shape[0] / fs,
        units=units,
        measures=measures,
        summary=summary,
        interference=patterns,
        recruitment=recruitments,
        reading=reading,
        notes=notes,
    )
