"""The adaptation panel offscreen: label buttons make marks from the clock, one span open at a time, and
refusals are shown in the panel instead of raised into Qt."""

from __future__ import annotations

import os

import numpy as np

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

FS = 2048.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_label_buttons_mark_spans_and_refusals_show_in_the_panel(qtbot, tmp_path) -> None:
    from dsp.engine import DspEngine
    from dsp.ringbuffer import RingBuffer
    from models.checkpoint import load_checkpoint
    from monitor.adaptation.session import AdaptationSession
    from monitor.gui.adaptation import AdaptationPanel

    _, card = load_checkpoint()
    engine = DspEngine(RingBuffer(int(FS * 5), 8), FS, filtered_seconds=30.0)
    session = AdaptationSession(engine.filtered, FS, card, None, "p-3", tmp_path)
    clock = Clock(100.0)
    panel = AdaptationPanel(session, clock)
    qtbot.addWidget(panel)
    rng = np.random.default_rng(0)
    samples = 40.0 * rng.standard_normal((int(12 * FS), 8)).astype(np.float32)
    engine.process(samples, 100.0 + np.arange(len(samples)) / FS, 0)  # 12 s of signal, LSL time 100-112

    panel.label_buttons["healthy"].click()
    clock.now = 103.0
    panel.label_buttons["myopathy"].click()  # another label: the healthy span ends here
    clock.now = 104.5
    panel.label_buttons["ignore"].click()
    clock.now = 105.0
    panel.label_buttons["ignore"].click()  # pressed again: the span ends
    marks = session.marks.marks()
    assert [(m.label, m.start, m.end, m.source) for m in marks] == [
        ("healthy", 100.0, 103.0, "button"), ("myopathy", 103.0, 104.5, "button"), ("ignore", 104.5, 105.0, "button")]
    assert not panel.label_buttons["healthy"].isChecked() and not panel.label_buttons["ignore"].isChecked()
    panel.refresh()
    spans = session.store.spans()  # captured from the engine's buffer; "ignore" is never trained on
    assert [(s.mark.label, len(s.data)) for s in spans] == [("healthy", 3 * 2048 + 1), ("myopathy", 1.5 * 2048 + 1)]
    assert "healthy 3 s" in panel.marked.text()

    panel.mark_selection("neuropathy", 106.0, 105.0)
    assert "must end after it starts" in panel.status.text()
    panel.adapt_button.click()  # no neuropathy marked: fine-tuning would teach the model to forget it
    assert "too little marked signal for neuropathy" in panel.status.text() and session.job is None
    panel.mark_selection("surprise", 106.0, 108.0)
    panel.adapt_button.click()
    assert "'surprise' are not classes of the model" in panel.status.text() and session.job is None
    assert not panel.cancel_button.isEnabled() and not panel.switch_button.isEnabled()
