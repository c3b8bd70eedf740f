"""Readers say what is wrong with a file in its own terms, in one line, with no warning above it: a tester found a
WFDB header with rate 0 printing two numpy RuntimeWarnings before the error, an NPZ whose 'fs' is a string giving
ValueError (exit 1), a ';'-separated CSV with decimal commas giving "could not convert '5;2'" and a ragged CSV
naming numpy's `usecols`. Real files written here (~0.2 s)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from monitor.errors import UserError
from monitor.recordings import open_recording


def _one_line_error(path, **options) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a numpy warning above the error fails the test
        with pytest.raises(UserError) as raised:
            open_recording(path, **options)
    assert "\n" not in str(raised.value)
    return str(raised.value)


def test_wfdb_header_with_rate_zero(tmp_path):
    import wfdb

    wfdb.wrsamp("rate0", fs=1000, units=["uV"], sig_name=["ch1"], p_signal=np.linspace(-50, 50, 100)[:, None],
                fmt=["16"], write_dir=str(tmp_path))  # fmt: skip
    header = tmp_path / "rate0.hea"
    header.write_text(header.read_text().replace("rate0 1 1000 100", "rate0 1 0 100", 1))
    assert _one_line_error(tmp_path / "rate0.dat") == (
        "rate0.dat: the header rate0.hea gives the sampling rate as 0, not a positive number of Hz")


@pytest.mark.parametrize("fs", ["fast", np.array([]), np.nan])
def test_npz_with_a_rate_that_is_no_number(tmp_path, fs):
    path = tmp_path / "bad-rate.npz"
    np.savez(path, data=np.zeros((100, 2)), fs=fs)
    assert "bad-rate.npz: its 'fs' array gives the sampling rate as " in _one_line_error(path)


def test_semicolon_csv_with_decimal_commas(tmp_path):
    path = tmp_path / "european.csv"
    path.write_text("1,5;2,3;4,0\n1,6;2,1;4,1\n1,7;2,2;4,2\n")
    error = _one_line_error(path, fs=1000)
    assert "the rows look like ';'-separated columns with decimal commas" in error
    assert "no option for a decimal comma" in error and "decimal points" in error
    error = _one_line_error(path, fs=1000, delimiter=";")  # the delimiter alone does not read them
    # its first row looks like a header (no cell is a number), so the example comes from the second
    assert "';'-separated values with decimal commas (e.g. '1,6')" in error


def test_ragged_csv_says_which_line_has_how_many_cells(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("a,b,c\n1,2,3\n\n4,5,6\n7,8\n9,1,2\n")
    error = _one_line_error(path, fs=1000)
    assert error == "ragged.csv: line 5 has 2 cells where the rows before it have 3 (','-separated): every row " \
        "needs one cell per column"
    assert "usecols" not in error
