"""The status panel names the filter the DSP engine really runs: on a needle stream a high-pass only (no "20-450 Hz"
surface band), read from the engine's settings (Qt offscreen, a stand-in pipeline)."""

from __future__ import annotations

from dsp.engine import EngineSettings
from tests.confirming_return import confirming_pipeline


def _status(qtbot, settings: EngineSettings):  # noqa: ANN001, ANN202
    from monitor.gui.status import StatusView

    pipeline = confirming_pipeline()
    pipeline.state.fs = 10000.0
    pipeline.engine.settings = settings
    pipeline.engine.update_settings = lambda **changes: [setattr(settings, k, v) for k, v in changes.items()]
    view = StatusView(pipeline)
    qtbot.addWidget(view)
    return view


def test_needle_stream_shows_its_high_pass_not_the_surface_band(qtbot) -> None:  # noqa: ANN001
    view = _status(qtbot, EngineSettings(mode="needle", low_hz=10.0))
    assert view.filter_label.text() == "high-pass 10 Hz" and "450" not in view.filter_label.text()
    assert view.high_box.isHidden()  # the high edge does nothing on a needle stream
    view.low_box.setValue(600.0)  # above the unused 450 Hz edge: still a valid high-pass
    assert view.apply_settings(("low_hz",)) and view.pipeline.engine.settings.low_hz == 600.0
    assert view.filter_label.text() == "high-pass 600 Hz"


def test_surface_stream_shows_its_band_pass(qtbot) -> None:  # noqa: ANN001
    view = _status(qtbot, EngineSettings())
    assert view.filter_label.text() == "band-pass 20-450 Hz" and not view.high_box.isHidden()
