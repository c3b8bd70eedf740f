"""`neurofusion replay` refuses a nonsensical number in one line, exit 2, before any outlet opens: --duration nan
or --start/--end nan/inf was a ValueError/OverflowError (exit 1), --speed nan/inf, --duration 0/-1 and a negative
--wait-for-consumer played nothing or paced nothing and exited 0. In-process, no stream (about a second)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "two_seconds.npz"
    np.savez(path, data=np.zeros((2000, 2), dtype=np.float32), fs=np.float64(1000.0))
    return path


@pytest.mark.parametrize("option", [
    ["--speed", "nan"], ["--speed", "inf"], ["--duration", "nan"], ["--duration", "0"], ["--duration", "-1"],
    ["--start", "nan"], ["--end", "nan"], ["--end", "inf"], ["--wait-for-consumer", "-1"],
    ["--wait-for-consumer", "nan"],
])
def test_a_nonsensical_number_is_one_line_and_exit_2(recording: Path, option: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(recording), *option]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"neurofusion replay: error: {option[0]}"), error
    assert len(error.splitlines()) == 1
