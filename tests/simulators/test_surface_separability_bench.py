"""bench_sim_surface_separability's patient-wise classifier: gain-free features that carry the condition are found,
an amplitude that does not is at chance, and a subject's gain cannot help (synthetic rows, no simulation)."""

from __future__ import annotations

import numpy as np

from benchmarks.bench_sim_surface import GROUPS
from benchmarks.bench_sim_surface_separability import EFFORTS, GAIN_FREE, separability


def synthetic_rows(per_group: int = 4) -> list[dict]:
    rng = np.random.default_rng(0)
    shift = {"healthy": 0.0, "myopathy": 15.0, "neuropathy": -15.0}
    rows = []
    for condition, severity in GROUPS:
        for _ in range(per_group):
            row = {"condition": condition, "severity": severity}
            for mvc in EFFORTS:
                features = {name: float(rng.normal(1.0, 0.1)) for name in GAIN_FREE}
                features["mnf_hz"] = float(60.0 + shift[condition] + rng.normal(0, 2))  # the condition shows here
                features["rms_mean_uv"] = float(np.exp(rng.normal(5.0, 0.3)) * mvc / 20)  # and not here
                features["rms_max_uv"] = 2.5 * features["rms_mean_uv"]
                row[f"{mvc:g}"] = features
            rows.append(row)
    return rows


def test_gain_free_features_that_carry_the_condition_separate_it_and_a_blind_amplitude_does_not() -> None:
    result = separability(synthetic_rows())
    assert result["gain-free features"]["balanced_accuracy"] > 0.9
    low, high = result["gain-free features"]["interval_95"]
    assert low <= result["gain-free features"]["balanced_accuracy"] <= high
    assert result["amplitude, gain +-12 dB"]["balanced_accuracy"] < 0.7
    assert sum(map(sum, result["gain-free features"]["confusion_rows_true"])) == 4 * len(GROUPS)
