"""The training corpus on the fibre-level simulator (`neurofusion train --sim-tissue fibres`): its own cache name,
each patient's severity drawn from the seed, the legacy protocol's draws unchanged (issue 18)."""

from __future__ import annotations

from pathlib import Path

from models.datasets import _cache_path, subject_protocol


def test_fibre_subjects_keep_the_legacy_protocol_and_draw_a_severity_for_patients_only() -> None:
    legacy, fibres = subject_protocol("myopathy", 1001), subject_protocol("myopathy", 1001, "fibres")
    assert {k: v for k, v in fibres.items() if k != "severity"} == {k: v for k, v in legacy.items() if k != "severity"}
    assert legacy["severity"] == "moderate" and subject_protocol("healthy", 1000, "fibres")["severity"] == "moderate"
    drawn = {subject_protocol("neuropathy", seed, "fibres")["severity"] for seed in range(1000, 1060)}
    assert drawn == {"mild", "moderate", "severe"}


def test_fibre_subjects_are_cached_under_their_own_model_versions(tmp_path: Path) -> None:
    from simulators.emg import FIBRE_MODEL_VERSION
    from simulators.surface import SURFACE_MODEL_VERSION

    legacy = _cache_path(tmp_path, "healthy", 3, 20.0, "ring8", 2048.0)
    fibres = _cache_path(tmp_path, "healthy", 3, 20.0, "ring8", 2048.0, "fibres")
    assert legacy != fibres and "fibres" not in legacy.name
    assert FIBRE_MODEL_VERSION in fibres.name and SURFACE_MODEL_VERSION in fibres.name


def test_train_takes_the_simulator_model() -> None:
    from monitor.cli import build_parser

    assert build_parser().parse_args(["train"]).sim_tissue == "legacy"
    assert build_parser().parse_args(["train", "--sim-tissue", "fibres"]).sim_tissue == "fibres"
