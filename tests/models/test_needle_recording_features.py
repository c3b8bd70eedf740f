"""Recording-level needle features (second round of the study): one finite value per name, the spectrum group blind
to gain, and the amplitude groups moved by exactly the gain on a log scale."""

from __future__ import annotations

import numpy as np

from dsp.resample import NEEDLE_FS
from models.needle_features import condition
from models.needle_recording_features import RECORDING_FEATURE_NAMES, recording_feature_vector


def spiky_signal(seconds: float = 2.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, int(seconds * NEEDLE_FS))
    shape = np.diff(np.exp(-np.linspace(-3, 3, 80) ** 2)) * 4000  # a biphasic MUP-like spike, ~5 ms
    for start in rng.integers(0, len(x) - 100, 60):
        x[start:start + len(shape)] += shape
    return condition(x)


def test_one_finite_value_per_name_and_gain_moves_only_amplitude():
    x = spiky_signal()
    base, louder = recording_feature_vector(x), recording_feature_vector(2.0 * x)
    assert base.shape == (len(RECORDING_FEATURE_NAMES),) and np.all(np.isfinite(base))
    named = dict(zip(RECORDING_FEATURE_NAMES, base, strict=True))
    named_louder = dict(zip(RECORDING_FEATURE_NAMES, louder, strict=True))
    for name in RECORDING_FEATURE_NAMES:
        if name.startswith("spectrum_") or name.startswith("amp_ratio") or name == "env_ratio_p90_p10":
            assert abs(named_louder[name] - named[name]) < 1e-3, name  # the +1e-3 µV floors aside
    for name in ("amp_log_p50", "amp_log_p99", "env_log_p50", "spike_log_amp_p50"):
        assert abs(named_louder[name] - named[name] - np.log(2.0)) < 0.02, name
    assert named["spike_rate"] > 0
