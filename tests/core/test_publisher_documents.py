"""The core's status document says what the in-process objects would say (the fast paths change no byte)."""

from __future__ import annotations

import json

import numpy as np

from monitor.core.publisher import fatigue_document


def test_the_fatigue_document_is_the_reports_own_to_dict() -> None:
    from dsp.engine import DspEngine
    from dsp.ringbuffer import RingBuffer

    fs, n_channels = 2048.0, 16
    engine = DspEngine(RingBuffer(int(fs * 4), n_channels), fs)
    rng = np.random.default_rng(21)
    samples = (rng.standard_normal((int(fs * 2), n_channels)) * 40).astype(np.float32)
    samples[:, 3] = 0.0  # a flat channel: NaN figures in the report
    results = engine.process(samples, np.arange(len(samples)) / fs, 0)
    reports = [results[0].fatigue, results[-1].fatigue]
    assert any(np.isnan(value).any() for value in reports[-1].__dict__.values()
               if isinstance(value, np.ndarray) and value.dtype.kind == "f")  # fmt: skip
    for report in reports:
        assert json.dumps(fatigue_document(report)) == json.dumps(report.to_dict())


def test_a_view_reads_back_the_fatigue_report_the_core_published() -> None:
    # the per-channel reasons (text) were parsed as numbers: every attached view's sync failed with "could not
    # convert string to float: 'no contraction yet'" once the report carried them
    from dsp.engine import DspEngine
    from dsp.ringbuffer import RingBuffer
    from monitor.view_client import fatigue_report

    fs, n_channels = 2048.0, 4
    engine = DspEngine(RingBuffer(int(fs * 8), n_channels), fs)
    rng = np.random.default_rng(5)
    rest = rng.standard_normal((int(fs * 4), n_channels)) * 5
    contraction = rng.standard_normal((int(fs * 3), n_channels)) * 200
    samples = np.concatenate([rest, contraction]).astype(np.float32)
    report = engine.process(samples, np.arange(len(samples)) / fs, 0)[-1].fatigue
    read = fatigue_report(json.loads(json.dumps(fatigue_document(report))))
    assert read.reasons == report.reasons and read.reason == report.reason and read.states == report.states
    for name, value in report.__dict__.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(read, name), value)
