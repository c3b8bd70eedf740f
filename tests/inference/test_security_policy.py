"""Binding policy and key files (the CURVE handshake itself is tested against a real worker in test_curve.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest
import zmq.auth

from monitor.errors import UserError
from monitor.inference.security import (
    InsecureBindWarning,
    check_bind_allowed,
    endpoint_is_local,
    make_key_pair,
)
from tests.conftest import REPO


@pytest.mark.parametrize(
    ("endpoint", "local"),
    [
        ("tcp://127.0.0.1:5555", True),
        ("tcp://127.8.9.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/worker.sock", True),
        ("inproc://worker", True),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://*:5555", False),
        ("tcp://192.168.1.20:5555", False),
        ("tcp://eth0:5555", False),
        ("tcp://[::]:5555", False),
        ("tcp://127.0.0.1;10.0.0.5:5555", False),
        ("udp://127.0.0.1:5555", False),
        ("garbage", False),
    ],
)
def test_endpoint_is_local(endpoint: str, local: bool) -> None:
    assert endpoint_is_local(endpoint) is local


def test_non_loopback_bind_needs_curve_or_insecure() -> None:
    check_bind_allowed("tcp://127.0.0.1:5555", curve=False, insecure=False)
    check_bind_allowed("tcp://0.0.0.0:5555", curve=True, insecure=False)
    with pytest.raises(UserError, match="CURVE"):
        check_bind_allowed("tcp://0.0.0.0:5555", curve=False, insecure=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_bind_allowed("tcp://0.0.0.0:5555", curve=False, insecure=True)
    assert [w.category for w in caught] == [InsecureBindWarning]


def test_key_pair_files_load_and_are_private(tmp_path) -> None:
    public_file, secret_file = make_key_pair(tmp_path / "keys", "worker")
    public, secret = zmq.auth.load_certificate(secret_file)
    assert zmq.auth.load_certificate(public_file) == (public, None)
    assert len(public) == 40 and len(secret) == 40  # Z85-encoded 32-byte keys
    assert oct(os.stat(secret_file).st_mode & 0o777) == "0o600"
    with pytest.raises(UserError, match="refusing to overwrite"):
        make_key_pair(tmp_path / "keys", "worker")
    with pytest.raises(UserError):
        make_key_pair(tmp_path / "keys", "../escape")


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "monitor.cli", *args], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)


def test_worker_cli_refuses_a_public_bind_in_one_line() -> None:
    done = run_cli("worker", "--bind", "tcp://0.0.0.0:0")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "refusing to bind tcp://0.0.0.0:0" in done.stderr
    assert "Traceback" not in done.stderr


def test_broker_cli_refuses_a_public_bind_in_one_line() -> None:
    done = run_cli("broker", "--frontend", "tcp://*:0")
    assert done.returncode == 2 and "refusing to bind tcp://*:0" in done.stderr and "Traceback" not in done.stderr


def test_keys_cli_writes_a_pair(tmp_path) -> None:
    done = run_cli("keys", str(tmp_path), "--name", "bed-1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bed-1.key").is_file() and (tmp_path / "bed-1.key_secret").is_file()
    again = run_cli("keys", str(tmp_path), "--name", "bed-1")
    assert again.returncode == 2 and "refusing to overwrite" in again.stderr


def test_worker_cli_reports_a_missing_model_in_one_line(tmp_path) -> None:
    done = run_cli("worker", "--bind", "tcp://127.0.0.1:*", "--model", str(tmp_path / "missing.pt"))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "cannot load the model" in done.stderr
