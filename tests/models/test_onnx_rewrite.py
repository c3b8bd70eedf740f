"""The in-memory rewrites of the exported graph (GELU fused, 1-D convolutions as 2-D) change no decision."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from models.checkpoint import BUNDLED_CHECKPOINT, ModelCard, card_path, onnx_path
from models.onnx_rewrite import conv1d_as_conv2d, faster_model_bytes, fuse_gelu
from models.predictor import _onnx_runner

pytest.importorskip("onnxruntime")
BUNDLED_ONNX = onnx_path(BUNDLED_CHECKPOINT)


def test_the_bundled_graph_is_rewritten_where_expected() -> None:
    exported = onnx.load(str(BUNDLED_ONNX))
    assert fuse_gelu(onnx.load(str(BUNDLED_ONNX)).graph) == sum(n.op_type == "Erf" for n in exported.graph.node) > 0
    assert conv1d_as_conv2d(onnx.load(str(BUNDLED_ONNX)).graph) == sum(n.op_type == "Conv" for n in exported.graph.node)
    model = onnx.load_from_string(faster_model_bytes(BUNDLED_ONNX))
    ops = [node.op_type for node in model.graph.node]
    assert "Erf" not in ops and ops.count("Gelu") == [n.op_type for n in exported.graph.node].count("Erf")
    assert all(len(next(t for t in model.graph.initializer if t.name == n.input[1]).dims) == 4
               for n in model.graph.node if n.op_type == "Conv")  # fmt: skip
    onnx.checker.check_model(model)


def test_rewritten_model_gives_the_exported_outputs() -> None:
    card = ModelCard.from_json(card_path(BUNDLED_CHECKPOINT).read_text())  # the card without torch: ~4 s less
    rewritten, exported = _onnx_runner(BUNDLED_ONNX, 1, rewrite=True), _onnx_runner(BUNDLED_ONNX, 1, rewrite=False)
    rng = np.random.default_rng(21)
    batch = 16
    windows = (rng.standard_normal((batch, card.n_channels, card.window_samples)) * 80).astype(np.float32)
    features = rng.standard_normal((batch, card.n_channels, len(card.feature_names))).astype(np.float32)
    mask = (rng.random((batch, card.n_channels)) > 0.25).astype(np.float32)
    mask[:, 0] = 1.0
    new_probabilities, new_attention = rewritten(windows, features, mask)
    probabilities, attention = exported(windows, features, mask)
    # float32 sums in another order: ~1e-7 measured; 1e-5 is still far below any decision margin
    np.testing.assert_allclose(new_probabilities, probabilities, atol=1e-5, rtol=0)
    np.testing.assert_allclose(new_attention, attention, atol=1e-5, rtol=0)
    assert (new_probabilities.argmax(axis=1) == probabilities.argmax(axis=1)).all()


def test_a_graph_without_the_patterns_is_left_to_load_as_exported(tmp_path: object) -> None:
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "plain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])  # fmt: skip
    path = tmp_path / "plain.onnx"  # type: ignore[operator]
    onnx.save(helper.make_model(graph), str(path))
    assert faster_model_bytes(path) is None
    assert faster_model_bytes(tmp_path / "missing.onnx") is None  # type: ignore[operator]  # logged, not raised
