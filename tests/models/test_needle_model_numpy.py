"""The statistics needle model runs without torch: its weights are read by models.tensor_archive (an allow-list like
``weights_only=True``) and its verdicts equal the torch form's to the digits summary.json keeps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models.needle_model import BUNDLED_NEEDLE_MODEL, NEEDLE_FORMAT, NeedleModel, load_needle_model
from models.needle_net import network_from_config
from models.tensor_archive import TensorArchiveError, read_tensor_archive
from monitor.recordings import open_recording
from monitor.recordings.needle import condition, needle_signal
from tests.conftest import NEEDLE_CLINICAL, needs_needle_clinical

# one recording per class (biceps, deltoid): the guard that dropping torch changed no verdict
RECORDINGS = ("02_Biceps Brachii/Healthy/EMG _225 _13_ RB_Hea.asc.xz",
              "01_Deltoid/Myopathy/EMG _101 _01_ RD_Myo.asc.xz")


def torch_form() -> NeedleModel:
    """The bundled model as it ran before: torch.load(weights_only=True) and the torch module."""
    import json

    payload = torch.load(BUNDLED_NEEDLE_MODEL, map_location="cpu", weights_only=True)
    card = json.loads(payload["card"])
    network = network_from_config(card["network"])
    network.load_state_dict(payload["state_dict"])
    return NeedleModel(network, card)


def test_the_archive_reader_gives_torchs_tensors():
    ours = read_tensor_archive(BUNDLED_NEEDLE_MODEL)
    theirs = torch.load(BUNDLED_NEEDLE_MODEL, map_location="cpu", weights_only=True)
    assert ours["format"] == theirs["format"] == NEEDLE_FORMAT and ours["card"] == theirs["card"]
    assert set(ours["state_dict"]) == set(theirs["state_dict"])
    for key, value in theirs["state_dict"].items():
        assert np.array_equal(ours["state_dict"][key], value.numpy())


def test_strided_and_offset_tensors_and_refused_globals(tmp_path):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    torch.save({"t": base.t(), "row": base[2], "long": torch.tensor([3, -1])}, tmp_path / "views.pt")
    read = read_tensor_archive(tmp_path / "views.pt")
    assert np.array_equal(read["t"], base.t().numpy()) and np.array_equal(read["row"], base[2].numpy())
    assert read["long"].dtype == np.int64 and read["long"].tolist() == [3, -1]
    torch.save({"format": NEEDLE_FORMAT, "module": torch.nn.Linear(2, 2)}, tmp_path / "module.pt")
    with pytest.raises(TensorArchiveError, match="does not take"):
        read_tensor_archive(tmp_path / "module.pt")
    with pytest.raises(ValueError, match="not a readable needle model") as caught:  # torch refuses it too
        load_needle_model(tmp_path / "module.pt")
    assert "\n" not in str(caught.value)


def test_a_loaded_statistics_model_has_no_torch_module_until_asked():
    model = load_needle_model()
    assert model.is_statistics and model._network is None
    assert isinstance(model.network, torch.nn.Module)  # calibration still gets the torch module


@needs_needle_clinical
@pytest.mark.parametrize("name", RECORDINGS)
def test_summary_verdicts_are_those_of_the_torch_form(name):
    signal = needle_signal(open_recording(NEEDLE_CLINICAL / name))
    assert condition(load_needle_model(), [signal]) == condition(torch_form(), [signal])
    loaded = load_needle_model().predict_recording(signal.recorded, signal.source_fs)["probabilities"]
    before = torch_form().predict_recording(signal.recorded, signal.source_fs)["probabilities"]
    assert max(abs(loaded[k] - before[k]) for k in before) < 1e-5


@pytest.mark.parametrize(("offset", "size", "stride"), [(2, (2,), (-1,)), (-1, (2,), (1,)), (0, (-2,), (1,))])
def test_a_tensor_reaching_outside_its_storage_backwards_is_refused(offset, size, stride):
    from models.tensor_archive import _rebuild_tensor

    with pytest.raises(TensorArchiveError):
        _rebuild_tensor(np.arange(4.0), offset, size, stride)
