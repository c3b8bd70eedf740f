"""The dashboard with the real inference service: a worker process over ZeroMQ running a (small, untrained) model."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.pipeline import LEARNING_LABEL, REST_LABEL
from simulators.electrodes import ElectrodeLayout
from tests.gui.conftest import DEAD_CHANNEL, stop_pipeline
from tests.gui.streams import BandNoiseSource, LiveStream
from tests.untrained_ring_model import CLASSES, save_untrained_ring_model


@pytest.mark.slow
def test_decisions_from_the_worker_reach_the_classification_electrode_and_status_views(qtbot, tmp_path):
    from monitor.gui.electrodes import UNKNOWN
    from monitor.gui.main_window import MainWindow
    from monitor.inference.client import InferenceClient
    from monitor.inference.supervisor import spawn_worker
    from monitor.pipeline import MonitorPipeline

    layout = ElectrodeLayout.ring(8)
    stream = LiveStream(BandNoiseSource(layout, dead_channel=DEAD_CHANNEL), name="gui-worker").start()
    model_path = save_untrained_ring_model(tmp_path, layout.to_dict(), model_id="test-gui-ring8", seed=3)
    worker = spawn_worker(model_path=model_path, backend="torch", standby=False)
    pipeline = None
    try:
        client = InferenceClient(endpoint=worker.endpoint, bed_id=stream.source_id, deadline_s=5.0)
        pipeline = MonitorPipeline(stream.resolve(), client=client, publish=False)
        pipeline.start()
        window = MainWindow(pipeline)
        qtbot.addWidget(window)
        window.show()
        qtbot.waitUntil(lambda: len(window.classification.probabilities) >= 20, timeout=40000)
        window.refresh(everything=True)
        with pipeline.state.lock:
            records = {r.sequence: r for r in pipeline.state.decisions}
    finally:
        if pipeline is not None:
            stop_pipeline(pipeline)
        worker.stop()
        stream.vanish()
    assert window.view_errors == {}
    view = window.classification
    assert view.classes == CLASSES
    # what is plotted is exactly what the worker answered, in order
    assert view.last_sequence in records
    shown = view.probabilities
    np.testing.assert_allclose(shown[-1], records[view.last_sequence].probabilities, atol=1e-6)
    np.testing.assert_allclose(shown.sum(axis=1), 1.0, atol=1e-4)
    assert all(len(c.xData) == len(shown) for c in view._curves())
    # steady noise never contracts: the call is the pipeline's verdict without a condition ("learning rest level"
    # for the first 3 s, then "rest"), never one of the model's classes
    assert view.label in (LEARNING_LABEL, REST_LABEL)
    assert view.call_label.text().startswith(view.label)
    # attention colours every electrode; the masked one is crossed out
    assert UNKNOWN not in window.electrodes.attention_map.colours
    assert window.electrodes.bad[DEAD_CHANNEL] and window.electrodes.bad.sum() == 1
    assert "model attention: E" in window.electrodes.summary.text()  # no call for the attention to drive
    # status: a live worker and measured latencies
    assert window.status.fields["worker"].text().startswith("online")
    assert window.status.fields["latency"].text().startswith("p50")
    assert window.status.fields["latency_worker"].text().startswith("p50")

