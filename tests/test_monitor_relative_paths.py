"""`monitor` (and `adapt`) `--model runs/calibrate/model.pt` from the user's own folder: the worker runs in the
repository root, so a relative checkpoint was "no checkpoint at runs/calibrate/model.pt" once a stream had been
found and waited for (and a relative --patients-dir named another folder to the worker than to the adaptation).
The paths are made absolute against the user's folder, and a missing checkpoint is refused before any stream.
No stream, no model."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import build_parser
from monitor.commands.monitor import session_options
from monitor.errors import UserError


def test_relative_model_and_patients_paths_are_the_users_folder(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "model.pt").write_bytes(b"checked by the worker, not here")
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["monitor", "--name", "x", "--model", "runs/model.pt",
                                      "--patients-dir", "patients"])
    options = session_options(args)
    assert Path(options.model) == tmp_path / "runs" / "model.pt"
    assert options.patients_dir == tmp_path / "patients"


def test_a_missing_checkpoint_is_refused_before_any_stream(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["monitor", "--name", "x", "--model", "nowhere.pt"])
    with pytest.raises(UserError, match="nowhere.pt"):
        session_options(args)


def test_adapt_passes_the_worker_absolute_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from monitor.commands.adapt import make_paths_absolute

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["adapt", "--source-id", "x", "--marks", "m.json", "--patient", "p-7",
                                      "--model", "runs/model.pt", "--patients-dir", "patients"])
    make_paths_absolute(args)
    assert Path(args.model) == tmp_path / "runs" / "model.pt"
    assert args.patients_dir == tmp_path / "patients"
