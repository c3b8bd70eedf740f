"""`calibrate --manifest` as a lab writes it: a spreadsheet's CSV (a UTF-8 byte-order mark, CRLF, ';' in locales
with a decimal comma), a row with a stray extra cell, a binary file named by mistake. Each reads, or is refused in
one line (UserError); none was an AttributeError / UnicodeDecodeError. Pure parsing, no model (milliseconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.commands.calibrate import read_manifest
from monitor.errors import UserError


@pytest.mark.parametrize("raw", [
    b"\xef\xbb\xbffile,label\r\nsim.npz,healthy\r\n",  # Excel's "CSV UTF-8"
    b"file;label\nsim.npz;healthy\n",  # Excel where the decimal separator is a comma
    b"file\tlabel\nsim.npz\thealthy\n",
    b"File , Label\nsim.npz , healthy\n",
])
def test_a_spreadsheets_manifest_reads(tmp_path: Path, raw: bytes) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(raw)
    assert read_manifest(manifest) == [(tmp_path / "sim.npz", "healthy", None)]


def test_a_stray_extra_cell_is_ignored(tmp_path: Path) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("file,label,patient\nsim.npz,healthy,P1,note\n")
    assert read_manifest(manifest) == [(tmp_path / "sim.npz", "healthy", "P1")]


@pytest.mark.parametrize("raw", [b"\xff\xfe\x00\x01garbage\x00\n", b"PK\x03\x04" + bytes(range(256))])
def test_a_binary_file_is_one_line(tmp_path: Path, raw: bytes) -> None:
    manifest = tmp_path / "manifest.csv"
    manifest.write_bytes(raw)
    with pytest.raises(UserError, match="manifest.csv"):
        read_manifest(manifest)


def test_a_folder_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="--manifest"):
        read_manifest(tmp_path)
