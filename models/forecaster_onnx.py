"""The fatigue forecaster (models/prognosis.py) under ONNX Runtime, so the GUI process never imports torch for it
(torch costs the GUI ~180 MB of memory and seconds of start-up for a 77 KB network).

Export, after the bundled weights change (needs torch; writes ``models/weights/fatigue-forecaster.onnx`` and the
``"onnx"`` entry of the card beside the weights)::

    .venv/bin/python -m models.forecaster_onnx

The card entry holds the sha256 of the state dict the ONNX file was exported from and of the ONNX file itself.
``load_onnx_forecaster`` runs the ONNX file only while both still match, so weights retrained without a fresh
export fall back to the torch path instead of silently running the old network.

The exported graph (dynamo exporter, one native ONNX ``LSTM`` node) takes ``features`` (B, T, 2) float32 with
dynamic B and T, which is ``prognosis.network_input``'s output (T is ``HISTORY_EPOCHS`` whatever the history
length), and returns ``mean`` and ``log_variance`` (B, HORIZON_EPOCHS).
"""

from __future__ import annotations

import hashlib
import json
import logging
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from models.prognosis import BUNDLED_WEIGHTS, HISTORY_EPOCHS, ForecasterTraining, build_forecaster

log = logging.getLogger(__name__)

BUNDLED_ONNX = BUNDLED_WEIGHTS.with_suffix(".onnx")
OPSET = 18
INPUT_NAME = "features"
OUTPUT_NAMES = ("mean", "log_variance")


def file_sha256(path: Path) -> str:
    # models.predictor has the same helper, but importing it imports torch (models.checkpoint)
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def card_path(weights: Path) -> Path:
    return Path(weights).with_suffix(".json")


def export_forecaster(weights: Path = BUNDLED_WEIGHTS, path: Path | None = None) -> Path:
    """Export the state dict ``weights`` to ``path`` (default: beside it, ``.onnx``) and record both files' sha256
    in the card beside the weights (its other entries are kept)."""
    import torch

    weights = Path(weights)
    path = Path(path) if path is not None else weights.with_suffix(".onnx")
    network = build_forecaster(ForecasterTraining().hidden)
    network.load_state_dict(torch.load(weights, weights_only=True))
    network.eval()
    example = torch.zeros(2, HISTORY_EPOCHS, 2)
    shapes = {"x": {0: torch.export.Dim("batch", min=1, max=4096), 1: torch.export.Dim("steps", min=2, max=4096)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(network, (example,), input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                                    dynamic_shapes=shapes, dynamo=True, opset_version=OPSET, verbose=False)  # fmt: skip
    program.save(str(path), external_data=False)
    from models.export import strip_build_paths

    strip_build_paths(path)  # no absolute path of the build machine inside (the exporter's stack traces)
    card_file = card_path(weights)
    card = json.loads(card_file.read_text()) if card_file.is_file() else {}
    card["onnx"] = {"file": path.name, "sha256": file_sha256(path), "weights_sha256": file_sha256(weights),
                    "opset": OPSET, "exported_by": "python -m models.forecaster_onnx"}  # fmt: skip
    card_file.write_text(json.dumps(card, indent=2) + "\n")
    return path


def onnx_mismatch(weights: Path = BUNDLED_WEIGHTS) -> str | None:
    """Why the ONNX file beside ``weights`` must not stand in for them (None: it may): missing, exported from other
    weights, changed since export, or the weights' card names other training settings."""
    card_file = card_path(weights)
    if not card_file.is_file():
        return f"no card {card_file}"
    card = json.loads(card_file.read_text())
    if card.get("training_key") != ForecasterTraining().key():
        return "the weights' card names other training settings"
    entry = card.get("onnx") or {}
    path = Path(weights).parent / entry.get("file", "")
    if not entry or not path.is_file():
        return f"no exported ONNX file beside {weights}"
    if entry.get("weights_sha256") != file_sha256(weights):
        return f"{path.name} was exported from other weights than {Path(weights).name}"
    if entry.get("sha256") != file_sha256(path):
        return f"{path.name} changed since its export"
    return None


class OnnxForecaster:
    """Runs like the torch network inside ``prognosis.lstm_forecast``: ``network_input`` features (B, T, 2) float32
    -> (mean, log_variance) (B, HORIZON_EPOCHS) arrays."""

    def __init__(self, path: Path = BUNDLED_ONNX) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        # one forecast every 2 s of a few hundred microseconds: extra threads would only spin against the DSP thread
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.path = Path(path)
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = {INPUT_NAME: np.ascontiguousarray(features, dtype=np.float32)}
        mean, log_variance = self.session.run(list(OUTPUT_NAMES), inputs)
        return mean, log_variance


def load_onnx_forecaster(weights: Path = BUNDLED_WEIGHTS) -> tuple[OnnxForecaster | None, str | None]:
    """-> (the ONNX forecaster for ``weights``, None), or (None, why not) when it cannot stand in for them."""
    reason = onnx_mismatch(weights)
    if reason is not None:
        return None, reason
    try:
        import onnxruntime  # noqa: F401 (an optional speed-up: the torch path still works without it)
    except ImportError:
        return None, "onnxruntime is not installed"
    entry: dict[str, Any] = json.loads(card_path(weights).read_text())["onnx"]
    return OnnxForecaster(Path(weights).parent / entry["file"]), None


if __name__ == "__main__":
    print(export_forecaster())
