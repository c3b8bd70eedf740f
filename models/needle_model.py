"""The needle condition model the product uses: load it, and ask it about a recording or a live stretch.

    from models.needle_model import load_needle_model
    model = load_needle_model()                     # bundled models/weights/needle.pt (or a path)
    verdict = model.predict_recording(signal, fs)   # signal (n,) or (n, 1) µV at 4-32 kHz
    # {"label": "myopathy", "probabilities": {"healthy": .., "myopathy": .., "neuropathy": ..},
    #  "model_id": "...", "windows": 19}
    live = model.predict_window(last_seconds, fs)   # same dict, for a live stretch (>= 0.5 s; >= 3.25 s as trained)

Weights are a torch file read with ``weights_only=True`` (never unpickled) holding the network's state and its
JSON card; ``needle.card.json`` beside it is the same card for people and tools. Decision support, not a
diagnosis: see docs/needle-model.md for what it was trained and judged on.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

NEEDLE_FORMAT = "neurofusion-needle/1"
BUNDLED_NEEDLE_MODEL = Path(__file__).with_name("weights") / "needle.pt"


class NeedleModel:
    """A trained ``NeedleFusionNet`` with its card; thread-compatible for inference (no state between calls)."""

    def __init__(self, network: Any, card: dict[str, Any]) -> None:
        self.network = network.eval()
        self.card = card
        self.model_id: str = card["model_id"]
        self.classes: list[str] = list(card["classes"])

    def _scores(self, signal: np.ndarray, source_fs: float) -> tuple[np.ndarray, int]:
        """(class probabilities, number of windows) of one signal already at ``NEEDLE_FS``."""
        import torch

        from models.needle_features import recording_windows

        windows, features = recording_windows(signal, source_fs)
        with torch.no_grad():
            logits = self.network(torch.from_numpy(features)[None],
                                  torch.from_numpy(windows)[None] if self.network.config.use_conv else None)
        return torch.softmax(logits, dim=-1)[0].numpy(), len(windows)

    def probabilities(self, signals: list[np.ndarray], source_fs: list[float]) -> np.ndarray:
        """(R, K) class probabilities of signals already at ``NEEDLE_FS`` (each >= one window)."""
        return np.stack([self._scores(signal, fs)[0] for signal, fs in zip(signals, source_fs, strict=True)])

    def _verdict(self, signal: np.ndarray, fs: float) -> dict[str, Any]:
        from dsp.resample import to_needle_rate

        x = np.asarray(signal, dtype=np.float32)
        if x.ndim == 2 and x.shape[1] == 1:
            x = x[:, 0]
        if x.ndim != 1:
            raise ValueError(f"the needle model reads one channel, got shape {np.shape(signal)}")
        if not np.all(np.isfinite(x)):
            raise ValueError("the needle signal contains NaN or infinite samples")
        probabilities, n_windows = self._scores(to_needle_rate(x, float(fs)), float(fs))
        return {
            "label": self.classes[int(np.argmax(probabilities))],
            "probabilities": {name: float(p) for name, p in zip(self.classes, probabilities, strict=True)},
            "model_id": self.model_id,
            "windows": int(n_windows),
        }

    def predict_recording(self, signal: np.ndarray, fs: float) -> dict[str, Any]:
        """Verdict on a whole recording (``fs`` 4-32 kHz); ValueError (one line) for what it cannot read."""
        return self._verdict(signal, fs)

    def predict_window(self, signal: np.ndarray, fs: float) -> dict[str, Any]:
        """Verdict on the last few seconds of a live stream (the same network over fewer windows)."""
        return self._verdict(signal, fs)


def save_needle_model(path: str | Path, network: Any, card: dict[str, Any]) -> Path:
    """Write ``path`` (.pt: state + card) and ``path.card.json``."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    card = {**card, "network": network.config.to_dict()}
    state = {key: value.detach().cpu().clone() for key, value in network.state_dict().items()}
    torch.save({"format": NEEDLE_FORMAT, "card": json.dumps(card), "state_dict": state}, path)
    path.with_suffix(".card.json").write_text(json.dumps(card, indent=2, sort_keys=True) + "\n")
    return path


def load_needle_model(path: str | Path | None = None) -> NeedleModel:
    """The needle model at ``path`` (None: bundled). ValueError with one line for a missing or unreadable file."""
    import torch

    from models.needle_net import network_from_config

    path = Path(path) if path is not None else BUNDLED_NEEDLE_MODEL
    if not path.is_file():
        raise ValueError(f"no needle model at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(payload, dict) or payload.get("format") != NEEDLE_FORMAT:
            raise ValueError(f"not a needle model (expected format {NEEDLE_FORMAT})")
        card = json.loads(payload["card"])
        network = network_from_config(card["network"])
        network.load_state_dict(payload["state_dict"])
    except Exception as error:  # truncated/foreign files raise many unrelated types inside torch
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"{path.name} is not a readable needle model: {reason[:200]}") from None
    return NeedleModel(network, card)
