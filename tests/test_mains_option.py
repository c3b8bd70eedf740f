"""`--mains` is one definition shared by `monitor`, `analyze`, `calibrate` and `train` (monitor/cli_options.py):
0, 50 or 60 Hz, anything else refused in one line with exit code 2 before a stream is waited for or a file read."""

from __future__ import annotations

import pytest

from monitor.cli import main


@pytest.mark.parametrize("command", ["monitor", "analyze", "calibrate", "train"])
@pytest.mark.parametrize("mains", ["55", "-50", "nan", "fifty"])
def test_mains_other_than_0_50_60_refused_alike_by_every_command(command, mains, tmp_path, capsys):
    # `analyze --mains 55` ran a 55 Hz notch (removing nothing) while `monitor` refused it, and `calibrate` and
    # `train` refused 0 (no notch) that the others take: one definition now
    target = {"monitor": ["--name", "nowhere"], "analyze": [str(tmp_path / "never-read.asc")]}.get(command, [])
    with pytest.raises(SystemExit) as exit_:
        main([command, *target, "--mains", mains])
    assert exit_.value.code == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "usage" not in error
    assert error == (f"neurofusion {command}: error: --mains {mains}: the mains frequency to notch is 50 or 60 Hz, "
                     "or 0 for no notch")


@pytest.mark.parametrize("mains", ["0", "50", "60.0"])
def test_mains_0_50_60_parse_alike_in_every_command(mains):
    from monitor.cli import build_parser

    parser = build_parser()
    for argv in (["monitor"], ["analyze", "x.asc"], ["calibrate"], ["train"]):
        assert parser.parse_args([*argv, "--mains", mains]).mains == float(mains)
        assert parser.parse_args(argv).mains == 50.0
