"""Adapting a needle condition model to a new site from a few labelled whole recordings.

A new hospital differs in amplifier gain, filters, rate and needle type; a handful of recordings cannot retrain a
network, so only the output layer moves: it is fine-tuned on the given recordings (whole, and stretches of them)
with class-balanced weights and an L2 pull toward the trained weights, so a few recordings shift the verdicts
toward the site without forgetting the rest. No surface band-pass is applied: the needle path's own conditioning
(``models.needle_features``) is used, as in training and inference.
"""

from __future__ import annotations

import argparse
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsp.resample import to_needle_rate
from models.needle_features import read_signal, recording_windows
from models.needle_model import NeedleModel, save_needle_model


@dataclass
class CalibrationSettings:
    steps: int = 150
    learning_rate: float = 1e-2
    anchor: float = 1.0  # weight of the L2 pull toward the trained output layer
    min_windows: int = 12
    seed: int = 0


def calibrate(model: NeedleModel, signals: list[np.ndarray], fs: list[float], labels: list[str],
              settings: CalibrationSettings | None = None) -> NeedleModel:
    """A copy of ``model`` whose output layer is fitted to ``signals`` labelled ``labels``: each signal already at
    ``NEEDLE_FS`` (``needle_features.read_signal``, ``dsp.resample.to_needle_rate``), recorded at ``fs``."""
    import torch

    settings = settings or CalibrationSettings()
    unknown = sorted(set(labels) - set(model.classes))
    if unknown:
        raise ValueError(f"labels {unknown} are not classes of the model ({', '.join(model.classes)})")
    if not signals:
        raise ValueError("calibration needs at least one labelled recording")
    network = copy.deepcopy(model.network).eval()
    for parameter in network.parameters():
        parameter.requires_grad_(False)
    head = network.classifier
    for parameter in head.parameters():
        parameter.requires_grad_(True)
    anchor = [parameter.detach().clone() for parameter in head.parameters()]
    inputs = []
    for signal, rate in zip(signals, fs, strict=True):
        windows, features = recording_windows(np.asarray(signal, np.float32).reshape(-1), rate)
        inputs.append((torch.from_numpy(features), torch.from_numpy(windows) if network.config.use_conv else None))
    targets = torch.tensor([model.classes.index(label) for label in labels])
    counts = torch.bincount(targets, minlength=len(model.classes)).float()
    weights = torch.where(counts > 0, counts.sum() / counts.clamp_min(1) / (counts > 0).sum(), torch.zeros(1))
    optimiser = torch.optim.Adam(head.parameters(), lr=settings.learning_rate)
    rng = np.random.default_rng(settings.seed)
    torch.manual_seed(settings.seed)
    for _ in range(settings.steps):
        losses = []
        for (features, windows), target in zip(inputs, targets, strict=True):
            size = min(len(features), int(rng.integers(settings.min_windows, len(features) + 1)))
            start = int(rng.integers(0, len(features) - size + 1))
            logits = network(features[None, start:start + size],
                             None if windows is None else windows[None, start:start + size])
            losses.append(weights[target] * torch.nn.functional.cross_entropy(logits, target[None]))
        pull = sum(((p - a) ** 2).sum() for p, a in zip(head.parameters(), anchor, strict=True))
        loss = torch.stack(losses).mean() + settings.anchor * pull
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    for parameter in head.parameters():
        parameter.requires_grad_(False)
    card = {**model.card, "model_id": f"{model.model_id}-calibrated",
            "calibration": {"base_model_id": model.model_id, "recordings": len(signals),
                            "labels": {name: int((np.array(labels) == name).sum()) for name in model.classes},
                            "trained": "output layer only, L2 pull toward the base weights",
                            **settings.__dict__}}
    return NeedleModel(network.eval(), card)


def read_needle_recording(path: Path, fs: float | None,
                          args: argparse.Namespace | None = None) -> tuple[np.ndarray, float]:
    """(signal at ``NEEDLE_FS``, rate it was recorded at) of a needle file: the .asc set, or any format ``replay``
    reads (one channel)."""
    from monitor.errors import UserError

    name = path.name.lower()
    if name.endswith((".asc", ".asc.xz", ".asc.gz")):
        if fs is None:
            raise UserError(f"{path.name}: an .asc file does not state its rate; add an fs column or give --fs")
        return read_signal(path, fs), float(fs)
    from monitor.recordings import open_recording
    from monitor.recordings.options import reader_options

    recording = open_recording(path, **(reader_options(args) if args is not None else {}))
    if recording.n_channels != 1:
        raise UserError(f"{path.name}: {recording.n_channels} channels; the needle model reads one (--channels)")
    try:
        return to_needle_rate(recording.data[:, 0], recording.fs), float(recording.fs)
    except ValueError as error:
        raise UserError(f"{path.name}: {error}") from None


def agreement(model: NeedleModel, signals: list[np.ndarray], fs: list[float], labels: list[str]) -> dict[str, Any]:
    """Share of recordings whose verdict is their label, and the mean probability given to the label."""
    probabilities = model.probabilities(signals, fs)
    truth = np.array([model.classes.index(label) for label in labels])
    return {"accuracy": float(np.mean(probabilities.argmax(1) == truth)),
            "mean_probability_of_label": float(np.mean(probabilities[np.arange(len(truth)), truth]))}


def calibrate_needle_checkpoint(args: argparse.Namespace, base_path: Path, model: Any, card: Any) -> int:
    """`calibrate --checkpoint needle.pt --manifest site.csv`: the CLI side (dispatched by monitor/commands)."""
    from rich.console import Console

    from models.needle_corpus import read_manifest
    from monitor.errors import UserError

    console = Console(stderr=True)
    if not isinstance(model, NeedleModel):
        raise UserError(f"{base_path.name}: a needle NeuroFusionNet checkpoint in the surface format; calibrate a "
                        "models.needle_model file (models/weights/needle.pt) instead")
    if not args.manifest:
        raise UserError("a needle model is calibrated from whole labelled recordings: give --manifest CSV "
                        "(columns file, patient, label, muscle)")
    if getattr(args, "recordings", None):
        raise UserError("for a needle model list the recordings in --manifest (each needs its label)")
    infos = read_manifest(Path(args.manifest))
    loaded = [read_needle_recording(Path(info.path), info.fs or getattr(args, "fs", None), args) for info in infos]
    signals, rates = [s for s, _ in loaded], [r for _, r in loaded]
    labels = [info.label for info in infos]
    try:
        before = agreement(model, signals, rates, labels)
        tuned = calibrate(model, signals, rates, labels, CalibrationSettings(seed=args.seed))
    except ValueError as error:
        raise UserError(str(error)) from None
    after = agreement(tuned, signals, rates, labels)
    out = Path(args.out)
    checkpoint = save_needle_model(out / "needle.pt", tuned.network,
                                   {**tuned.card, "calibration": {**tuned.card["calibration"],
                                                                  "base_checkpoint": str(base_path),
                                                                  "manifest": str(args.manifest)}})
    (out / "calibration.json").write_text(json.dumps(
        {"on_the_calibration_recordings": {"before": before, "after": after}, "card": tuned.card}, indent=1) + "\n")
    console.print(f"{len(infos)} recordings of {len({i.patient for i in infos})} people; on them: accuracy "
                  f"{100 * before['accuracy']:.0f}% -> {100 * after['accuracy']:.0f}%, probability of the given "
                  f"label {before['mean_probability_of_label']:.2f} -> {after['mean_probability_of_label']:.2f} "
                  f"(judge it on other patients of the site); wrote {checkpoint}")
    return 0
