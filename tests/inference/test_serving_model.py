"""The graph the inference worker loads (models.onnx_rewrite.serving_model_bytes): ORT's optimised graph for this
CPU with the GELUs kept in the convolutions' blocked layout gives the very same outputs, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

ort = pytest.importorskip("onnxruntime")


def _session(model: bytes) -> object:
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def test_the_served_graph_keeps_gelu_blocked_and_gives_identical_outputs() -> None:
    from models.checkpoint import BUNDLED_CHECKPOINT, onnx_path
    from models.onnx_rewrite import faster_model_bytes, proto, serving_model_bytes

    path = onnx_path(BUNDLED_CHECKPOINT)
    faster, served = faster_model_bytes(path), serving_model_bytes(path)
    assert faster is not None and served is not None
    model = proto().ModelProto()
    model.ParseFromString(served)
    producers = {name: node for node in model.graph.node for name in node.output}
    gelus = [node for node in model.graph.node if node.op_type == "Gelu"]
    blocked = [node for node in gelus if producers[node.input[0]].domain == "com.microsoft.nchwc"]
    assert len(blocked) >= 2  # every GELU between two convolutions
    ops = [node.op_type for node in model.graph.node]
    assert ops.count("ReorderInput") < ops.count("Gelu")

    reference, candidate = _session(faster), _session(served)
    inputs = reference.get_inputs()
    n_channels, n_features = inputs[0].shape[1], inputs[1].shape[2]
    rng = np.random.default_rng(21)
    for batch in (1, 8):
        mask = (rng.random((batch, n_channels)) > 0.25).astype(np.float32)
        mask[:, 0] = 1.0
        feed = dict(zip([item.name for item in inputs], (
            (rng.standard_normal((batch, n_channels, 410)) * 80).astype(np.float32),
            rng.standard_normal((batch, n_channels, n_features)).astype(np.float32), mask), strict=True))
        for got, expected in zip(candidate.run(None, feed), reference.run(None, feed), strict=True):
            np.testing.assert_array_equal(got, expected)


def test_the_first_rewrites_still_serve_when_the_blocked_step_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    from models import onnx_rewrite
    from models.checkpoint import BUNDLED_CHECKPOINT, onnx_path

    def refuse(model: bytes) -> bytes:
        raise RuntimeError("no optimised graph here")

    monkeypatch.setattr(onnx_rewrite, "ort_optimised_bytes", refuse)
    path = onnx_path(BUNDLED_CHECKPOINT)
    assert onnx_rewrite.serving_model_bytes(path) == onnx_rewrite.faster_model_bytes(path)
