"""Offline analysis: a recording through the live pipeline's own code, as fast as the CPU allows.

The samples go through ``DspEngine.process`` (the DSP thread's step: filters, counter-aligned windows, features,
channel usability, the fatigue tracker), and the windows, encoded exactly as the
monitor sends them, through the worker's ``BatchHandler`` (the code behind the ZeroMQ socket) in batches. Only the
sockets are left out, so the decisions equal the live ones for the same samples.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from monitor.errors import UserError
from monitor.recordings.base import Recording

ANALYSIS_BED = "analyze"


@dataclass
class WindowOutcome:
    """One window's figures: the window's last sample time, DSP features (median over usable channels), the
    fatigue tracker's view and, with a model, the decision."""

    index: int
    end_counter: int
    time_s: float  # last sample, seconds from the recording's first sample
    usable_channels: int
    rms_uv: float
    mnf_hz: float
    mdf_hz: float
    fins_m5: float
    active_channels: int
    # the live fatigue view's contraction test: mean RMS over usable channels above release_ratio x their mean rest
    # RMS (a single electrode flickering above its own rest level does not make a contraction)
    contracting: bool
    fatigue_state: str
    mdf_change_pct: float
    mdf_slope_hz_per_min: float
    label: str | None = None
    confidence: float | None = None
    probabilities: list[float] | None = None
    file_label: int | None = None

    def to_dict(self, classes: list[str]) -> dict[str, Any]:
        row: dict[str, Any] = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in self.__dict__.items()
            if key != "probabilities"
        }
        for name, value in zip(classes, self.probabilities or [], strict=False):
            row[f"p_{name}"] = value
        return row


@dataclass
class Analysis:
    recording: Recording
    windows: list[WindowOutcome]
    classes: list[str]
    model_id: str | None
    wall_seconds: float
    engine_stats: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    quality_issues: list[str] = field(default_factory=list)  # raw-signal flags with the channels and seconds
    preprocessing: dict[str, Any] = field(default_factory=dict)  # filters, mains, masks, windows (step 16)
    # offline fatigue per contraction (monitor.recordings.contractions) and where the contractions came from
    contractions: list[Any] = field(default_factory=list)
    contraction_source: str = ""

    @property
    def real_time_factor(self) -> float:
        return self.recording.duration_s / self.wall_seconds if self.wall_seconds > 0 else math.inf


def _median(values: np.ndarray, mask: np.ndarray) -> float:
    chosen = values[mask & np.isfinite(values)]
    return float(np.median(chosen)) if chosen.size else math.nan


class _InProcessWorker:
    """The worker's BatchHandler fed the same encoded frames the monitor's client would send it."""

    def __init__(self, predictor: Any, max_batch: int) -> None:
        from monitor.inference.worker import BatchHandler

        self.handler = BatchHandler(predictor, worker_name="analyze", max_batch=max_batch)
        self.classes = list(self.handler.classes)
        self.model_id = self.handler.model_id

    def run(self, windows: list[Any], fs: float) -> list[Any]:
        from monitor.inference import protocol

        messages = []
        for result in windows:
            request = protocol.InferenceRequest(
                request_id=protocol.new_request_id(),
                bed_id=ANALYSIS_BED,
                sequence=result.window.end_counter,
                last_timestamp=result.window.last_timestamp,
                fs=fs,
                window=result.window.data,
                channel_mask=result.usable,
            )
            messages.append([b"analyze", b""] + [bytes(frame) for frame in protocol.encode_request(request)])
        decoded = []
        for reply in self.handler.handle(messages):
            _, body = protocol.split_envelope([bytes(frame) for frame in reply])
            message = protocol.decode(body)
            if isinstance(message, protocol.ErrorReply):
                raise UserError(f"the model refused the recording's windows: {message.message}")
            decoded.append(message)
        return decoded


class _MaskTally:
    """Windows each channel was masked from the model in, by reason (the quality flags in force at the window's end;
    no flag there means the engine's own mask after NaN/Inf samples)."""

    def __init__(self, n_channels: int) -> None:
        self.reasons: list[Counter] = [Counter() for _ in range(n_channels)]

    def add(self, usable: np.ndarray, reasons: tuple[str, ...]) -> None:
        for channel in np.flatnonzero(~usable):
            self.reasons[channel][reasons[channel] if channel < len(reasons) and reasons[channel]
                                  else "non-finite samples"] += 1  # fmt: skip

    def summary(self, labels: list[str]) -> dict[str, Any]:
        return {labels[c]: {"windows": sum(counts.values()), "reasons": dict(counts.most_common())}
                for c, counts in enumerate(self.reasons) if counts}  # fmt: skip


class _QualityTally:
    """Seconds each channel spent under each quality flag (dsp.quality on the raw samples, as the views see it).

    Reporting only: it does not change the channel mask the model gets, so decisions stay those of the engine."""

    def __init__(self, fs: float, n_channels: int) -> None:
        from dsp.quality import QUALITY_FLAGS, QualityMonitor

        self.monitor = QualityMonitor(fs, n_channels)
        self.step = max(1, int(round(self.monitor.settings.evaluate_every_s * fs)))
        self.fs = fs
        self.seconds = {flag: np.zeros(n_channels) for flag in QUALITY_FLAGS}

    def update(self, raw: np.ndarray, timestamps: np.ndarray) -> None:
        for start in range(0, len(raw), self.step):
            piece = raw[start : start + self.step]
            report = self.monitor.update(piece, float(timestamps[start + len(piece) - 1]))
            for flag, raised in report.flags.items():
                self.seconds[flag] += np.asarray(raised, bool) * (len(piece) / self.fs)

    def issues(self, labels: list[str]) -> list[str]:
        issues = []
        for flag, seconds in self.seconds.items():
            flagged = [f"{labels[c]} {seconds[c]:.0f} s" for c in np.flatnonzero(seconds >= 1.0)]
            if flagged:
                issues.append(f"{flag}: {', '.join(flagged[:8])}{' ...' if len(flagged) > 8 else ''}")
        return issues


def model_band(model_fs: float) -> tuple[float, float]:
    """The band (Hz) a surface model reads: its training windows went through the monitor's default filter chain
    at the card's rate (models.datasets.filter_like_pipeline -> dsp.filters.default_chain), whose high edge is
    clipped below Nyquist (95 Hz at 200 Hz)."""
    import inspect

    from dsp.filters import NYQUIST_MARGIN, default_chain

    defaults = inspect.signature(default_chain).parameters
    low, high = float(defaults["low_hz"].default), float(defaults["high_hz"].default)
    return low, min(high, NYQUIST_MARGIN * model_fs / 2)


def rate_misfit(model_fs: float, fs: float) -> str | None:
    """Why a model trained at ``model_fs`` cannot read a signal sampled at ``fs`` ("reads 20-450 Hz and needs >=
    948 Hz"), or None where it can.

    The predictor resamples a window to the card's rate (models.predictor.resample_windows), so the rate itself
    need not match: what must match is the band. A signal whose own filter chain stops below the model's high edge
    reaches the model with that part of the spectrum empty (a 200 Hz Myo armband upsampled to 2048 Hz holds
    nothing above 95 Hz), which a model trained on 20-450 Hz reads as a disease: refused, not guessed at."""
    if not (model_fs > 0 and fs > 0):
        return None  # no rate to compare (an irregular stream): other checks speak for it
    low, model_high = model_band(model_fs)
    _, signal_high = model_band(fs)
    if signal_high >= model_high * (1 - 1e-6):
        return None
    from dsp.filters import NYQUIST_MARGIN

    needed = math.ceil(2 * model_high / NYQUIST_MARGIN)
    return f"reads {low:g}-{model_high:g} Hz and needs >= {needed} Hz"


def check_model_fits(predictor: Any, recording: Recording) -> None:
    """A model for another channel count, layout or band cannot judge this recording: say so before any work."""
    card = predictor.card
    misfit = rate_misfit(float(card.fs), float(recording.fs))
    if misfit is not None:
        raise UserError(
            f"model {card.model_id!r} {misfit}, the recording is at {recording.fs:g} Hz; --model picks a model for "
            "this rate, --no-model runs DSP and fatigue only"
        )
    if card.n_channels != recording.n_channels:
        raise UserError(
            f"model {card.model_id!r} expects {card.n_channels} channels but the recording has "
            f"{recording.n_channels}; --model picks a model for this layout, --no-model runs DSP and fatigue only"
        )
    if recording.layout is not None:
        try:
            predictor.check_layout(recording.layout)
        except ValueError as error:
            raise UserError(f"{error}; --model picks a model for this layout") from None


def analyze_recording(
    recording: Recording,
    predictor: Any | None = None,
    engine_settings: Any | None = None,
    chunk_seconds: float = 1.0,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
    contraction_spans: list[tuple[float, float]] | None = None,
    whole_contraction: bool = False,
) -> Analysis:
    """Runs the whole pipeline over ``recording``; ``progress(samples_done)`` is called after every chunk.

    ``contraction_spans`` (seconds from the first sample) name the contractions for the per-contraction fatigue
    figures; by default they are where the live tracker saw a contraction (monitor.recordings.contractions).
    ``whole_contraction``: the whole recording is one contraction (one continuous hold, no rest to learn from)."""
    from dsp.engine import DspEngine, EngineSettings
    from dsp.ringbuffer import RingBuffer
    from monitor.pipeline import muscle_state, verdict

    started = time.perf_counter()
    fs, n_channels = recording.fs, recording.n_channels
    settings = engine_settings or EngineSettings()
    try:
        # the engine reads its ring buffer only when run as a thread; offline we call its step directly
        engine = DspEngine(RingBuffer(1, n_channels), fs, settings, filtered_seconds=1.0)
    except ValueError as error:
        raise UserError(f"cannot filter this recording: {error}") from None
    quality = _QualityTally(fs, n_channels)
    masks = _MaskTally(n_channels)
    worker = None
    if predictor is not None:
        check_model_fits(predictor, recording)
        worker = _InProcessWorker(predictor, max_batch=batch_size)
    outcomes: list[WindowOutcome] = []
    waiting: list[tuple[WindowOutcome, Any]] = []
    first_time = float(recording.timestamps[0])
    chunk = max(1, int(round(chunk_seconds * fs)))

    def flush() -> None:
        if worker is None or not waiting:
            return
        for (outcome, result), decision in zip(waiting, worker.run([r for _, r in waiting], fs), strict=True):
            outcome.label = verdict(decision.label, muscle_state(result))
            outcome.probabilities = [float(p) for p in decision.probabilities]
            outcome.confidence = float(np.max(decision.probabilities))
        waiting.clear()

    for start in range(0, recording.n_samples, chunk):
        stop = min(start + chunk, recording.n_samples)
        quality.update(recording.data[start:stop], recording.timestamps[start:stop])
        for result in engine.process(recording.data[start:stop], recording.timestamps[start:stop], start):
            report = result.fatigue
            usable = np.asarray(result.usable, bool)
            masks.add(usable, result.quality.reasons)
            outcome = WindowOutcome(
                index=len(outcomes),
                end_counter=result.window.end_counter,
                time_s=result.window.last_timestamp - first_time,
                usable_channels=int(usable.sum()),
                rms_uv=_median(result.features["RMS"], usable),
                mnf_hz=_median(result.features["MNF"], usable),
                mdf_hz=_median(result.features["MDF"], usable),
                fins_m5=_median(result.features["FInsm5"], usable),
                active_channels=int(np.count_nonzero(report.active)),
                contracting=_contracting(result.features["RMS"], report, usable, engine.fatigue.settings),
                fatigue_state=report.state,
                mdf_change_pct=_median(report.mdf_change_pct, np.ones(n_channels, bool)),
                mdf_slope_hz_per_min=_median(report.mdf_slope_hz_per_min, np.ones(n_channels, bool)),
                file_label=None if recording.labels is None else int(recording.labels[result.window.end_counter - 1]),
            )
            outcomes.append(outcome)
            waiting.append((outcome, result))
        if len(waiting) >= batch_size:
            flush()
        if progress is not None:
            progress(stop)
    flush()
    stats = engine.stats
    analysis = Analysis(
        recording=recording,
        windows=outcomes,
        classes=worker.classes if worker else [],
        model_id=worker.model_id if worker else None,
        wall_seconds=time.perf_counter() - started,
        engine_stats={"gaps": stats.gaps, "nonfinite_samples": stats.nonfinite_samples, "windows": stats.windows},
    )
    analysis.quality_issues = quality.issues(recording.channel_labels)
    analysis.preprocessing = _preprocessing(recording, engine, masks, outcomes, worker is not None)
    if whole_contraction:
        contraction_spans = [(0.0, recording.duration_s)]
    analysis.contractions, analysis.contraction_source = _contractions(outcomes, engine, contraction_spans)
    if whole_contraction:
        from monitor.recordings.contractions import SOURCE_WHOLE

        analysis.contraction_source = SOURCE_WHOLE
    analysis.summary = summarize(analysis, engine.fatigue.report().to_dict() if outcomes else {})
    return analysis


def _contracting(rms: np.ndarray, report: Any, usable: np.ndarray, settings: Any) -> bool:
    """monitor/gui/fatigue.py's contraction shading for one window (False while the rest level is learned)."""
    if report.learning or not usable.any():
        return False
    with np.errstate(invalid="ignore"):
        level, rest = np.nanmean(rms[usable]), np.nanmean(report.rest_rms[usable])
    return bool(level > settings.release_ratio * rest)


def _contractions(outcomes: list[WindowOutcome], engine: Any,
                  spans: list[tuple[float, float]] | None) -> tuple[list[Any], str]:  # fmt: skip
    """Per-contraction fatigue figures over the given spans, else over the tracker's contractions."""
    from monitor.recordings.contractions import SOURCE_ACTIVITY, SOURCE_GIVEN, activity_spans, contraction_figures

    times = np.array([w.time_s for w in outcomes])
    window_s = engine.windower.window_samples / engine.fs
    settings = engine.fatigue.settings
    source = SOURCE_GIVEN if spans is not None else SOURCE_ACTIVITY
    if spans is None:
        active = np.array([w.contracting for w in outcomes], dtype=bool)
        spans = activity_spans(times, active, window_s, settings.max_pause_s)
    columns = {name: np.array([getattr(w, attribute) for w in outcomes], dtype=float)
               for name, attribute in (("MDF", "mdf_hz"), ("MNF", "mnf_hz"), ("RMS", "rms_uv"), ("FInsm5", "fins_m5"))}
    return contraction_figures(times, window_s, columns, spans, settings), source


def _preprocessing(recording: Recording, engine: Any, masks: _MaskTally, outcomes: list[WindowOutcome],
                   decided: bool) -> dict[str, Any]:  # fmt: skip
    """The preprocessing summary (monitor.recordings.preprocessing) of one analysed recording."""
    from monitor.pipeline import LEARNING_LABEL, REST_LABEL
    from monitor.recordings.preprocessing import aligned_windows, describe_filters, mains_advice, mains_found

    s = engine.settings
    found = mains_found(recording.data, recording.fs)
    cancellers = [stage for stage in getattr(engine.adaptive, "stages", []) if hasattr(stage, "frequency_hz")]
    tracked = float(cancellers[0].frequency_hz) if cancellers else None
    possible = aligned_windows(recording.n_samples, engine.windower.window_samples, engine.windower.hop_samples)
    windows: dict[str, Any] = {
        "possible": possible,
        "kept": len(outcomes),
        "window_samples": engine.windower.window_samples,
        "hop_samples": engine.windower.hop_samples,
        # after a gap in the timestamps the filters and windows restart: the windows that would straddle it are lost
        "dropped": {f"lost at {engine.stats.gaps} gap(s) in the timestamps": max(0, possible - len(outcomes))}
        if engine.stats.gaps else {},
        "with_masked_channels": sum(1 for w in outcomes if w.usable_channels < recording.n_channels),
        "without_usable_channels": sum(1 for w in outcomes if w.usable_channels == 0),
    }
    if decided:
        windows["not_decided"] = {
            f"no contraction (verdict {REST_LABEL!r})": sum(1 for w in outcomes if w.label == REST_LABEL),
            # before the rest level is known a contraction cannot be told from rest: no verdict, a reason of its own
            f"rest level still being learned (verdict {LEARNING_LABEL!r})":
                sum(1 for w in outcomes if w.label == LEARNING_LABEL),
        }
    return {
        "filters": describe_filters(recording.fs, recording.n_channels, s.mode, s.mains_hz, s.low_hz, s.high_hz,
                                    s.adaptive_mains, s.adaptive_baseline),  # fmt: skip
        "mains": {"found_hz": found, "notched_hz": None if s.adaptive_mains else s.mains_hz, "tracked_hz": tracked,
                  "advice": mains_advice(found, None if s.adaptive_mains else s.mains_hz, tracked)},  # fmt: skip
        "channels_masked": masks.summary(recording.channel_labels),
        "windows": windows,
    }


def summarize(analysis: Analysis, final_fatigue: dict[str, Any]) -> dict[str, Any]:
    """Label distribution and confidence, fatigue per contraction, quality issues: the report's numbers."""
    recording, windows = analysis.recording, analysis.windows
    summary: dict[str, Any] = {
        "file": str(recording.source) if recording.source else None,
        "duration_s": recording.duration_s,
        "fs": recording.fs,
        "n_channels": recording.n_channels,
        "windows": len(windows),
        "model_id": analysis.model_id,
        "wall_seconds": analysis.wall_seconds,
        "real_time_factor": analysis.real_time_factor,
        "preprocessing": analysis.preprocessing,
    }
    decided = [w for w in windows if w.label is not None]
    if decided:
        counts = Counter(w.label for w in decided)
        names = [*analysis.classes, *(label for label in counts if label not in analysis.classes)]  # e.g. "rest"
        summary["label_distribution"] = {name: counts.get(name, 0) / len(decided) for name in names}
        summary["majority_label"] = counts.most_common(1)[0][0]
        # only windows whose verdict is one of the model's classes: at rest or while the rest level is being
        # learned the model's confidence is about a window it gave no verdict for
        classified = [w.confidence for w in decided if w.label in analysis.classes]
        summary["mean_confidence"] = float(np.mean(classified)) if classified else None
        if recording.labels is not None:
            by_file_label: dict[str, Counter] = {}
            for w in decided:
                by_file_label.setdefault(str(w.file_label), Counter())[w.label] += 1
            summary["decisions_by_file_label"] = {k: dict(v) for k, v in sorted(by_file_label.items())}
    active = [w for w in windows if w.active_channels > 0 and math.isfinite(w.mdf_hz)]
    fatigue: dict[str, Any] = {"active_windows": len(active), "final_state": final_fatigue.get("state"),
                               "contraction_source": analysis.contraction_source,
                               "contractions": [c.to_dict() for c in analysis.contractions]}  # fmt: skip
    if analysis.contractions:
        # the headline figures are the longest contraction's: slopes pooled over contractions separated by rest
        # would mix fatigue with the recovery between them
        longest = max(analysis.contractions, key=lambda c: c.duration_s)
        fatigue["longest_contraction"] = longest.index
        for key in ("mdf_slope_hz_per_min", "mdf_slope_pct_per_min", "mnf_slope_hz_per_min", "mdf_change_pct",
                    "rms_change_pct", "fins_change_pct"):
            fatigue[key] = getattr(longest, key)
    if analysis.contraction_source == "activity" and windows:
        from monitor.recordings.contractions import no_rest_note

        note = no_rest_note(np.array([w.rms_uv for w in windows]), bool(analysis.contractions))
        if note:
            fatigue["note"] = note
    summary["fatigue"] = fatigue
    partial = sum(1 for w in windows if w.usable_channels < recording.n_channels)
    summary["quality"] = {
        **analysis.engine_stats,
        "windows_with_unusable_channels": partial,
        "issues": _quality_issues(analysis, partial),
    }
    if recording.labels is not None:
        values, counts = np.unique(recording.labels, return_counts=True)
        summary["file_label_distribution"] = {str(v): int(c) / recording.n_samples for v, c in zip(values, counts,
                                                                                                      strict=True)}
    return summary


def _quality_issues(analysis: Analysis, partial_windows: int) -> list[str]:
    issues = []
    stats = analysis.engine_stats
    if stats["gaps"]:
        issues.append(f"{stats['gaps']} gap(s) in the timestamps: filters and windows restarted there")
    if stats["nonfinite_samples"]:
        issues.append(f"{stats['nonfinite_samples']} non-finite samples (channels masked around them)")
    if partial_windows:
        issues.append(f"{partial_windows} of {len(analysis.windows)} windows had unusable channels")
    if not analysis.windows:
        issues.append("the recording is shorter than one analysis window")
    return issues + analysis.quality_issues
