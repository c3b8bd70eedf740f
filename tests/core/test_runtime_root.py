"""Where cores keep their control sockets: a Unix socket's path has at most 107 bytes, so a deep XDG_RUNTIME_DIR
(pytest's tmp_path under xdist was one) falls back to /tmp/neurofusion-<uid>, the same folder for every process."""

from __future__ import annotations

import os
from pathlib import Path

import zmq

from monitor.core.control import CORE_SOCKET_SUFFIX_CHARACTERS, UNIX_SOCKET_PATH_MAX, make_core_dir, runtime_root


def test_the_limit_is_zeromqs():
    assert zmq.IPC_PATH_MAX_LEN == UNIX_SOCKET_PATH_MAX


def test_a_short_runtime_dir_is_used_and_a_deep_one_falls_back_to_tmp(private_runtime_dir, monkeypatch):
    assert runtime_root() == private_runtime_dir / "neurofusion"
    deep = private_runtime_dir / ("d" * 40) / ("e" * 40)
    deep.mkdir(parents=True)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(deep))
    assert len(str(deep / "neurofusion")) + CORE_SOCKET_SUFFIX_CHARACTERS > UNIX_SOCKET_PATH_MAX
    root = runtime_root()
    assert root == Path(f"/tmp/neurofusion-{os.getuid()}")
    folder = make_core_dir(root)
    try:  # a core's control socket binds there
        socket = zmq.Context.instance().socket(zmq.REP)
        socket.bind(f"ipc://{folder / 'control'}")
        socket.close(linger=0)
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
