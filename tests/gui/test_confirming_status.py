"""The status view and banner while a returned stream's samples are held (Qt offscreen, a stand-in pipeline)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.confirming_return import STORED, UNCONFIRMED_DROPPED, confirming_pipeline


def test_status_view_says_the_stream_is_back_and_counts_the_samples_the_hold_dropped(qtbot):
    from monitor.gui.status import StatusView

    view = StatusView(confirming_pipeline())
    qtbot.addWidget(view)
    view.refresh()
    signal = view.fields["signal"].text()
    assert "stream back, confirming its rate (2.0 s held)" in signal and "signal lost" not in signal
    samples = view.fields["samples"].text()
    dropped = f"dropped {UNCONFIRMED_DROPPED} ({UNCONFIRMED_DROPPED} while confirming the rate)"
    assert samples == f"{STORED}  {dropped}  gaps 1"


def test_banner_says_the_stream_is_back_not_lost_while_its_rate_is_confirmed(qtbot):
    from PyQt6 import QtWidgets

    from monitor.gui.main_window import MainWindow

    banner = QtWidgets.QLabel()
    qtbot.addWidget(banner)
    window = SimpleNamespace(pipeline=confirming_pipeline(), banner=banner)
    MainWindow._update_banner(window)  # the banner's own logic, without building every view
    assert banner.text() == "'amp' is back — confirming its rate before showing it (2.0 s held)"
    assert "lost" not in banner.text().lower()  # what MainWindow.signal_lost_shown reads
    window.pipeline.acquisition.held_samples = 0  # nothing held: the stream is simply away
    MainWindow._update_banner(window)
    assert banner.text() == "Signal lost — waiting for 'amp' to return"
