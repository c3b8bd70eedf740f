"""Client bookkeeping with nobody answering: it never blocks, and every window is accounted for."""

from __future__ import annotations

import time

import numpy as np
import pytest

from monitor.inference.client import InferenceClient


def test_windows_for_an_absent_worker_are_superseded_then_expire(tmp_path) -> None:
    endpoint = f"ipc://{tmp_path}/nobody.sock"
    with InferenceClient(endpoint, bed_id="bed-1", deadline_s=0.2, max_in_flight=4, startup_s=0.3) as client:
        assert client.state == "starting"
        for sequence in range(10):
            client.submit(np.zeros((8, 400), np.float32), float(sequence), sequence, 2000.0)
        give_up = time.monotonic() + 10
        while client.stats["dropped_deadline"] < 4 and time.monotonic() < give_up:
            time.sleep(0.02)
        time.sleep(0.3)
        stats = client.stats
        assert client.state == "offline"
    # latest wins: only max_in_flight windows were kept waiting, the older six gave way; the kept four expired
    assert (stats["submitted"], stats["dropped_superseded"], stats["dropped_deadline"], stats["sent"]) == (10, 6, 4, 0)
    assert stats["offline_periods"] == 1 and client.poll() == []


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        InferenceClient("ipc:///tmp/x", deadline_s=0)
    with InferenceClient("ipc:///tmp/neurofusion-test-unused.sock") as client, pytest.raises(ValueError):
        client.submit(np.zeros(400, np.float32), 0.0, 0, 2000.0)


def test_unusable_endpoint_is_a_user_error() -> None:
    from monitor.errors import UserError

    with pytest.raises(UserError, match="cannot connect to inference endpoint"):
        InferenceClient("tcp://no-port-given")
    with pytest.raises(UserError, match="cannot connect"):
        InferenceClient("carrier-pigeon://bed-1")
