"""ONNX (dynamo) export agrees with torch, and the predictor picks the ONNX backend only when it is current."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from model_helpers import emg_windows

from models.checkpoint import onnx_path
from models.export import max_output_difference
from models.predictor import handcrafted_features, load_predictor


def test_onnx_runtime_matches_torch_to_1e_4_with_masks_and_other_lengths(exported_grid_checkpoint):
    for batch, samples in ((1, 400), (5, 400), (3, 256)):
        windows = emg_windows(batch, 64, samples, seed=batch)
        features = handcrafted_features(windows, 2048.0, load_predictor(exported_grid_checkpoint).card.feature_names)
        mask = np.ones((batch, 64), np.float32)
        mask[0, [0, 9, 63]] = 0.0
        assert max_output_difference(exported_grid_checkpoint, windows, features, mask) < 1e-4


def test_predictor_backends_agree_and_auto_prefers_a_current_onnx_file(exported_grid_checkpoint, tmp_path):
    onnx_predictor = load_predictor(exported_grid_checkpoint, backend="onnx")
    torch_predictor = load_predictor(exported_grid_checkpoint, backend="torch")
    assert onnx_predictor.backend == "onnx" and load_predictor(exported_grid_checkpoint).backend == "onnx"
    windows = emg_windows(4, 64, 400)
    mask = np.ones((4, 64), bool)
    mask[1, 5] = False
    a = onnx_predictor.predict(windows, mask, 2048.0)
    b = torch_predictor.predict(windows, mask, 2048.0)
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-4)
    np.testing.assert_allclose(a.channel_attention, b.channel_attention, atol=1e-4)

    # an ONNX file that does not belong to these weights is never used
    copy = tmp_path / "copy.pt"
    shutil.copy(exported_grid_checkpoint, copy)
    onnx_path(copy).write_bytes(b"stale")
    assert load_predictor(copy).backend == "torch"
    with pytest.raises(ValueError, match="no current ONNX export"):
        load_predictor(copy, backend="onnx")


def build_paths_in(path) -> list[bytes]:
    """Absolute paths of the build machine that a file carries (the repository, the environment, home folders)."""
    from tests.conftest import REPO

    data = path.read_bytes()
    return [marker for marker in (str(REPO).encode(), b"site-packages", b"/home/", b"/root/", b"/work/")
            if marker in data]


def test_exports_carry_no_path_of_the_machine_they_were_built_on(exported_grid_checkpoint):
    from models.checkpoint import BUNDLED_CHECKPOINT, read_card
    from models.predictor import file_sha256

    assert build_paths_in(onnx_path(exported_grid_checkpoint)) == []  # a fresh export, stripped as it is written
    bundled = onnx_path(BUNDLED_CHECKPOINT)
    assert build_paths_in(bundled) == [] and build_paths_in(BUNDLED_CHECKPOINT) == []
    assert build_paths_in(BUNDLED_CHECKPOINT.with_name("fatigue-forecaster.onnx")) == []
    assert read_card().onnx_sha256 == file_sha256(bundled)  # still the current export of the bundled weights
