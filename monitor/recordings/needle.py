"""The needle path of `analyze`: one channel of needle EMG at the one rate the MUP analysis and the needle model use.

A needle recording may come at any rate from 4 to 32 kHz and in any unit the file states (the readers already turn
WFDB ``adc_gain`` and EDF physical units into microvolts). ``needle_signal`` checks it (one channel, finite values,
4-32 kHz) and resamples it to ``dsp.resample.NEEDLE_FS`` with the anti-alias filter there, keeping the rate it came
at for the report. ``read_muscle`` pools several recordings of one muscle into one quantitative reading (clinics
collect about 20 MUPs per muscle over several insertions) and ``condition`` asks the needle condition model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dsp.resample import HIGHEST_NEEDLE_FS, LOWEST_NEEDLE_FS, NEEDLE_FS, to_needle_rate
from monitor.errors import UserError
from monitor.recordings.base import Recording

CONDITION_CLASSES = ("healthy", "myopathy", "neuropathy")


@dataclass(frozen=True)
class NeedleSignal:
    """One needle channel in microvolts at ``fs`` (``NEEDLE_FS``), resampled from ``source_fs``.

    ``recorded`` is what the MUP analysis and the needle model are given: both resample it to ``NEEDLE_FS`` with the
    same ``dsp.resample`` filter (giving ``samples``) and keep the recorded rate (the model reads it)."""

    name: str
    samples: np.ndarray  # (n,) float32 µV at ``fs``
    fs: float
    source_fs: float
    channel: str
    unit: str
    recorded: np.ndarray  # (n,) float32 µV at ``source_fs``

    @property
    def duration_s(self) -> float:
        return self.samples.size / self.fs

    def describe(self) -> dict[str, Any]:
        return {"file": self.name, "channel": self.channel, "stored_unit": self.unit, "recorded_fs": self.source_fs,
                "analysed_fs": self.fs, "duration_s": round(self.duration_s, 4)}  # fmt: skip


def looks_like_needle(recording: Recording) -> bool:
    """A recording the needle path takes without being told: one channel at needle rates, or a needle layout."""
    layout = recording.layout or {}
    one_fast_channel = recording.n_channels == 1 and LOWEST_NEEDLE_FS <= recording.fs <= HIGHEST_NEEDLE_FS
    return one_fast_channel or layout.get("kind") == "needle"


def needle_signal(recording: Recording) -> NeedleSignal:
    """The recording's one channel at ``NEEDLE_FS`` (one-line UserError: several channels, NaN/Inf, a rate outside
    4-32 kHz)."""
    name = recording.source.name if recording.source is not None else "recording"
    if recording.n_channels != 1:
        raise UserError(f"{name}: needle analysis takes one channel and the recording has {recording.n_channels} "
                        f"({', '.join(recording.channel_labels[:8])}); --channels picks it")  # fmt: skip
    samples = recording.data[:, 0]
    bad = int(np.count_nonzero(~np.isfinite(samples)))
    if bad:
        first = int(np.flatnonzero(~np.isfinite(samples))[0]) / recording.fs
        raise UserError(f"{name}: {bad} non-finite samples (NaN/Inf) from {first:.3f} s; "
                        "--start/--end analyse a clean part")  # fmt: skip
    try:
        resampled = to_needle_rate(samples, recording.fs)
    except ValueError as error:
        raise UserError(f"{name}: {error}") from None
    return NeedleSignal(name, resampled, NEEDLE_FS, float(recording.fs), recording.channel_labels[0],
                        recording.units[0], samples)  # fmt: skip


def named_muscle(names: list[str]) -> str | None:
    """The muscle the file names give when every one is named like the shared clinical set (``..._ RB_Hea.asc.xz``:
    biceps), else None; UserError when they name several muscles (one muscle's recordings pool, not two)."""
    from pathlib import Path

    from models.needle_corpus import parse_shared_name

    infos = [parse_shared_name(Path(name)) for name in names]
    if not infos or any(info is None for info in infos):
        return None
    muscles = sorted({info.muscle for info in infos if info is not None})
    if len(muscles) > 1:
        raise UserError(f"the file names give several muscles ({', '.join(muscles)}): pool one muscle's recordings")
    return muscles[0]


@dataclass
class MuscleReading:
    """The quantitative reading of one muscle pooled over its recordings, and each recording's part in it."""

    report: Any  # dsp.mup_reading.NeedleReport over all MUPs
    per_recording: list[dict[str, Any]]
    muscle: str | None
    age: float | None
    muscle_from: str | None = None  # "--muscle" or "file name"

    @property
    def label(self) -> str:
        return self.report.reading.label

    @property
    def n_mups(self) -> int:
        return len(self.report.measures)

    def summary(self) -> dict[str, Any]:
        """``summary.json``'s ``needle_reading``."""
        report = self.report
        return {
            "label": report.reading.label,
            "n_mups": self.n_mups,
            "recordings": len(self.per_recording),
            "muscle": self.muscle,
            "muscle_from": self.muscle_from,
            "age": self.age,
            "analysed_fs": report.fs,
            "myopathic_score": report.reading.myopathic_score,
            "neurogenic_score": report.reading.neurogenic_score,
            "evidence": list(report.reading.evidence),
            "mean": {k: _finite(v) for k, v in report.summary.mean.items()},
            "mean_flags": dict(report.summary.mean_flags),
            "notes": list(report.notes),
            "reference": _reference_of(report),
            "per_recording": self.per_recording,
        }


def _reference_of(report: Any) -> Any:
    """The reference values the reading used (the muscle's, from ``dsp.mup_references``), or None: generic."""
    reference = getattr(report, "reference", None)
    return None if reference is None else reference.to_dict()


def _finite(value: float) -> float | None:
    return round(float(value), 4) if math.isfinite(value) else None


def read_muscle(signals: list[NeedleSignal], muscle: str | None = None, age: float | None = None,
                muscle_from: str | None = None) -> MuscleReading:
    """MUPs of every recording against the reference of ``muscle`` (and ``age``), pooled and read together as one
    muscle (``dsp.mup_reading.pool_reports``); UserError for a signal the analysis cannot take or an implausible
    age. Each recording goes in at its recorded rate: the analysis resamples it to ``NEEDLE_FS`` itself, with the
    same filter, and keeps the recorded rate in its report."""
    from dsp.mup_reading import analyse_needle, pool_reports

    reports, per_recording = [], []
    for signal in signals:
        try:
            report = analyse_needle(signal.recorded, signal.source_fs, muscle=muscle, age=age)
        except ValueError as error:
            raise UserError(f"{signal.name}: needle analysis: {error}") from None
        reports.append(report)
        per_recording.append({**signal.describe(), "mups": len(report.measures), "reading": report.reading.label})
    pooled = reports[0] if len(reports) == 1 else pool_reports(reports, muscle, age)
    return MuscleReading(pooled, per_recording, muscle, age, muscle_from if muscle else None)


def condition(model: Any, signals: list[NeedleSignal]) -> dict[str, Any]:
    """The needle model's verdict over all ``signals`` (one muscle, one person) as ``summary.json``'s
    ``condition``: the mean of the recordings' probabilities, the patient rule the model was judged by
    (``models.needle_splits.patient_probabilities``); ``per_recording`` keeps each one's own."""
    results = []
    for signal in signals:
        try:
            result = model.predict_recording(signal.recorded, signal.source_fs)
        except ValueError as error:
            raise UserError(f"{signal.name}: the needle model refused the recording: {error}") from None
        results.append(result)
    classes = list(results[0]["probabilities"])
    table = np.array([[float(result["probabilities"][name]) for name in classes] for result in results])
    pooled = table.mean(axis=0)
    verdict: dict[str, Any] = {
        "label": classes[int(np.argmax(pooled))],
        "probabilities": {name: round(float(p), 4) for name, p in zip(classes, pooled, strict=True)},
        "model_id": str(results[0]["model_id"]),
        "windows": int(sum(int(result.get("windows", 0)) for result in results)),
    }
    if len(results) > 1:
        verdict["per_recording"] = [
            {"file": signal.name, "label": result["label"], "windows": int(result.get("windows", 0)),
             "probabilities": {k: round(float(v), 4) for k, v in result["probabilities"].items()}}
            for signal, result in zip(signals, results, strict=True)
        ]  # fmt: skip
    return verdict


def agreement_of(reading: MuscleReading, verdict: dict[str, Any] | None) -> dict[str, Any] | None:
    """Whether the rule-based reading and the model's verdict concur (``dsp.mup_reading.agreement``), or None when
    there is no verdict or the model's classes are not healthy / myopathy / neuropathy."""
    from dsp.mup_reading import agreement

    if verdict is None or set(verdict["probabilities"]) != set(CONDITION_CLASSES):
        return None
    return agreement(reading.report.reading, {k: float(v) for k, v in verdict["probabilities"].items()})


def load_condition_model(path: str | None) -> Any | None:
    """The needle condition model (``models.needle_model``; ``path`` None = the bundled one). None, with one line
    on stderr, when this installation has no needle model (no module, or no bundled weights); UserError when a
    named model, or bundled weights that are there, cannot be used."""
    import sys

    try:
        from models.needle_model import BUNDLED_NEEDLE_MODEL, load_needle_model
    except ImportError as error:
        if path is not None:
            raise UserError(f"cannot load needle model {path}: {error}") from None
        print("no needle condition model in this installation: MUP reading only", file=sys.stderr)
        return None
    if path is None and not BUNDLED_NEEDLE_MODEL.is_file():
        print(f"no bundled needle model ({BUNDLED_NEEDLE_MODEL.name} missing): MUP reading only", file=sys.stderr)
        return None
    try:
        return load_needle_model(path)
    except (ValueError, RuntimeError, KeyError, OSError) as error:
        raise UserError(f"{error}; --model names a needle model, --no-model runs the MUP analysis alone") from None
