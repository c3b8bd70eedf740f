"""How `neurofusion view` ends. A view started by hand whose core ended waits for a core on the same stream; when
its --duration runs out (or Ctrl-C comes) while it waits, the user asked for that end: exit 0 with a line saying no
core came back (it was "error: the monitor core ended", exit 2, while Ctrl-C with a core attached is exit 0).
A nonsensical --duration is refused in one line before any core is looked for. In-process (well under a second):
the attachment is stood in for, as a core that has ended."""

from __future__ import annotations

from typing import Any

import pytest

from monitor.cli import build_parser, main


def test_duration_running_out_while_waiting_for_a_core_is_a_clean_end(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    import monitor.commands.view as view
    import monitor.core.control as control

    core = {"pid": 1, "stream": "gone-stream", "shm": "gone"}
    monkeypatch.setattr(control, "find_core", lambda wanted: core)
    monkeypatch.setattr(control, "running_cores", lambda: [])  # no core comes back

    def ended(*_: Any) -> tuple[str, None]:
        return "the monitor core ended", None

    monkeypatch.setattr(view, "_show", ended)
    monkeypatch.setattr(view, "RECONNECT_POLL_S", 0.05)
    args = build_parser().parse_args(["view", "--headless", "--duration", "0.2"])
    assert view.run(args) == 0
    err = capsys.readouterr().err
    assert "waiting for a core on stream 'gone-stream'" in err
    assert "error" not in err


@pytest.mark.parametrize("duration", ["0", "-1", "nan", "inf"])
def test_a_nonsensical_duration_is_one_line(duration: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", "--duration", duration]) == 2
    assert capsys.readouterr().err.strip().startswith("neurofusion view: error: --duration")
