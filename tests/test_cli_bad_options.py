"""Options no session could use are refused in one line with exit code 2, before a stream is waited for, an
amplifier started or a file read (found trying the documented commands as a new user would)."""

from __future__ import annotations

import pytest

from monitor.cli import main


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "Traceback" not in error
    return error


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["monitor", "--name", "nowhere", "--duration", "-2"], "--duration must be a positive number of seconds"),
        (["monitor", "--name", "nowhere", "--window-ms", "0"], "--window-ms and --hop-ms must be positive"),
        (["monitor", "--name", "nowhere", "--window-ms", "100", "--hop-ms", "500"], "must not exceed --window-ms"),
        (["monitor", "--name", "nowhere", "--band", "500", "20"], "--band LOW HIGH needs 0 < LOW < HIGH"),
        (["monitor", "--name", "nowhere", "--age", "-4"], "--age -4 is not an age in years"),
        (["monitor", "--name", "nowhere", "--resolve-timeout", "nan"], "--resolve-timeout must be a positive number"),
        (["demo", "--headless", "--duration", "-3"], "--duration must be a positive number of seconds"),
        # --fs 0 used to start a 2048 Hz demo (`args.fs or default`)
        (["demo", "--headless", "--fs", "0"], "sampling rate must be between 100 Hz and 100 kHz, not 0 Hz"),
    ],
)
def test_session_options_refused_before_any_stream(argv, said, capsys):
    assert said in _refused(argv, capsys)


@pytest.mark.parametrize("command", ["replay", "analyze"])
@pytest.mark.parametrize("fs", ["0", "-5", "nan"])
def test_reader_fs_refused_before_the_file_is_read(command, fs, tmp_path, capsys):
    # a needle .asc has no rate of its own: --fs 0 reached the reader, which warned (divide by zero) before it erred
    recording = tmp_path / "needle.asc"
    recording.write_text("1.0 2.0 3.0")
    error = _refused([command, str(recording), "--fs", fs], capsys)
    assert error.endswith(f"--fs must be a positive sampling rate in Hz, not {float(fs):g}")


def test_analyze_runs_without_the_bundled_model_where_it_does_not_fit_and_refuses_a_named_one(
    tmp_path, capsys, monkeypatch
):
    # `analyze otb_testfile.mat` (64 channels) was refused because the default ring-of-8 model did not fit, while
    # the live monitor runs such a stream without a model; a --model the user names that does not fit is refused.
    # A stand-in for the ring-of-8 model keeps this test from loading one (seconds).
    from types import SimpleNamespace

    import numpy as np

    import monitor.commands.analyze as analyze

    ring8 = SimpleNamespace(card=SimpleNamespace(n_channels=8, model_id="ring8-model", fs=2048.0),
                            check_layout=lambda _: None)  # fmt: skip
    monkeypatch.setattr(analyze, "_load_model", lambda path, backend: ring8)
    recording = tmp_path / "grid.npz"
    samples = np.random.default_rng(0).normal(0.0, 20.0, (2048, 16)).astype(np.float32)
    np.savez(recording, data=samples, fs=np.array(2048.0))
    assert main(["analyze", str(recording), "--out", str(tmp_path / "out"), "--quiet", "--no-figures"]) == 0
    assert "grid.npz: no model for this layout (16 ch" in capsys.readouterr().out
    assert (tmp_path / "out" / "summary.json").is_file()
    error = _refused(["analyze", str(recording), "--out", str(tmp_path / "named"), "--model", "ring8.pt"], capsys)
    assert "model 'ring8-model' expects 8 channels but the recording has 16" in error


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["train", "--epochs", "-1"], "--epochs must be at least 1, not -1"),
        (["train", "--subjects", "0"], "--subjects must be at least 1, not 0"),
        (["evaluate", "--patience", "0"], "--patience must be at least 1, not 0"),
        (["evaluate", "--max-minutes", "nan"], "--max-minutes must be a positive number, not nan"),
    ],
)
def test_training_options_refused_before_any_subject_is_simulated(argv, said, tmp_path, capsys):
    # --epochs -1 failed as a ValueError from the LR scheduler after minutes of simulation
    assert said in _refused([*argv, "--out", str(tmp_path / "run")], capsys)


def test_train_says_which_part_of_the_split_is_empty(tmp_path, capsys, monkeypatch):
    # `train --subjects 3 --duration 2` left no training window and failed with an IndexError
    import numpy as np

    import monitor.commands.train as train
    from models.datasets import WindowSet

    groups = np.array(["healthy-1000", "healthy-1000", "myopathy-1001", "myopathy-1001"])
    only_test_and_validation = WindowSet(
        windows=np.zeros((4, 8, 40), np.float32), labels=np.array([0, 0, 1, 1]), groups=groups, fs=200.0,
        layout={"kind": "ring", "n": 8}, classes=["healthy", "myopathy"],
    )
    monkeypatch.setattr(train, "load_windows", lambda args: only_test_and_validation)
    argv = ["train", "--test-groups", "healthy-1000", "--validation-groups", "myopathy-1001", "--out", str(tmp_path)]
    error = _refused(argv, capsys)
    assert error.endswith("no training windows after the split by group (2 groups): give more --subjects or a "
                          "longer --duration")  # fmt: skip


def test_a_missing_lsl_config_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    # --lsl-config was a FileNotFoundError (exit 1); a LSLAPICFG naming no file let liblsl fall back, silently, to
    # discovery across the network
    out = str(tmp_path / "x.npz")
    error = _refused(["--lsl-config", str(tmp_path / "lab.cfg"), "simulate", "--out", out, "--duration", "1"], capsys)
    assert error.endswith(f"--lsl-config: no LSL config at {tmp_path / 'lab.cfg'}")
    monkeypatch.setenv("LSLAPICFG", str(tmp_path / "typo.cfg"))
    error = _refused(["simulate", "--out", out, "--duration", "1"], capsys)
    assert f"LSLAPICFG names {tmp_path / 'typo.cfg'}, which is not a file" in error


def test_demo_refuses_a_wrong_condition_as_its_own_option(capsys):
    # the choice was left to the amplifier's parser, which printed `simulate`'s usage and error
    with pytest.raises(SystemExit) as exit_:
        main(["demo", "--condition", "myositis"])
    assert exit_.value.code == 2
    assert "neurofusion demo: error: argument --condition: invalid choice: 'myositis'" in capsys.readouterr().err


def test_an_unknown_layout_is_named_once(tmp_path, capsys):
    recording = tmp_path / "two.csv"
    recording.write_text("1,2\n3,4\n")
    error = _refused(["replay", str(recording), "--fs", "100", "--layout", "hexagon"], capsys)
    assert error.count("unknown electrode layout") == 1 and "--layout" in error


@pytest.mark.parametrize(
    ("muscle", "said"),
    [("bicep", "not a muscle this monitor knows"), ("vastus_medialis", "no published reference table here"),
     ("Biceps Brachii", None)],
)
def test_a_muscle_without_reference_values_is_said_once_before_the_session(muscle, said, capsys):
    from monitor.cli import build_parser
    from monitor.commands.monitor import session_options

    session_options(build_parser().parse_args(["monitor", "--needle", "--muscle", muscle]))
    err = capsys.readouterr().err
    if said is None:
        assert err == ""
    else:
        assert err.count("\n") == 1 and said in err and "biceps" in err  # names the muscles that have references
