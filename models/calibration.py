"""Transfer to a new patient or session: fine-tune a checkpoint on a few labelled seconds of a new recording.

The calibration samples are marked time spans. Windows are cut so that none straddles a span boundary: a window
lies entirely inside the calibration spans (used for fine-tuning) or entirely outside (held out to measure the
gain), never both. Fine-tuning first re-estimates the feature normalisation on the calibration windows (the
cheapest adaptation to a new electrode contact), then trains every weight briefly at a low learning rate with the
usual augmentation (channel masking, gain jitter, label smoothing).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from models.datasets import WindowSet, concatenate, cut_windows, distance_to_label_change, filter_like_pipeline
from models.label_timing import align_spans_to_muscle, muscle_timed_window_labels
from models.neurofusionnet import NeuroFusionNet
from models.training import History, TrainingConfig, fit, predict_logits, to_tensors


@dataclass(frozen=True)
class Span:
    """Seconds from the first sample of recording ``source``; samples inside carry their recording's labels."""

    source: str
    start_s: float
    end_s: float


def first_seconds_per_class(
    labels: np.ndarray, fs: float, seconds: float | dict[int, float], source: str
) -> list[Span]:
    """Spans covering the first ``seconds`` of every class present in ``labels`` (in time order, run by run);
    ``seconds`` may be a per-class budget (class -> seconds) instead of one figure for all."""
    spans: list[Span] = []
    changes = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], changes])
    ends = np.concatenate([changes, [len(labels)]])
    taken: dict[int, float] = {}
    for start, end in zip(starts, ends, strict=True):
        label = int(labels[start])
        if label < 0:  # unlabelled samples (before a recording's first label annotation)
            continue
        budget = seconds.get(label, 0.0) if isinstance(seconds, dict) else seconds
        need = budget - taken.get(label, 0.0)
        if need <= 1e-9:
            continue
        length = min((end - start) / fs, need)
        spans.append(Span(source, start / fs, start / fs + length))
        taken[label] = taken.get(label, 0.0) + length
    return spans


def shared_budget(label_sets: list[np.ndarray], seconds: float) -> list[dict[int, float]]:
    """Split ``seconds`` per class evenly over the recordings holding that class: 10 s of rest over 8 gesture files
    is 1.25 s from each, so the calibration sees every recording's rest (rest after a wrist flexion is not rest
    after a fist), while a gesture recorded in one file takes all its 10 s there."""
    counts: dict[int, int] = {}
    for labels in label_sets:
        for label in np.unique(labels):
            counts[int(label)] = counts.get(int(label), 0) + 1
    return [{int(label): seconds / counts[int(label)] for label in np.unique(labels)} for labels in label_sets]


def model_mode(card: Any) -> str:
    """"needle" or "surface": the filter set a checkpoint's windows were made with, as its card says.

    A card names it as ``training["mode"]``, ``training["data"]["mode"]`` or ``training["preprocessing"]["mode"]``;
    a card that names none is a surface model unless its layout is a needle."""
    training = card.training if isinstance(card.training, dict) else {}
    for place in (training, training.get("data"), training.get("preprocessing")):
        mode = place.get("mode") if isinstance(place, dict) else None
        if mode in ("surface", "needle"):
            return str(mode)
    return "needle" if (card.layout or {}).get("kind") == "needle" else "surface"


def labels_from_markers(
    markers: list[tuple[float, str]], timestamps: np.ndarray, classes: list[str]
) -> tuple[np.ndarray, list[str]]:
    """Per-sample class indices from a recording's markers (WFDB annotations, EDF+ annotations, XDF markers).

    A marker whose text names a class (case-insensitive; a leading "(" as in WFDB rhythm notes is dropped) labels
    the samples from its time until the next such marker or the end; samples before the first are -1 (unlabelled).
    Markers naming no class (artefact notes, beat symbols) leave the current label running.
    -> (labels, the marker texts that named no class)."""
    by_name = {name.lower(): index for index, name in enumerate(classes)}
    labels = np.full(len(timestamps), -1, dtype=np.int64)
    ignored: list[str] = []
    named = []
    for time, text in markers:
        index = by_name.get(text.strip().lstrip("(").strip().lower())
        if index is None:
            ignored.append(text)
        else:
            named.append((int(np.searchsorted(timestamps, time - 0.5 / _rate(timestamps))), index))
    named.sort()
    for (start, index), (end, _) in zip(named, [*named[1:], (len(timestamps), -1)], strict=True):
        labels[start:end] = index
    return labels, ignored


def _rate(timestamps: np.ndarray) -> float:
    """Samples per second of a timestamp vector (its median step); a marker is placed on the nearest sample."""
    step = float(np.median(np.diff(timestamps[: 1000]))) if len(timestamps) > 1 else 1.0
    return 1.0 / step if step > 0 else 1.0


def split_by_spans(
    data: np.ndarray, labels: np.ndarray, fs: float, source: str, spans: list[Span], layout: dict[str, Any],
    classes: list[str], window_ms: float = 200.0, hop_ms: float = 50.0, mode: str = "surface",
    mains_hz: float | None = 50.0, muscle_timing: bool = False,
) -> tuple[WindowSet, WindowSet]:
    """-> (calibration windows inside ``spans``, held-out windows outside them) of one labelled recording.

    With ``muscle_timing`` (and a "rest" class) the calibration labels are moved to when the muscle answered the
    cue, from the spans alone (``models.label_timing.align_spans_to_muscle``); held-out windows keep the recording's
    labels and carry the muscle-timed ones beside them for the report."""
    labels = np.asarray(labels, dtype=np.int64)
    inside = np.zeros(len(labels), dtype=bool)
    for span in spans:
        if span.source == source:
            inside[int(round(span.start_s * fs)) : int(round(span.end_s * fs))] = True
    window_samples = int(round(window_ms * fs / 1000))
    hop = max(1, int(round(hop_ms * fs / 1000)))
    filtered = filter_like_pipeline(data, fs, mode, mains_hz)
    side = inside.astype(np.int64)  # 0 held out, 1 calibration, 2 calibration but unusable
    calibration_labels = labels
    if muscle_timing and "rest" in classes:
        calibration_labels, usable = align_spans_to_muscle(filtered, labels, inside, fs, classes.index("rest"))
        side[inside & ~usable] = 2
    # label and side coded together: a window is kept only when both are constant over it (the aligned labels
    # differ from the recording's inside the spans only)
    coded = calibration_labels * 3 + side
    windows, codes, ends = cut_windows(filtered, coded, window_samples, hop, skip_samples=int(0.2 * fs))

    distances = distance_to_label_change(labels, ends, window_samples, fs)
    muscle = muscle_timed_window_labels(filtered, labels, ends, window_samples, fs, list(classes))

    def part(selector: np.ndarray) -> WindowSet:
        selector = selector & (codes >= 0)  # windows of unlabelled samples (label -1) belong to neither side
        n = int(selector.sum())
        return WindowSet(windows[selector], codes[selector] // 3, np.full(n, source), float(fs), layout,
                         list(classes), times=ends[selector] / fs, label_distance_s=distances[selector],
                         muscle_labels=None if muscle is None else muscle[selector])

    return part(codes % 3 == 1), part(codes % 3 == 0)


def accuracy(model: NeuroFusionNet, windows: WindowSet, feature_names: list[str]) -> float:
    tensors = to_tensors(windows, feature_names)
    return float((predict_logits(model, tensors).argmax(dim=1) == tensors.labels).float().mean())


def fine_tune(
    model: NeuroFusionNet, calibration: WindowSet, feature_names: list[str], config: TrainingConfig | None = None,
    renormalise: bool = False, class_prior: list[float] | None = None,
    progress: Callable[[int, History], None] | None = None,
) -> NeuroFusionNet:
    """A fine-tuned copy of ``model`` (the original is untouched). No validation split: a few seconds are too few
    to spare, so training runs a fixed, small number of epochs (``config.patience`` is ignored).

    Calibration takes the same seconds of every class, so fine-tuning teaches a uniform class prior; in use the
    classes keep their natural frequencies (rest dominates gesture recordings). With ``class_prior`` (the base
    model's training class frequencies) the output bias is shifted by log(prior / calibration frequency) after
    fine-tuning (logit adjustment), which restores that prior: on Myo session 3 it turned a loss (90.5 % -> 84.9 %)
    into a gain (-> 91.9 %). ``renormalise`` re-estimates the feature statistics on the calibration windows; off by
    default because a class-balanced calibration set shifts them away from what the network learned.
    ``progress(epoch, history)`` is called after every epoch (and may raise to cancel)."""
    import copy

    config = config or TrainingConfig(epochs=25, learning_rate=3e-4, batch_size=32, channel_drop=0.1)
    tuned = copy.deepcopy(model)
    tensors = to_tensors(calibration, feature_names)
    if renormalise:
        tuned.set_feature_statistics(NeuroFusionNet.feature_inputs(tensors.windows, tensors.features))
    fixed = replace(config, patience=config.epochs + 1)
    torch.manual_seed(config.seed)
    fit(tuned, tensors, tensors, len(calibration.classes), fixed, progress=progress)
    if class_prior is not None:
        counts = np.bincount(calibration.labels, minlength=len(calibration.classes)).astype(float)
        present = counts > 0
        target = np.asarray(class_prior, dtype=float) / np.sum(class_prior)
        shift = np.zeros(len(counts))
        shift[present] = np.log(np.maximum(target[present], 1e-6) / (counts[present] / counts.sum()))
        with torch.no_grad():
            tuned.classifier[-1].bias += torch.tensor(shift, dtype=tuned.classifier[-1].bias.dtype)
    # fit() restores the epoch with the lowest loss on its "validation" set, which here is the calibration set
    # itself; that picks the best-fitted epoch, never held-out data
    return tuned.eval()


def merge(parts: list[WindowSet]) -> WindowSet:
    non_empty = [part for part in parts if len(part)]
    if not non_empty:
        raise ValueError("the spans selected no complete window")
    return concatenate(non_empty)
