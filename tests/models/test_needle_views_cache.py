"""`train --mode needle` caches each recording's window statistics and crops by content: a second run reads them
back identical, and different samples (or a different rate) are never served another recording's features."""

from __future__ import annotations

import numpy as np
import pytest

import models.needle_training as training
from models.needle_features import NEEDLE_FS


def test_views_come_back_identical_from_the_cache_and_only_for_the_same_content(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    signals = [rng.normal(0, 80, int(NEEDLE_FS)).astype(np.float32) for _ in range(2)]
    first = training.view_of(signals, [8000.0, 32768.0], tmp_path)
    assert len(list((tmp_path / "views").glob("*.npz"))) == 2
    plain = training.view_of(signals, [8000.0, 32768.0], None)  # no cache: the same numbers
    assert all(np.array_equal(a, b) for a, b in zip(first.features, plain.features, strict=True))

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("features computed again")

    monkeypatch.setattr(training, "window_features", refuse)
    again = training.view_of(signals, [8000.0, 32768.0], tmp_path)
    for a, b in zip(first.features + first.crops, again.features + again.crops, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    changed = signals[0].copy()
    changed[100] += 1.0
    for other, fs in ((changed, 8000.0), (signals[0], 12000.0)):
        with pytest.raises(AssertionError, match="computed again"):
            training.view_of([other], [fs], tmp_path)
