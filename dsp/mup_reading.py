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

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from dsp.interference import InterferencePattern, Recruitment, analyse_interference, recruitment
from dsp.mup import MotorUnit, MupSettings, analysis_signal, decompose_channel, detection_signal, without_mains
from dsp.mup_measures import MeasureSummary, MupMeasures, main_peak, measure_mup, reference_table, summarise
from dsp.mup_references import MuscleReference, allowed_outliers, canonical_muscle, reference_for
from dsp.resample import HIGHEST_NEEDLE_FS, LOWEST_NEEDLE_FS, NEEDLE_FS, to_needle_rate

READINGS = ("normal", "myopathic", "neurogenic", "indeterminate", "not assessed")
# the network's classes (simulators.conditions.CONDITIONS) each reading corresponds to
READING_TO_CONDITION = {"normal": "healthy", "myopathic": "myopathy", "neurogenic": "neuropathy"}
NETWORK_CLASSES = ("healthy", "myopathy", "neuropathy")
NEEDLE_MIN_FS = 4000.0
MIN_UNITS = 3
MIN_MUPS_FOR_VERDICT = 10  # against a muscle's reference: fewer MUPs read "not assessed" (insufficient)
MIN_AMPLITUDE_SE = 10.0  # MUP acceptance: amplitude / template standard error (chosen on the tuning people)
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
    return Reading(_label(myo, neuro), myo, neuro, tuple(evidence))


def read_against_muscle(
    summary: MeasureSummary, recruitments: list[Recruitment], reference: MuscleReference
) -> Reading:
    """The reading of one muscle's MUPs against its published reference (``dsp.mup_references``).

    Duration, which the whole unit sets, leads (Buchthal): a mean beyond ±20 % of the reference mean weighs 2 and
    decides alone; more single MUPs beyond an outlier limit than ``allowed_outliers`` weighs 1. Amplitude (mean
    beyond mean ± 2 SD, or outliers) and polyphasia each add 1 only to a side duration already points to: amplitude
    follows the needle's distance from the fibres and the effort (a moderate contraction recruits larger units;
    the healthy tuning deltoids read 1.7x the reference amplitude), so alone it reads nothing. Recruitment is
    reported, not scored (below). Two points decide, as ``read_pattern``. Fewer than ``MIN_MUPS_FOR_VERDICT``
    accepted MUPs give no verdict: "not assessed", the evidence starting with "insufficient"."""
    if summary.n_units == 0:
        return Reading("not assessed", 0, 0, ("no motor-unit potential could be isolated",))
    if summary.n_units < MIN_MUPS_FOR_VERDICT:
        # a mean of a few MUPs is not a muscle's mean: single MUPs vary in duration with a CoV of ~0.4 here (tuning
        # people), so the mean of 5 misses by more than 20 % in about one muscle of four by chance alone (10: one
        # of eight); no verdict, and say why
        return Reading("not assessed", 0, 0, (
            f"insufficient: {summary.n_units} MUP(s) accepted, a verdict needs at least {MIN_MUPS_FOR_VERDICT} "
            "(clinics collect ~20 per muscle): pool more recordings of this muscle",))  # fmt: skip
    score = {"low": 0, "high": 0}
    support = {"low": [], "high": []}
    evidence = []
    flags = summary.mean_flags
    allowed = allowed_outliers(summary.n_units)
    words = {"low": ("below", "myopathic"), "high": ("above", "neurogenic")}

    def weigh(name: str, side: str, points: int, line: str) -> None:
        """Duration decides (points and evidence); the other measures only support a side duration points to."""
        if name == "duration_ms":
            score[side] += points
            evidence.append(line)
        else:
            support[side].append(line)

    for name, unit in (("duration_ms", "ms"), ("amplitude_uv", "µV")):
        flag = flags.get(name, "normal")
        if flag == "normal" or name not in reference.mean_ranges():
            continue
        limits = reference.mean_ranges()[name]
        weigh(name, flag, 2, f"mean {name} {summary.mean[name]:.3g} {unit} {words[flag][0]} the "
              f"{reference.muscle} range {limits.low:.3g}-{limits.high:.3g} ({words[flag][1]})")
    for name, counts in summary.outliers.items():
        for side in ("low", "high"):
            if counts.get(side, 0) > allowed:
                weigh(name, side, 1, f"{counts[side]} of {summary.n_units} MUPs {words[side][0]} the single-MUP "
                      f"{name} limit (more than {allowed} allowed)")
    if flags.get("polyphasic_percent") == "high":
        support["low" if score["low"] > score["high"] else "high"].append(
            f"{summary.polyphasic_percent:.0f} % polyphasic MUPs")
    for side in ("low", "high"):
        if score[side] > 0 and support[side]:
            score[side] += 1
            evidence += [f"{line} (supports {words[side][1]})" for line in support[side]]
        elif support[side]:
            evidence += [f"{line} (not scored: duration does not point that way)" for line in support[side]]
    reduced = [r for r in recruitments if r.pattern == "reduced"]
    if reduced:
        # shown, not scored: the ratio rules assume every active unit was isolated at minimal effort; in a moderate
        # contraction (this reading's material) healthy units fire at 15-30 Hz while only the largest few are
        # isolated, and scoring it read 22 of 34 healthy tuning person-muscles neurogenic
        evidence.append(f"recruitment looks reduced at {len(reduced)} of {len(recruitments)} sites (not scored: "
                        "only the largest units of a moderate contraction are isolated)")  # fmt: skip
    return Reading(_label(score["low"], score["high"]), score["low"], score["high"], tuple(evidence))


def _label(myo: int, neuro: int) -> str:
    if max(myo, neuro) < DECISION_SCORE:
        return "normal"
    if myo == neuro:
        return "indeterminate"
    return "myopathic" if myo > neuro else "neurogenic"


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
    """Everything ``analyse_needle`` (or ``analyse_muscle``) found: units with their measures, the summary,
    interference and the reading against the muscle's reference."""

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
    muscle: str | None = None
    age: float | None = None
    reference: MuscleReference | None = None
    source_fs: float | None = None  # the recording's own rate when it was resampled to ``fs``
    recordings: int = 1

    @property
    def n_mups(self) -> int:
        return len(self.measures)

    def to_dict(self, with_templates: bool = False) -> dict[str, object]:
        """JSON-safe report; ``with_templates`` adds each unit's template and the turns-amplitude clouds."""
        if self.reference is not None:
            references: dict[str, object] = self.reference.to_dict()
        else:
            references = reference_table()
        return {
            "fs": self.fs,
            "source_fs": self.source_fs,
            "n_channels": self.n_channels,
            "duration_s": round(self.duration_s, 4),
            "recordings": self.recordings,
            "muscle": self.muscle,
            "age": self.age,
            "n_mups": self.n_mups,
            "units": [
                {**unit.to_dict(with_templates), "measures": measures.to_dict()}
                for unit, measures in zip(self.units, self.measures, strict=True)
            ],
            "summary": self.summary.to_dict(),
            "interference": [pattern.to_dict(with_templates) for pattern in self.interference],
            "recruitment": [r.to_dict() for r in self.recruitment],
            "reading": self.reading.to_dict(),
            "references": references,
            "notes": list(self.notes),
        }


def _checked(signal: np.ndarray, fs: float, settings: MupSettings) -> tuple[np.ndarray, float, float | None]:
    """(signal as (n, C) float64 at the analysis rate, that rate, the source rate if it was resampled)."""
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
    if LOWEST_NEEDLE_FS <= fs <= HIGHEST_NEEDLE_FS and fs != NEEDLE_FS:
        # every needle path works at one rate (anti-aliased), so thresholds in samples mean the same everywhere
        return to_needle_rate(x, fs).astype(np.float64), NEEDLE_FS, float(fs)
    return x, float(fs), None


def _decomposed(x: np.ndarray, fs: float, settings: MupSettings) -> tuple[list, list, list]:
    x = without_mains(x, fs, settings)
    analysis = analysis_signal(x, fs, settings)
    detection = detection_signal(x, fs, settings)
    units: list[MotorUnit] = []
    patterns, recruitments = [], []
    for channel in range(x.shape[1]):
        channel_units = decompose_channel(analysis[:, channel], detection[:, channel], fs, channel, settings)
        units.extend(channel_units)
        patterns.append(analyse_interference(analysis[:, channel], fs, channel))
        recruitments.append(recruitment(channel_units))
    return units, patterns, recruitments


def _measured(units: list[MotorUnit], fs: float) -> tuple[list[MotorUnit], list[MupMeasures], int]:
    """(accepted units, their measures, how many were rejected). A MUP is accepted when its amplitude is at
    least ``MIN_AMPLITUDE_SE`` standard errors of its template (median over the window): below that its slow
    phases sit inside the template's noise, so its onset and end cannot be placed (on the tuning people such
    MUPs were the short duration outliers, 2-4 ms, and the small-amplitude ones with them)."""
    accepted, measures, rejected = [], [], 0
    for unit in units:
        measured = measure_mup(
            unit.template,
            fs,
            peak_index=main_peak(unit.template, fs, unit.peak_index),
            noise_uv=unit.template_noise_uv,
            profile=unit.noise_profile,
        )
        if unit.noise_profile is not None:
            noise = float(np.median(unit.noise_profile.deviation_se))
            if measured.amplitude_uv < MIN_AMPLITUDE_SE * noise:
                rejected += 1
                continue
        accepted.append(unit)
        measures.append(measured)
    return accepted, measures, rejected


def _read(
    measures: list[MupMeasures], recruitments: list[Recruitment], fs: float, muscle: str | None, age: float | None
) -> tuple[MeasureSummary, Reading, MuscleReference | None, list[str]]:
    """Summary, reading and the notes on what the reading used (``reference_for`` raises for a bad age)."""
    reference = reference_for(muscle, age)
    notes = []
    if fs < NEEDLE_MIN_FS:
        notes.append(
            f"sampled at {fs:g} Hz, below the {NEEDLE_MIN_FS:g} Hz needle EMG needs (surface EMG?): measures are "
            "indicative only and the needle reference ranges do not apply, so no reading is given"
        )
        return summarise(measures), Reading("not assessed", 0, 0, (notes[-1],)), reference, notes
    if muscle is None:
        notes.append("no muscle given: read against the generic tibialis anterior controls (give the muscle)")
        summary = summarise(measures)
        return summary, read_pattern(summary, recruitments), None, notes
    if reference is None:
        name = canonical_muscle(muscle)
        notes.append(f"no reference for {name}: measures are given, no reading")
        summary = summarise(measures, {}, {})
        return summary, Reading("not assessed", 0, 0, (f"no reference for {name}",)), None, notes
    if age is not None:
        notes.append(f"age {age:g}: {reference.ages}")
    summary = summarise(measures, reference.mean_ranges(), reference.individual_ranges())
    return summary, read_against_muscle(summary, recruitments, reference), reference, notes


def analyse_needle(
    signal: np.ndarray,
    fs: float,
    muscle: str | None = None,
    age: float | None = None,
    settings: MupSettings | None = None,
) -> NeedleReport:
    """Quantitative needle EMG of ``signal`` (n,) or (n, C) in µV at ``fs`` Hz: MUPs per channel, their measures
    against the reference of ``muscle`` (``dsp.mup_references``; None: generic TA controls), interference pattern
    and recruitment per channel, and the reading. A needle rate (4-32 kHz) is analysed at ``NEEDLE_FS``.

    Raises ValueError (one line) for a signal that cannot be analysed or an implausible age."""
    settings = settings or MupSettings()
    reference_for(muscle, age)  # a bad age is refused before any work
    x, rate, source_fs = _checked(signal, fs, settings)
    units, patterns, recruitments = _decomposed(x, rate, settings)
    units, measures, rejected = _measured(units, rate)
    rejection_notes = []
    if rejected:
        rejection_notes.append(f"{rejected} MUP(s) not accepted: amplitude below {MIN_AMPLITUDE_SE:g} standard "
                               "errors of the template, too noisy to place onset and end")  # fmt: skip
    return _read_into_report(
        rate,
        units,
        measures,
        recruitments,
        patterns,
        muscle,
        age,
        n_channels=x.shape[1],
        duration_s=x.shape[0] / rate,
        source_fs=source_fs,
        extra_notes=rejection_notes,
    )


def analyse_muscle(
    recordings: Sequence[tuple[np.ndarray, float]],
    muscle: str | None = None,
    age: float | None = None,
    settings: MupSettings | None = None,
) -> NeedleReport:
    """One reading for one muscle from several recordings (``(signal, fs)`` pairs, e.g. several needle sites):
    the MUPs of all are pooled, summarised and read together, as clinics collect ~20 MUPs per muscle."""
    if not recordings:
        raise ValueError("analyse_muscle needs at least one (signal, fs) recording")
    reports = [analyse_needle(signal, fs, muscle, age, settings) for signal, fs in recordings]
    return pool_reports(reports, muscle, age)


def pool_reports(reports: Sequence[NeedleReport], muscle: str | None = None, age: float | None = None) -> NeedleReport:
    """The MUPs of already analysed recordings of one muscle read together (what ``analyse_muscle`` does after
    analysing each recording); units keep their recording's channel number, ``recordings`` counts the reports."""
    if not reports:
        raise ValueError("pooling needs at least one analysed recording")
    rates = {report.fs for report in reports}
    if len(rates) > 1:
        raise ValueError(f"recordings of one muscle must share the analysis rate, got {sorted(rates)}")
    rate = rates.pop()
    units = [unit for report in reports for unit in report.units]
    measures = [m for report in reports for m in report.measures]
    recruitments = [r for report in reports for r in report.recruitment]
    interference = [p for report in reports for p in report.interference]
    sources = {report.source_fs for report in reports}
    return _read_into_report(
        rate,
        units,
        measures,
        recruitments,
        interference,
        muscle,
        age,
        n_channels=max(report.n_channels for report in reports),
        duration_s=sum(report.duration_s for report in reports),
        source_fs=sources.pop() if len(sources) == 1 else None,
        recordings=sum(report.recordings for report in reports),
    )


def _read_into_report(
    rate: float,
    units: list[MotorUnit],
    measures: list[MupMeasures],
    recruitments: list[Recruitment],
    interference: list[InterferencePattern],
    muscle: str | None,
    age: float | None,
    *,
    n_channels: int,
    duration_s: float,
    source_fs: float | None,
    recordings: int = 1,
    extra_notes: Sequence[str] = (),
) -> NeedleReport:
    """The units' measures and recruitment read against the muscle's reference (``_read``), in one report with
    what they came from: one recording's analysis and a muscle's pooled recordings end alike, so they share this.
    ``extra_notes`` follow the reading's own notes."""
    summary, reading, reference, notes = _read(measures, recruitments, rate, muscle, age)
    return NeedleReport(
        fs=rate,
        n_channels=n_channels,
        duration_s=duration_s,
        units=units,
        measures=measures,
        summary=summary,
        interference=interference,
        recruitment=recruitments,
        reading=reading,
        notes=[*notes, *extra_notes],
        muscle=None if muscle is None else canonical_muscle(muscle),
        age=age,
        reference=reference,
        source_fs=source_fs,
        recordings=recordings,
    )
