"""`simulate --name ""` (an empty shell variable) was liblsl's "RuntimeError: could not create stream description
object", exit 1; now one line, exit 2, before anything is simulated. In-process, no stream."""

from __future__ import annotations

import pytest

from monitor.cli import main


@pytest.mark.parametrize("name", ["", "  "])
def test_an_empty_stream_name_is_one_line(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--name", name, "--duration", "1"]) == 2
    assert capsys.readouterr().err.strip().startswith("neurofusion simulate: error: --name")
