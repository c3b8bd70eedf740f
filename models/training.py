"""Training loop (the paper's Algorithm 2): mini-batch AdamW with weight decay, label smoothing or mixup, random
channel masking, DropEdge and dropout inside the network, early stopping on validation loss with the best weights
restored. The same loop trains the neural baselines, so every network in the evaluation table gets the same care.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from models.datasets import WindowSet
from models.graphs import layout_edges
from models.neurofusionnet import NetworkConfig, NeuroFusionNet
from models.predictor import handcrafted_features


@dataclass
class TrainingConfig:
    epochs: int = 40
    batch_size: int = 64
    learning_rate: float = 3e-3
    weight_decay: float = 1e-3
    label_smoothing: float = 0.0
    mixup_alpha: float = 0.2  # > 0 mixes pairs of windows (and their one-hot labels); beat label smoothing 0.1
    # across Myo sessions (88.6 % vs 86.3 % on session 3)
    channel_drop: float = 0.1  # chance that each channel is masked in a training window (one always kept)
    gain_jitter: float = 0.1  # per-window amplitude scale drawn from [1 - j, 1 + j]
    channel_gain: float = 1.0  # > 1: each channel scaled log-uniformly within [1/g, g] (electrode contact changes)
    electrode_shift: float = 0.0  # > 0: ring rotated / grid moved by up to this many spacings (a new donning)
    effort_scale: float = 1.0  # > 1: windows of every class but rest scaled log-uniformly within [1/e, e]: the
    # same gesture made with another effort (session 3 of the Myo data has a supination at half the strength)
    patience: int = 6  # epochs without a better validation loss before stopping
    max_seconds: float = 480.0
    seed: int = 0
    threads: int = 1  # more threads on a shared 2-core machine made epochs far slower (OpenMP spinning)
    fatigue_weight: float = 0.0  # weight of the auxiliary fatigue regression loss (needs WindowSet.fatigue)

    @property
    def augments(self) -> bool:
        return self.channel_gain > 1.0 or self.electrode_shift > 0.0 or self.effort_scale > 1.0

    def without_regularisation(self) -> TrainingConfig:
        """The 'no regularisation' ablation: no weight decay, smoothing, mixup, masking, jitter, early stopping."""
        return TrainingConfig(
            **{**asdict(self), "weight_decay": 0.0, "label_smoothing": 0.0, "mixup_alpha": 0.0,
               "channel_drop": 0.0, "gain_jitter": 0.0, "channel_gain": 1.0, "electrode_shift": 0.0,
               "effort_scale": 1.0,
               "patience": self.epochs + 1}
        )


@dataclass
class TensorSet:
    """A WindowSet as tensors the networks take: windows, handcrafted features, labels, optional fatigue."""

    windows: torch.Tensor
    features: torch.Tensor
    labels: torch.Tensor
    fatigue: torch.Tensor | None

    def __len__(self) -> int:
        return len(self.labels)


def to_tensors(dataset: WindowSet, feature_names: list[str]) -> TensorSet:
    features = handcrafted_features(dataset.windows, dataset.fs, feature_names)
    fatigue = None if dataset.fatigue is None else torch.from_numpy(dataset.fatigue.astype(np.float32))
    return TensorSet(
        torch.from_numpy(np.ascontiguousarray(dataset.windows, dtype=np.float32)),
        torch.from_numpy(features),
        torch.from_numpy(dataset.labels.astype(np.int64)),
        fatigue,
    )


@dataclass
class History:
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    validation_accuracy: list[float] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def outputs_of(model: nn.Module, windows: torch.Tensor, features: torch.Tensor, mask: torch.Tensor):
    """-> (logits, fatigue or None) whatever the network returns (NeuroFusionNet: a tuple; baselines: logits)."""
    output = model(windows, features, mask)
    if isinstance(output, tuple):
        return output[0], (output[2] if len(output) > 2 else None)
    return output, None


def random_channel_mask(batch: int, n_channels: int, drop: float, generator: torch.Generator) -> torch.Tensor:
    mask = (torch.rand(batch, n_channels, generator=generator) >= drop).float()
    keep = torch.randint(n_channels, (batch,), generator=generator)
    mask[torch.arange(batch), keep] = 1.0  # never mask every channel of a window
    return mask


def predict_logits(model: nn.Module, data: TensorSet, batch_size: int = 512) -> torch.Tensor:
    model.eval()
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(data), batch_size):
            windows = data.windows[start : start + batch_size]
            mask = torch.ones(windows.shape[:2])
            logits, _ = outputs_of(model, windows, data.features[start : start + batch_size], mask)
            chunks.append(logits)
    return torch.cat(chunks) if chunks else torch.zeros(0)


def evaluate_loss(model: nn.Module, data: TensorSet) -> tuple[float, float]:
    logits = predict_logits(model, data)
    loss = nn.functional.cross_entropy(logits, data.labels).item()
    accuracy = (logits.argmax(dim=1) == data.labels).float().mean().item()
    return loss, accuracy


WindowAugmenter = Callable[
    [torch.Tensor, torch.Tensor, np.random.Generator], tuple[torch.Tensor, torch.Tensor]
]


def window_augmenter(
    config: TrainingConfig, layout: dict[str, Any], fs: float, feature_names: list[str], classes: list[str]
) -> WindowAugmenter | None:
    """Batch augmentation for a new donning of the same electrodes (rotation/shift, per-electrode contact gain)
    and another effort (every class but one named "rest" scaled); the handcrafted features are recomputed from the
    augmented windows. None when the config asks for none."""
    if not config.augments:
        return None
    from models.augmentation import scale_amplitude, shift_electrodes

    movable = layout.get("kind") in ("ring", "grid")
    rest_label = classes.index("rest") if "rest" in classes else None

    def augment(
        windows: torch.Tensor, labels: torch.Tensor, rng: np.random.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        array = windows.numpy()
        if config.effort_scale > 1:
            scaled = scale_amplitude(array, rng, config.effort_scale)
            if rest_label is not None:
                scaled[labels.numpy() == rest_label] = array[labels.numpy() == rest_label]  # rest has no effort
            array = scaled
        if config.electrode_shift > 0 and movable:
            array = shift_electrodes(array, rng, layout, config.electrode_shift)
        if config.channel_gain > 1:
            array = scale_amplitude(array, rng, config.channel_gain, per_channel=True)
        array = np.ascontiguousarray(array, dtype=np.float32)
        return torch.from_numpy(array), torch.from_numpy(handcrafted_features(array, fs, feature_names))

    return augment


def fit(
    model: nn.Module,
    train: TensorSet,
    validation: TensorSet,
    n_classes: int,
    config: TrainingConfig,
    progress: Callable[[int, History], None] | None = None,
    augment: WindowAugmenter | None = None,
) -> History:
    """Train ``model`` in place; the weights of the epoch with the lowest validation loss are restored.

    ``augment`` (see ``window_augmenter``) transforms each training batch and recomputes its features."""
    torch.manual_seed(config.seed)
    augment_rng = np.random.default_rng([config.seed, 17])
    torch.set_num_threads(config.threads)
    generator = torch.Generator().manual_seed(config.seed)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(train) / config.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.epochs * steps_per_epoch
    )
    history = History()
    best_loss, best_state, since_best = math.inf, copy.deepcopy(model.state_dict()), 0
    started = time.perf_counter()
    for epoch in range(config.epochs):
        model.train()
        order = torch.randperm(len(train), generator=generator)
        total_loss, correct, seen = 0.0, 0, 0
        for step in range(steps_per_epoch):
            index = order[step * config.batch_size : (step + 1) * config.batch_size]
            if len(index) < 2:
                continue
            windows, features, labels = train.windows[index], train.features[index], train.labels[index]
            if augment is not None:
                windows, features = augment(windows, labels, augment_rng)
            batch, n_channels = windows.shape[:2]
            if config.gain_jitter > 0:
                gain = 1 + config.gain_jitter * (2 * torch.rand(batch, 1, 1, generator=generator) - 1)
                windows = windows * gain
            mask = (
                random_channel_mask(batch, n_channels, config.channel_drop, generator)
                if config.channel_drop > 0 else torch.ones(batch, n_channels)
            )
            targets = nn.functional.one_hot(labels, n_classes).float()
            if config.mixup_alpha > 0:
                mix = float(np.random.default_rng(config.seed + epoch * 1000 + step).beta(config.mixup_alpha,
                                                                                          config.mixup_alpha))
                partner = torch.randperm(batch, generator=generator)
                windows = mix * windows + (1 - mix) * windows[partner]
                features = mix * features + (1 - mix) * features[partner]
                targets = mix * targets + (1 - mix) * targets[partner]
                mask = mask * mask[partner]
                mask[:, 0] = torch.where(mask.sum(1) == 0, 1.0, mask[:, 0])
            logits, fatigue = outputs_of(model, windows, features, mask)
            loss = nn.functional.cross_entropy(logits, targets, label_smoothing=config.label_smoothing)
            if config.fatigue_weight > 0 and fatigue is not None and train.fatigue is not None:
                loss = loss + config.fatigue_weight * nn.functional.mse_loss(fatigue, train.fatigue[index])
            optimiser.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimiser.step()
            scheduler.step()
            total_loss += loss.item() * batch
            correct += int((logits.argmax(dim=1) == labels).sum())
            seen += batch
        validation_loss, validation_accuracy = evaluate_loss(model, validation)
        history.train_loss.append(total_loss / max(seen, 1))
        history.train_accuracy.append(correct / max(seen, 1))
        history.validation_loss.append(validation_loss)
        history.validation_accuracy.append(validation_accuracy)
        if validation_loss < best_loss - 1e-4:
            best_loss, best_state, since_best = validation_loss, copy.deepcopy(model.state_dict()), 0
            history.best_epoch = epoch
        else:
            since_best += 1
        if progress is not None:
            progress(epoch, history)
        history.seconds = time.perf_counter() - started
        if since_best >= config.patience or history.seconds > config.max_seconds:
            history.stopped_early = epoch < config.epochs - 1
            break
    model.load_state_dict(best_state)
    model.eval()
    return history


def build_neurofusionnet(
    dataset: WindowSet, feature_names: list[str], graph: str = "layout", **network_options: Any
) -> NeuroFusionNet:
    config = NetworkConfig(
        n_channels=dataset.n_channels, n_classes=len(dataset.classes), n_features=len(feature_names),
        **network_options,
    )
    return NeuroFusionNet(config, layout_edges(dataset.layout, graph))


def train_neurofusionnet(
    train: WindowSet,
    validation: WindowSet,
    feature_names: list[str],
    config: TrainingConfig,
    graph: str = "layout",
    progress: Callable[[int, History], None] | None = None,
    **network_options: Any,
) -> tuple[NeuroFusionNet, History, TensorSet, TensorSet]:
    """Build, normalise (feature statistics from the training set only) and train a NeuroFusionNet."""
    torch.manual_seed(config.seed)
    model = build_neurofusionnet(train, feature_names, graph, **network_options)
    train_tensors, validation_tensors = to_tensors(train, feature_names), to_tensors(validation, feature_names)
    model.set_feature_statistics(NeuroFusionNet.feature_inputs(train_tensors.windows, train_tensors.features))
    augment = window_augmenter(config, train.layout, train.fs, feature_names, train.classes)
    history = fit(model, train_tensors, validation_tensors, len(train.classes), config, progress, augment)
    return model, history, train_tensors, validation_tensors


def rich_progress(total_epochs: int, label: str = "training"):
    """A rich progress bar over epochs; returns (context manager, callback for ``fit``)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
    )
    task = bar.add_task(label, total=total_epochs, status="")

    def update(epoch: int, history: History) -> None:
        status = (
            f"loss {history.train_loss[-1]:.3f} val loss {history.validation_loss[-1]:.3f} "
            f"val acc {100 * history.validation_accuracy[-1]:.1f}%"
        )
        bar.update(task, completed=epoch + 1, status=status)

    return bar, update


def predict_classes(model: nn.Module, test: WindowSet, feature_names: list[str]) -> np.ndarray:
    return predict_logits(model, to_tensors(test, feature_names)).argmax(dim=1).numpy()


def train_and_save(
    train: WindowSet,
    validation: WindowSet,
    test: WindowSet,
    out_dir: str | Path,
    model_id: str,
    feature_names: list[str],
    config: TrainingConfig,
    graph: str = "layout",
    data_description: dict[str, Any] | None = None,
    export: bool = True,
    progress: Callable[[int, History], None] | None = None,
    **network_options: Any,
) -> tuple[Path, dict[str, Any]]:
    """Train, measure on the held-out test groups, and write ``model.pt`` + card, ONNX, metrics.json and figures."""
    from models.checkpoint import ModelCard, save_checkpoint
    from models.evaluation import (
        classification_metrics,
        held_out_breakdown,
        plot_confusion,
        plot_history,
        write_json,
    )
    from models.neurofusionnet import parameter_count

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model, history, _, _ = train_neurofusionnet(train, validation, feature_names, config, graph, progress,
                                                **network_options)
    predicted = predict_classes(model, test, feature_names)
    test_metrics = {**classification_metrics(test.labels, predicted, test.classes),
                    **held_out_breakdown(test, predicted)}
    card = ModelCard(
        model_id=model_id,
        classes=list(train.classes),
        n_channels=train.n_channels,
        fs=train.fs,
        window_samples=train.window_samples,
        layout=train.layout,
        feature_names=list(feature_names),
        graph=graph,
        training={
            "data": data_description or {},
            "train_groups": sorted(set(train.groups.tolist())),
            "validation_groups": sorted(set(validation.groups.tolist())),
            "test_groups": sorted(set(test.groups.tolist())),
            "windows": {"train": len(train), "validation": len(validation), "test": len(test)},
            "class_counts": np.bincount(train.labels, minlength=len(train.classes)).tolist(),
            "config": asdict(config),
            "epochs_run": len(history.train_loss),
            "best_epoch": history.best_epoch + 1,
            "seconds": round(history.seconds, 1),
            "parameters": parameter_count(model),
        },
        metrics={"test": {key: value for key, value in test_metrics.items() if key != "confusion_matrix"}},
    )
    checkpoint = save_checkpoint(out_dir / "model.pt", model, card)
    if export:
        from models.export import export_checkpoint

        export_checkpoint(checkpoint)
    write_json(out_dir / "metrics.json", {"test": test_metrics, "history": history.to_dict(), "card": asdict(card)})
    plot_history(history.to_dict(), out_dir / "training_curves.png")
    plot_confusion(test_metrics["confusion_matrix"], test.classes, out_dir / "confusion_test.png",
                   f"{model_id}: held-out test ({100 * test_metrics['accuracy']:.1f}% accuracy)")
    return checkpoint, test_metrics
