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


@pytest.fixture(scope="session")
def worker(ring8_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerHandle]:
    # one process for every module that only talks to it (a start is a Python + torch import, 3-12 s on 2 cores);
    # the hot-swap tests switch back to this model when they are done. load_model takes checkpoints only from
    # allowed folders: the tests' checkpoints live under pytest's base folder
    handle = spawn_worker(ring8_checkpoint, backend="torch", standby=False,
                          extra_args=("--models-dir", str(tmp_path_factory.getbasetemp())))
    yield handle
    handle.stop()
