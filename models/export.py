"""ONNX export (torch.onnx dynamo exporter) of a checkpoint, with the electrode graph baked in as a constant.

The exported graph takes (windows (B, C, S), features (B, C, F), channel_mask (B, C) float) with dynamic B and S
and returns (probabilities (B, K), channel_attention (B, C)). ``torch.jit.script`` cannot compile GATv2Conv;
the dynamo exporter traces it fine. The exporter records each node's Python stack trace, absolute source paths of
the build machine included; those are dropped (``strip_build_paths``), so the file is the same wherever it is built.

    .venv/bin/python -m models.export CHECKPOINT [--strip-only]
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from models.checkpoint import load_checkpoint, onnx_path, save_checkpoint
from models.neurofusionnet import NeuroFusionNet

OPSET = 18
# node metadata the exporter fills with where the code ran (file paths, line numbers): no part of the computation
BUILD_METADATA = ("pkg.torch.onnx.stack_trace",)


class ProbabilityHead(torch.nn.Module):
    """What the worker needs from the network: probabilities and channel attention (no fatigue output)."""

    def __init__(self, model: NeuroFusionNet) -> None:
        super().__init__()
        self.model = model

    def forward(self, windows: torch.Tensor, features: torch.Tensor, channel_mask: torch.Tensor):
        logits, attention, _ = self.model(windows, features, channel_mask)
        return torch.softmax(logits, dim=-1), attention


def example_inputs(model: NeuroFusionNet, window_samples: int, batch: int = 2) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    config = model.config
    windows = torch.randn(batch, config.n_channels, window_samples, generator=generator) * 50
    features = torch.rand(batch, config.n_channels, config.n_features, generator=generator) * 10
    mask = torch.ones(batch, config.n_channels)
    return windows, features, mask


def export_onnx(model: NeuroFusionNet, path: str | Path, window_samples: int) -> Path:
    """Write ``path`` (.onnx) for ``model`` in eval mode."""
    path = Path(path)
    wrapper = ProbabilityHead(model.eval())
    batch, samples = torch.export.Dim("batch", min=1, max=4096), torch.export.Dim("samples", min=16, max=65536)
    shapes = {"windows": {0: batch, 2: samples}, "features": {0: batch}, "channel_mask": {0: batch}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.getLogger("torch.onnx").setLevel(logging.ERROR)
        program = torch.onnx.export(
            wrapper,
            example_inputs(model, window_samples),
            input_names=["windows", "features", "channel_mask"],
            output_names=["probabilities", "channel_attention"],
            dynamic_shapes=shapes,
            dynamo=True,
            opset_version=OPSET,
            verbose=False,
        )
    program.save(str(path), external_data=False)
    return strip_build_paths(path)


def strip_build_paths(path: str | Path) -> Path:
    """Rewrite ``path`` without the nodes' stack traces and doc strings; the graph and weights are untouched."""
    import onnx

    path = Path(path)
    model = onnx.load(str(path))

    def clean(nodes: object) -> None:
        for node in nodes:  # type: ignore[attr-defined]
            kept = [prop for prop in node.metadata_props if prop.key not in BUILD_METADATA]
            del node.metadata_props[:]
            node.metadata_props.extend(kept)
            node.doc_string = ""
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    clean(attribute.g.node)
                for graph in attribute.graphs:
                    clean(graph.node)

    clean(model.graph.node)
    for function in model.functions:
        clean(function.node)
    model.graph.doc_string = ""
    model.doc_string = ""
    onnx.save(model, str(path))
    return path


def export_checkpoint(checkpoint: str | Path, strip_only: bool = False) -> Path:
    """Export ``name.pt`` to ``name.onnx`` and record the ONNX file's sha256 in the checkpoint's card.

    ``strip_only``: keep the existing export's graph and only drop its build paths (``strip_build_paths``)."""
    from models.predictor import file_sha256

    model, card = load_checkpoint(checkpoint)
    if strip_only:
        exported = strip_build_paths(onnx_path(checkpoint))
    else:
        exported = export_onnx(model, onnx_path(checkpoint), card.window_samples)
    card.onnx_sha256 = file_sha256(exported)
    save_checkpoint(checkpoint, model, card)
    return exported


def max_output_difference(checkpoint: str | Path, windows: np.ndarray, features: np.ndarray, mask: np.ndarray) -> float:
    """Largest absolute difference between ONNX Runtime and torch outputs on the same inputs."""
    import onnxruntime

    model, _ = load_checkpoint(checkpoint)
    with torch.inference_mode():
        expected = ProbabilityHead(model)(torch.from_numpy(windows), torch.from_numpy(features), torch.from_numpy(mask))
    session = onnxruntime.InferenceSession(str(onnx_path(checkpoint)), providers=["CPUExecutionProvider"])
    got = session.run(None, {"windows": windows, "features": features, "channel_mask": mask})
    return max(float(np.abs(a.numpy() - b).max()) for a, b in zip(expected, got, strict=True))


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Export a checkpoint to ONNX beside it (card updated).")
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--strip-only", action="store_true",
                        help="keep the existing export's graph, only drop the build machine's paths from it")
    args = parser.parse_args(argv)
    print(export_checkpoint(args.checkpoint, strip_only=args.strip_only))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
