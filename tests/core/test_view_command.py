"""`neurofusion view` finds running cores in this user's private runtime folder, and says what to do when none runs."""

from __future__ import annotations

import json
import os
import stat

import pytest


def a_dead_pid() -> int:
    pid = 4_000_000
    while True:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            pass
        pid -= 1


def test_view_without_a_running_core_says_how_to_start_one_and_forgets_dead_cores(private_runtime_dir, capsys):
    from monitor.cli import main

    tmp_path = private_runtime_dir
    dead = tmp_path / "neurofusion" / "core-dead"
    dead.mkdir(parents=True, mode=0o700)
    (tmp_path / "neurofusion").chmod(0o700)
    (dead / "core.json").write_text(json.dumps({"pid": a_dead_pid(), "shm": "nfcore-gone", "control": "ipc://x",
                                                "stream": "old"}))  # fmt: skip
    assert main(["view", "--headless"]) == 2
    assert capsys.readouterr().err.strip() == (
        "neurofusion view: error: no running monitor core: start one with `neurofusion monitor --no-view` "
        "(or `neurofusion demo`)"
    )
    assert not dead.exists()  # a core killed before its cleanup leaves nothing behind for the next view
    assert stat.S_IMODE((tmp_path / "neurofusion").stat().st_mode) == 0o700


def test_a_runtime_folder_others_can_enter_is_refused(private_runtime_dir):
    from monitor.core.control import runtime_root
    from monitor.errors import UserError

    tmp_path = private_runtime_dir
    (tmp_path / "neurofusion").mkdir(mode=0o755)
    (tmp_path / "neurofusion").chmod(0o755)
    with pytest.raises(UserError, match="mode 0700"):
        runtime_root()
