"""A damaged XDF read outside monitor/cli.py's log formatter (an `analyze FOLDER` task in a Dask worker process,
whose handlers format records plainly) printed pyxdf's traceback for each damaged chunk. The reader now turns
pyxdf's records into one line each around load_xdf; -v (root at DEBUG) keeps them whole. In-process, ~0.1 s."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pytest

from monitor.errors import UserError
from monitor.recordings import open_recording


def _damaged(tmp_path: Path) -> Path:
    damaged = tmp_path / "damaged.xdf"
    # the magic number, then bytes that are no chunk: pyxdf logs "Error reading chunk length" with a traceback
    damaged.write_bytes(b"XDF:" + bytes([0x80]) * 9 + b"\x00" * 64)
    return damaged


def _read_with_plain_handler(path: Path, level: int) -> str:
    """What a process with a plain handler on the root logger (as a Dask worker's) prints while reading ``path``."""
    root = logging.getLogger()
    previous_level = root.level
    printed = io.StringIO()
    handler = logging.StreamHandler(printed)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)  # setLevel, not the attribute: the loggers' isEnabledFor caches are cleared
    try:
        with pytest.raises(UserError, match="damaged.xdf: "):
            open_recording(path)
    finally:
        root.removeHandler(handler)
        root.setLevel(previous_level)
    return printed.getvalue()


def test_a_worker_prints_pyxdf_damage_in_one_line(tmp_path):
    printed = _read_with_plain_handler(_damaged(tmp_path), logging.WARNING)
    assert "Traceback" not in printed, printed
    assert "damaged.xdf: pyxdf: Error reading chunk length (" in printed
    assert all(line.startswith("monitor.recordings.xdf ") for line in printed.splitlines()), printed
    assert logging.getLogger("pyxdf").propagate and not logging.getLogger("pyxdf").handlers  # restored


def test_verbose_keeps_pyxdf_traceback(tmp_path):
    printed = _read_with_plain_handler(_damaged(tmp_path), logging.DEBUG)
    assert "Traceback" in printed
