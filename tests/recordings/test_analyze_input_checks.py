"""`analyze` refuses numbers and spans it cannot use in one line (exit 2) and warns when --muscle contradicts a
clinical file's name: found by a tester (nan --start was a ValueError with exit 1, a window longer than the file
wrote "0 windows ... fatigue None" with exit 0, a contraction past the end was accepted). Real files: the shared
Myo recording and one deltoid file of the clinical needle set."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli import main
from tests.conftest import NEEDLE_CLINICAL, SHARED_DATA

MYO_FILE = SHARED_DATA / "myo-gestures" / "12345-1" / "1.txt"
# the refusals below that come before the file is read run in a clone without ../shared; the rest read the file
needs_myo = pytest.mark.skipif(not MYO_FILE.is_file(), reason=f"{MYO_FILE} is not present")
DELTOID_FILE = NEEDLE_CLINICAL / "01_Deltoid" / "Healthy" / "EMG _003 _02_ RD_Hea.asc.xz"


def _analyze(tmp_path: Path, capsys: pytest.CaptureFixture, *options: str, file: Path = MYO_FILE) -> tuple[int, str]:
    preset = ("--preset", "myo") if file.suffix == ".txt" else ()
    code = main(["analyze", str(file), *preset, "--no-model", "--no-figures", "--quiet",
                 "--out", str(tmp_path / f"out{len(list(tmp_path.iterdir()))}"), *options])  # fmt: skip
    captured = capsys.readouterr()
    return code, captured.err.strip()


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (("--start", "nan"), "--start must be a number of seconds into the recording, not nan"),
        (("--end", "inf"), "--end must be a number of seconds into the recording, not inf"),
        (("--window-ms", "nan"), "--window-ms must be a positive number of milliseconds, not nan"),
        (("--hop-ms", "-5"), "--hop-ms must be a positive number of milliseconds, not -5"),
        pytest.param(("--window-ms", "100000"), "shorter than one 100000 ms window", marks=needs_myo),
        pytest.param(("--end", "6", "--contraction", "100-200"),
                     "--contraction 100-200: the analysed part of 1.txt is 6.00 s", marks=needs_myo),
    ],
)
def test_numbers_and_spans_it_cannot_use_are_refused(tmp_path, capsys, options, said):
    code, error = _analyze(tmp_path, capsys, *options)
    assert code == 2 and "\n" not in error and said in error, error


@needs_myo
def test_a_ten_sample_file_is_shorter_than_one_window(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("".join(line for _, line in zip(range(10), MYO_FILE.open(), strict=False)))
    code, error = _analyze(tmp_path, capsys, file=short)
    assert code == 2 and "\n" not in error and "(10 samples at 200 Hz), shorter than one 200 ms window" in error


@needs_myo
def test_a_contraction_inside_the_analysed_part_is_taken(tmp_path, capsys):
    code, error = _analyze(tmp_path, capsys, "--end", "6", "--contraction", "1-5.9")
    assert code == 0, error


@pytest.mark.skipif(not DELTOID_FILE.is_file(), reason=f"{NEEDLE_CLINICAL} is not present")
def test_muscle_contradicting_the_file_name_is_warned_not_refused(tmp_path, capsys):
    code, error = _analyze(tmp_path, capsys, "--muscle", "biceps", "--end", "1", file=DELTOID_FILE)
    assert code == 0
    assert error == ("warning: --muscle biceps but the name of EMG _003 _02_ RD_Hea.asc.xz says deltoid: read "
                     "against biceps references as asked")  # fmt: skip
    code, error = _analyze(tmp_path, capsys, "--muscle", "Deltoideus", "--end", "1", file=DELTOID_FILE)
    assert code == 0 and "warning" not in error
