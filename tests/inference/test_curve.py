"""A worker bound with CURVE answers only clients whose public key it was given."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from monitor.inference.client import InferenceClient
from monitor.inference.security import CurveClientKeys, make_key_pair
from monitor.inference.supervisor import spawn_worker

FS = 2000.0


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("keys")
    paths: dict[str, Path] = {}
    for name, directory in (("worker", "server"), ("bed-1", "allowed"), ("intruder", "others")):
        public, secret = make_key_pair(root / directory, name)
        paths[name], paths[f"{name}_secret"] = public, secret
    return paths


@pytest.fixture(scope="module")
def secured_worker(ring8_checkpoint, keys):
    handle = spawn_worker(ring8_checkpoint, endpoint="tcp://127.0.0.1:*", backend="torch", standby=False,
                          extra_args=("--curve-secret", str(keys["worker_secret"]),
                                      "--curve-clients", str(keys["bed-1"].parent)))
    yield handle
    handle.stop()


def ask(endpoint: str, curve: CurveClientKeys | None, wait_s: float) -> tuple[list, dict]:
    window = np.random.default_rng(0).normal(0, 30, (8, 400)).astype(np.float32)
    with InferenceClient(endpoint, bed_id="bed-1", deadline_s=wait_s, curve=curve, startup_s=wait_s) as client:
        client.submit(window, 1.0, 0, FS)
        decisions: list = []
        give_up = time.monotonic() + wait_s
        while not decisions and time.monotonic() < give_up:
            decisions += client.poll(0.1)
        return decisions, client.stats


def test_authorised_client_gets_an_answer(secured_worker, keys) -> None:
    decisions, stats = ask(secured_worker.endpoint, CurveClientKeys(keys["worker"], keys["bed-1_secret"]), 30.0)
    assert [d.sequence for d in decisions] == [0] and stats["state"] == "online"


def test_client_with_an_unknown_key_gets_nothing(secured_worker, keys) -> None:
    decisions, stats = ask(secured_worker.endpoint, CurveClientKeys(keys["worker"], keys["intruder_secret"]), 2.0)
    assert decisions == [] and stats["sent"] == 0 and stats["answered"] == 0
    assert stats["state"] == "offline" and stats["dropped_deadline"] == 1


def test_client_expecting_another_server_key_gets_nothing(secured_worker, keys) -> None:
    # the right client key, but it trusts a different server public key: the handshake cannot complete
    decisions, stats = ask(secured_worker.endpoint, CurveClientKeys(keys["intruder"], keys["bed-1_secret"]), 2.0)
    assert decisions == [] and stats["answered"] == 0 and stats["state"] == "offline"


def test_client_without_curve_gets_nothing(secured_worker) -> None:
    decisions, stats = ask(secured_worker.endpoint, None, 2.0)
    assert decisions == [] and stats["answered"] == 0 and stats["state"] == "offline"


@pytest.mark.slow
def test_secured_broker_admits_keyed_workers_and_clients(ring8_checkpoint, keys, tmp_path) -> None:
    from tests.inference.test_broker import launch, stop, wait_for

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    for name in ("bed-1", "worker"):  # the broker admits this monitor and this worker (keys it was given)
        (allowed / f"{name}.key").write_bytes(keys[name].read_bytes())
    broker_public, broker_secret = make_key_pair(tmp_path / "broker", "broker")
    broker, ready = launch("broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                           "--curve-secret", str(broker_secret), "--curve-clients", str(allowed))
    bound = json.loads(ready)
    worker, _ = launch("worker", "--connect", bound["backend"], "--model", str(ring8_checkpoint), "--backend",
                       "torch", "--server-key", str(broker_public), "--curve-secret", str(keys["worker_secret"]))
    try:
        curve = CurveClientKeys(broker_public, keys["bed-1_secret"])
        with InferenceClient(bound["frontend"], bed_id="bed-1", deadline_s=30.0, curve=curve) as client:
            assert wait_for(lambda: client.stats["workers"] == 1 and client.state == "online", 30)
            client.submit(np.zeros((8, 400), np.float32), 1.0, 7, FS)
            decisions: list = []
            assert wait_for(lambda: bool(decisions.extend(client.poll()) or decisions), 30)
            assert decisions[0].sequence == 7
        decisions, stats = ask(bound["frontend"], CurveClientKeys(broker_public, keys["intruder_secret"]), 2.0)
        assert decisions == [] and stats["answered"] == 0
    finally:
        stop(worker)
        stop(broker)
