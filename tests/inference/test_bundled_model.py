"""The bundled checkpoint served by a worker started the way the monitor starts it (default model, ONNX when
exported): same answers as the predictor in-process."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.inference.client import InferenceClient
from monitor.inference.supervisor import spawn_worker
from tests.inference.helpers import collect_decisions, emg_like_windows

pytestmark = pytest.mark.slow  # loads the bundled model twice (here and in the worker)


def test_default_worker_serves_the_bundled_model() -> None:
    from models.predictor import load_predictor

    predictor = load_predictor()  # the bundled default, backend "auto" like the worker
    card = predictor.card
    windows = emg_like_windows(5, card.n_channels, card.window_samples, seed=12)
    handle = spawn_worker(standby=False)
    try:
        assert handle.model_id == card.model_id
        with InferenceClient(handle.endpoint, bed_id="bed-1", deadline_s=20.0, max_in_flight=8) as client:
            for index in range(5):
                client.submit(windows[index], float(index), index, card.fs)
            decisions = collect_decisions(client, 5)
    finally:
        handle.stop()
    decisions.sort(key=lambda d: d.sequence)
    expected = predictor.predict(windows, np.ones((5, card.n_channels), bool), card.fs)
    assert [d.sequence for d in decisions] == list(range(5))
    assert all(d.classes == tuple(card.classes) for d in decisions)
    np.testing.assert_allclose([d.probabilities for d in decisions], expected.probabilities, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose([d.channel_attention for d in decisions], expected.channel_attention, rtol=1e-4,
                               atol=1e-5)
