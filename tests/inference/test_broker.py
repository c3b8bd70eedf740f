"""`neurofusion broker` with two real worker processes: load shared, results published, a lost worker survived."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import zmq

from monitor.inference import protocol
from monitor.inference.client import InferenceClient
from tests.conftest import REPO
from tests.inference.helpers import emg_like_windows

pytestmark = pytest.mark.slow  # several worker processes (torch start-ups) on a two-core machine

FS = 2000.0


def launch(*args: str) -> tuple[subprocess.Popen[str], str]:
    """Start `neurofusion ...` and return it with its READY line (minus the prefix)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", *args], stdout=subprocess.PIPE, text=True,
                               env=env, cwd=REPO, stdin=subprocess.DEVNULL)
    for line in process.stdout:
        if line.startswith("READY "):
            return process, line[len("READY "):].strip()
    raise AssertionError(f"{args[0]} exited with {process.wait()} before it was ready")


def stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def start_broker() -> tuple[subprocess.Popen[str], dict[str, str]]:
    process, ready = launch("broker", "--frontend", "tcp://127.0.0.1:*", "--backend", "tcp://127.0.0.1:*",
                            "--publish", "tcp://127.0.0.1:*")
    return process, json.loads(ready)


def pool(frontend: str) -> dict:
    """Ask the broker directly (a ping) how its pool looks."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(frontend)
    try:
        sock.send_multipart([b"", *protocol.encode_ping(protocol.Ping("q"))])
        assert sock.poll(10_000), "the broker did not answer a ping"
        pong = protocol.decode(sock.recv_multipart()[1:])
        return {"workers": pong.workers, **pong.info}
    finally:
        sock.close(0)


def wait_for(condition, timeout_s: float = 60.0) -> bool:
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def broker_with_two_workers(ring8_checkpoint):
    broker, bound = start_broker()
    workers = [launch("worker", "--connect", bound["backend"], "--model", str(ring8_checkpoint),
                      "--backend", "torch")[0] for _ in range(2)]
    try:
        assert wait_for(lambda: pool(bound["frontend"])["workers"] == 2)
        yield bound, workers
    finally:
        for process in [*workers, broker]:
            stop(process)


def test_broker_without_workers_refuses_and_reports_offline() -> None:
    broker, bound = start_broker()
    try:
        with InferenceClient(bound["frontend"], bed_id="bed-1", deadline_s=5.0) as client:
            assert wait_for(lambda: client.stats["workers"] == 0 and client.stats["sent"] == 0 or
                            client.state == "offline", 10)
            client.submit(np.zeros((8, 400), np.float32), 0.0, 0, FS)
            assert wait_for(lambda: client.stats["errors"] == 1, 10)
            assert client.stats["error_codes"] == {protocol.NO_WORKER: 1} and client.state == "offline"
    finally:
        stop(broker)


def test_two_beds_share_two_workers_and_results_are_published(broker_with_two_workers, in_process_predictor) -> None:
    bound, _ = broker_with_two_workers
    subscriber = zmq.Context.instance().socket(zmq.SUB)
    subscriber.setsockopt(zmq.LINGER, 0)
    subscriber.connect(bound["publish"])
    subscriber.subscribe(b"bed-1")  # the central station watches one bed
    time.sleep(0.3)  # a SUB only receives what is published after it has joined
    windows = emg_like_windows(20, 8, 400, seed=5)
    answered: dict[str, list] = {"bed-1": [], "bed-2": []}
    clients = {bed: InferenceClient(bound["frontend"], bed_id=bed, deadline_s=30.0, max_in_flight=20)
               for bed in answered}
    try:
        for index in range(20):
            for client in clients.values():
                client.submit(windows[index], float(index), index, FS)
        give_up = time.monotonic() + 60
        while sum(map(len, answered.values())) < 40 and time.monotonic() < give_up:
            for bed, client in clients.items():
                answered[bed] += client.poll(0.05)
    finally:
        for client in clients.values():
            client.close()
    expected = in_process_predictor.predict(windows, np.ones((20, 8), bool), FS)
    for bed, decisions in answered.items():
        decisions.sort(key=lambda d: d.sequence)
        assert [d.sequence for d in decisions] == list(range(20)) and {d.bed_id for d in decisions} == {bed}
        np.testing.assert_allclose([d.probabilities for d in decisions], expected.probabilities, rtol=1e-4, atol=1e-5)
    served = [worker["answered"] for worker in pool(bound["frontend"])["pool"]]
    assert len(served) == 2 and sum(served) == 40 and min(served) > 0  # both workers took a share
    published = []
    while subscriber.poll(1000):
        topic, *body = subscriber.recv_multipart()
        published.append((topic, protocol.decode(body)))
    subscriber.close(0)
    assert {topic for topic, _ in published} == {b"bed-1"}
    assert sorted(result.sequence for _, result in published) == list(range(20))


def test_a_lost_worker_leaves_the_pool_and_the_other_carries_on(broker_with_two_workers) -> None:
    bound, workers = broker_with_two_workers
    workers[0].kill()
    workers[0].wait()
    assert wait_for(lambda: pool(bound["frontend"])["workers"] == 1, 20)
    with InferenceClient(bound["frontend"], bed_id="bed-3", deadline_s=30.0) as client:
        assert wait_for(lambda: client.state == "online", 20)
        for index in range(5):
            client.submit(np.full((8, 400), float(index), np.float32), float(index), index, FS)
        decisions: list = []
        wait_for(lambda: len(decisions.__iadd__(client.poll())) >= 5, 60)
        assert client.stats["errors"] == 0, client.stats
        assert sorted(d.sequence for d in decisions) == list(range(5)), client.stats


def free_tcp_endpoint() -> str:
    sock = zmq.Context.instance().socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(0)
    return f"tcp://127.0.0.1:{port}"


def test_restarted_broker_finds_its_worker_and_client_again(ring8_checkpoint) -> None:
    frontend, backend = free_tcp_endpoint(), free_tcp_endpoint()
    broker, _ = launch("broker", "--frontend", frontend, "--backend", backend)
    worker, _ = launch("worker", "--connect", backend, "--model", str(ring8_checkpoint), "--backend", "torch")
    window = np.zeros((8, 400), np.float32)
    try:
        with InferenceClient(frontend, bed_id="bed-1", deadline_s=5.0) as client:
            assert wait_for(lambda: client.state == "online", 30)
            broker.kill()  # the remote end vanishes: nobody restarts it for us ...
            broker.wait()
            assert wait_for(lambda: client.state == "offline", 10)
            broker, _ = launch("broker", "--frontend", frontend, "--backend", backend)  # ... until its admin does
            # both ends reconnect by themselves, and the worker's next heartbeat re-registers it
            assert wait_for(lambda: client.state == "online" and client.stats["workers"] == 1, 30)
            client.submit(window, 1.0, 1, FS)
            decisions: list = []
            assert wait_for(lambda: bool(decisions.extend(client.poll()) or decisions), 30)
            assert decisions[0].sequence == 1 and client.stats["offline_periods"] >= 1
    finally:
        stop(worker)
        stop(broker)
