"""Checkpoints: one ``.pt`` file holding the weights and the JSON model card, loaded with ``weights_only=True``.

Next to ``name.pt`` live ``name.card.json`` (the same card, for people and tools) and, once exported,
``name.onnx`` (whose sha256 the card records, so a stale ONNX file is never paired with newer weights).

torch and the network are imported inside the functions that need them: the monitor process reads model cards
(``read_card``, ``ModelCard``, ``card_path``, ``BUNDLED_CHECKPOINT``) and must not carry torch (~280 MB) for that.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from models.neurofusionnet import NeuroFusionNet

CHECKPOINT_FORMAT = "neurofusion-checkpoint/1"
BUNDLED_CHECKPOINT = Path(__file__).with_name("weights") / "default.pt"


@dataclass
class ModelCard:
    """What a checkpoint is for: the inputs it expects and how it was made and measured."""

    model_id: str
    classes: list[str]
    n_channels: int
    fs: float
    window_samples: int
    layout: dict[str, Any]
    feature_names: list[str]
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)  # NetworkConfig.to_dict()
    graph: str = "layout"  # "layout" (electrode neighbours) or "full" (attention learns the adjacency)
    onnx_sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        data = json.loads(text)
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})

    def check_layout(self, layout: dict[str, Any] | Any) -> None:
        """Raise ValueError unless ``layout`` (dict or ElectrodeLayout) is the one this model was trained on."""
        other = layout if isinstance(layout, dict) else layout.to_dict()
        mine = self.layout
        if len(other.get("labels", [])) != self.n_channels:
            raise ValueError(
                f"model {self.model_id!r} expects {self.n_channels} channels ({describe_layout(mine)}), "
                f"the stream has {len(other.get('labels', []))} ({describe_layout(other)})"
            )
        same_kind = other.get("kind") == mine.get("kind")
        same_positions = _close(other.get("positions_mm"), mine.get("positions_mm"))
        if not (same_kind and same_positions):
            raise ValueError(
                f"model {self.model_id!r} was trained on a {describe_layout(mine)} layout, the stream is a "
                f"{describe_layout(other)}; calibrate or train a model for this layout"
            )


def describe_layout(layout: dict[str, Any]) -> str:
    kind = layout.get("kind", "?")
    n = len(layout.get("labels", []))
    if kind == "grid" and layout.get("rows"):
        return f"{layout['rows']}x{layout['cols']} grid of {n} electrodes"
    return f"{kind} of {n} electrode{'s' if n != 1 else ''}"


def _close(first: Any, second: Any) -> bool:
    if first is None or second is None:
        return first is second
    a, b = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    return a.shape == b.shape and bool(np.allclose(a, b, atol=1e-3))


def build_model(card: ModelCard) -> NeuroFusionNet:
    from models.graphs import layout_edges
    from models.neurofusionnet import NetworkConfig, NeuroFusionNet

    config = NetworkConfig.from_dict(card.network)
    return NeuroFusionNet(config, layout_edges(card.layout, card.graph))


def save_checkpoint(path: str | Path, model: NeuroFusionNet, card: ModelCard) -> Path:
    """Write ``path`` (.pt) and its ``.card.json``; the card's network config is taken from the model."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    card.network = model.config.to_dict()
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    torch.save({"format": CHECKPOINT_FORMAT, "card": card.to_json(), "state_dict": state}, path)
    card_path(path).write_text(card.to_json() + "\n")
    return path


def card_path(path: str | Path) -> Path:
    """The JSON card beside a checkpoint: read it (``read_card``) to learn about a model without loading torch."""
    return Path(path).with_suffix(".card.json")


def onnx_path(path: str | Path) -> Path:
    return Path(path).with_suffix(".onnx")


def read_card(path: str | Path | None = None) -> ModelCard:
    """The card of the checkpoint at ``path`` (``None``: the bundled default), read from its ``.card.json`` without
    torch. Raises OSError when the card file is missing or unreadable, ValueError when it is not a model card."""
    location = card_path(path if path is not None else BUNDLED_CHECKPOINT)
    text = location.read_text()
    try:
        return ModelCard.from_json(text)
    except (TypeError, AttributeError) as error:  # valid JSON that is not an object with a card's fields
        raise ValueError(f"{location} is not a model card: {error}") from error


def load_checkpoint(path: str | Path | None = None) -> tuple[NeuroFusionNet, ModelCard]:
    """-> (model in eval mode, card). ``None`` loads the bundled default. Raises ValueError on a bad file."""
    import torch

    path = Path(path) if path is not None else BUNDLED_CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file; torch raises several unrelated types
        # torch's own message advises retrying with weights_only=False, which would run code from the file: the
        # user is told what the file is not, and nothing of torch's text is passed on
        raise ValueError(f"{path} is not a NeuroFusionNet checkpoint (unreadable as one)") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a NeuroFusionNet checkpoint (expected format {CHECKPOINT_FORMAT})")
    try:
        card = ModelCard.from_json(payload["card"])
        model = build_model(card)
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a card or weights that do not fit
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        raise ValueError(f"{path} is not a NeuroFusionNet checkpoint ({reason})") from None
    return model.eval(), card
