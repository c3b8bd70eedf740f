"""A damaged XDF file: pyxdf logs its own recovery at ERROR level with the traceback of what it recovered from, so
`neurofusion analyze/replay BROKEN.xdf` printed a 7-line Python traceback above the one-line error. Without -v no
log line carries a traceback; the exception's own line stays. One subprocess (~2 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_a_damaged_xdf_is_one_error_line_without_a_library_traceback(tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.xdf"
    # the magic number, then bytes that are no chunk: pyxdf logs "Error reading chunk length" with a traceback
    damaged.write_bytes(b"XDF:" + bytes([0x80]) * 9 + b"\x00" * 64)
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(damaged)],
        capture_output=True, text=True, timeout=60, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr, result.stderr
    assert "neurofusion replay: error: damaged.xdf:" in result.stderr
