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
    """A trained needle model with its card; thread-compatible for inference (no state between calls).

    The statistics model (card ``network.kind`` "statistics": a linear layer on recording statistics) is run in
    numpy from its arrays, so `analyze` and `monitor` need no torch for it; ``network`` (the torch module, for
    calibration and training) is built on first use. A NeuroFusionNet runs in torch as before."""

    def __init__(self, network: Any | None, card: dict[str, Any],
                 state: dict[str, np.ndarray] | None = None) -> None:  # fmt: skip
        if network is None and state is None:
            raise ValueError("a needle model needs its network or its weights")
        self._network = None if network is None else network.eval()
        self._state = state  # the weights as numpy arrays, when loaded without torch
        self.card = card
        self.model_id: str = card["model_id"]
        self.classes: list[str] = list(card["classes"])
        config = card.get("network") or (network.config.to_dict() if network is not None else {})
        self.is_statistics = config.get("kind") == "statistics"
        self._linear: tuple[np.ndarray, ...] | None = None

    @property
    def network(self) -> Any:
        """The torch module (built from the loaded weights on first use: this imports torch)."""
        if self._network is None:
            import torch

            from models.needle_net import network_from_config

            network = network_from_config(self.card["network"])
            assert self._state is not None
            network.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in self._state.items()})
            self._network = network.eval()
        return self._network

    def _statistics_arrays(self) -> tuple[np.ndarray, ...]:
        """(statistics mean, scale, classifier weight, bias) of the statistics model, float64."""
        if self._linear is None:
            state = self._state
            if state is None:
                state = {key: value.detach().cpu().numpy() for key, value in self.network.state_dict().items()}
            self._linear = tuple(np.asarray(state[key], dtype=np.float64) for key in
                                 ("statistics_mean", "statistics_scale", "classifier.weight", "classifier.bias"))
        return self._linear

    def _scores(self, signal: np.ndarray, source_fs: float) -> tuple[np.ndarray, int]:
        """(class probabilities, number of windows) of one signal already at ``NEEDLE_FS``."""
        from models.needle_features import recording_windows

        windows, features = recording_windows(signal, source_fs)
        if self.is_statistics:
            return statistics_probabilities(features, *self._statistics_arrays()), len(windows)
        import torch

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


def statistics_probabilities(features: np.ndarray, mean: np.ndarray, scale: np.ndarray, weight: np.ndarray,
                             bias: np.ndarray) -> np.ndarray:
    """The statistics model's class probabilities for one recording's (W, F) window statistics: what
    ``models.needle_net.NeedleStatisticsNet`` computes (mean, SD, 10th and 90th percentile over the windows,
    linear-interpolated; standardised; one linear layer; softmax), in numpy. The statistics are taken of the float32
    features as torch does; the rest runs in float64 (differences from the torch form ~1e-7, tested)."""
    f = np.asarray(features, dtype=np.float32)
    statistics = np.concatenate([f.mean(axis=0), f.std(axis=0), np.quantile(f, 0.1, axis=0),
                                 np.quantile(f, 0.9, axis=0)]).astype(np.float64)  # fmt: skip
    logits = ((statistics - mean) / scale) @ weight.T + bias
    exponentials = np.exp(logits - logits.max())
    return (exponentials / exponentials.sum()).astype(np.float32)


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
    """The needle model at ``path`` (None: bundled). ValueError with one line for a missing or unreadable file.

    A statistics model is read without torch (``models.tensor_archive``, an allow-list as strict as
    ``weights_only=True``); any other file, or one that reader cannot take, through
    ``torch.load(weights_only=True)``."""
    from models.tensor_archive import TensorArchiveError, read_tensor_archive

    path = Path(path) if path is not None else BUNDLED_NEEDLE_MODEL
    if not path.is_file():
        raise ValueError(f"no needle model at {path}")
    try:
        payload = read_tensor_archive(path)
        card = _checked_card(payload)
        if card.get("network", {}).get("kind") == "statistics":
            state = {str(key): np.asarray(value) for key, value in payload["state_dict"].items()}
            model = NeedleModel(None, card, state)
            _check_statistics_shapes(model)  # a missing or misshapen array is refused here, not at a verdict
            return model
    except TensorArchiveError:
        pass  # not a plain archive: torch decides
    except Exception as error:
        raise _unreadable(path, error) from None
    try:
        import torch

        from models.needle_net import network_from_config

        payload = torch.load(path, map_location="cpu", weights_only=True)
        card = _checked_card(payload)
        network = network_from_config(card["network"])
        network.load_state_dict(payload["state_dict"])
    except Exception as error:  # truncated/foreign files raise many unrelated types inside torch
        raise _unreadable(path, error) from None
    return NeedleModel(network, card)


def _checked_card(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict) or payload.get("format") != NEEDLE_FORMAT:
        raise ValueError(f"not a needle model (expected format {NEEDLE_FORMAT})")
    return json.loads(payload["card"])


def _check_statistics_shapes(model: NeedleModel) -> None:
    mean, scale, weight, bias = model._statistics_arrays()
    width = 4 * int(model.card["network"]["n_features"])
    if mean.shape != (width,) or scale.shape != (width,) or weight.shape != (len(model.classes), width) \
            or bias.shape != (len(model.classes),):
        raise ValueError(f"weights of shapes {mean.shape}, {scale.shape}, {weight.shape}, {bias.shape} do not fit "
                         f"{width} statistics and {len(model.classes)} classes")


def _unreadable(path: Path, error: Exception) -> ValueError:
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return ValueError(f"{path.name} is not a readable needle model: {reason[:200]}")
