"""A surface model reads the band it was trained on: the bundled 2048 Hz model (20-450 Hz) on a 200 Hz Myo armband
(nothing above 95 Hz once resampled) called a healthy forearm 55 % myopathy. Such a rate is treated like a layout
that does not fit: the bundled model is not run (one line says why), a model the user names is refused."""

from __future__ import annotations

import uuid

import pylsl
import pytest

from models.checkpoint import BUNDLED_CHECKPOINT
from monitor.cli import main
from monitor.recordings.analysis import rate_misfit
from monitor.session import SessionOptions, check_model_fits, model_card, no_model_status
from tests.conftest import SHARED_DATA

MYO_FILE = SHARED_DATA / "myo-gestures" / "12345-1" / "1.txt"
needs_myo = pytest.mark.skipif(not MYO_FILE.is_file(), reason=f"{MYO_FILE} is not present")


def test_the_band_decides_not_the_rate():
    assert rate_misfit(2048.0, 200.0) == "reads 20-450 Hz and needs >= 948 Hz"
    assert rate_misfit(2048.0, 1000.0) is None  # 20-450 Hz fits below its Nyquist: resampled, same band
    assert rate_misfit(200.0, 200.0) is None  # the small test models' cards say 200 Hz
    assert rate_misfit(200.0, 2048.0) is None  # downsampled: the model's 20-95 Hz is all there


@needs_myo
def test_analyze_runs_the_myo_file_without_the_bundled_model(tmp_path, capsys):
    assert main(["analyze", str(MYO_FILE), "--preset", "myo", "--end", "5", "--no-figures", "--quiet",
                 "--out", str(tmp_path / "bundled")]) == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "no condition model for 200 Hz: the bundled model reads 20-450 Hz and needs >= 948 Hz" in out
    assert "majority" not in out  # no condition verdict at all


@needs_myo
def test_analyze_refuses_a_named_model_for_another_band(tmp_path, capsys):
    assert main(["analyze", str(MYO_FILE), "--preset", "myo", "--end", "5", "--no-figures", "--quiet",
                 "--model", str(BUNDLED_CHECKPOINT), "--out", str(tmp_path / "named")]) == 2  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "needs >= 948 Hz, the recording is at 200 Hz" in error


def test_monitor_leaves_the_bundled_model_off_a_200_hz_stream():
    from monitor.acquisition import full_description
    from monitor.errors import UserError

    source_id = f"rate-{uuid.uuid4().hex[:8]}"
    outlet = pylsl.StreamOutlet(pylsl.StreamInfo("myo-rate", "EMG", 8, 200.0, "float32", source_id))
    resolved = pylsl.resolve_byprop("source_id", source_id, timeout=5.0)
    assert resolved
    options = SessionOptions()
    card = model_card(options)
    assert check_model_fits(card, resolved[0], options) is False
    status = no_model_status(full_description(resolved[0]), card)
    assert status == "no condition model for 200 Hz: the bundled model reads 20-450 Hz and needs >= 948 Hz"
    named = SessionOptions(model=str(BUNDLED_CHECKPOINT))
    with pytest.raises(UserError, match="needs >= 948 Hz but stream 'myo-rate' is at 200 Hz"):
        check_model_fits(model_card(named), resolved[0], named)
    del outlet
