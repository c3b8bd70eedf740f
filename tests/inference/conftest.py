"""Shared fixtures: a real (small, untrained) NeuroFusionNet checkpoint and a real worker subprocess serving it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.inference.supervisor import WorkerHandle, spawn_worker
from tests.inference.helpers import make_checkpoint


@pytest.fixture(scope="session")
def ring8_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("checkpoints"), "ring8")


@pytest.fixture(scope="session")
def in_process_predictor(ring8_checkpoint: Path):
    from models.predictor import load_predictor

    return load_predictor(ring8_checkpoint, backend="torch")


@pytest.fixture(scope="module")
def worker(ring8_checkpoint: Path) -> Iterator[WorkerHandle]:
    handle = spawn_worker(ring8_checkpoint, backend="torch", standby=False)
    yield handle
    handle.stop()
