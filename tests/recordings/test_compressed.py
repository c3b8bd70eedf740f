"""Compressed copies of any supported format read transparently (xz, gzip, bzip2), and corrupt archives refused
in one line. Real files: the shared clinical needle set's .asc.xz, and EDF / WFDB / CSV written here."""

from __future__ import annotations

import bz2
import gzip
import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

from monitor.errors import UserError
from monitor.recordings import open_recording
from tests.conftest import NEEDLE_CLINICAL

HEALTHY_BICEPS = NEEDLE_CLINICAL / "02_Biceps Brachii" / "Healthy" / "EMG _203 _02_ RB_Hea.asc.xz"
needs_needle_set = pytest.mark.skipif(not HEALTHY_BICEPS.is_file(), reason=f"{HEALTHY_BICEPS} is not present")

COMPRESSORS = {".xz": lzma.compress, ".gz": gzip.compress, ".bz2": bz2.compress}


def _compressed(path: Path, suffix: str) -> Path:
    target = path.with_name(path.name + suffix)
    target.write_bytes(COMPRESSORS[suffix](path.read_bytes()))
    path.unlink()
    return target


@needs_needle_set
def test_shared_set_asc_xz_reads_with_its_rate_from_the_name(tmp_path):
    recording = open_recording(HEALTHY_BICEPS)
    assert recording.fs == 32768.0 and recording.n_channels == 1 and recording.source == HEALTHY_BICEPS
    assert recording.n_samples in (163840, 163841) and recording.layout["kind"] == "needle"
    plain = lzma.decompress(HEALTHY_BICEPS.read_bytes())
    # values byte for byte as the text says: fixed-width fields of microvolts, multiples of ~0.78 uV
    first = [float(plain[i * 11:(i + 1) * 11]) for i in range(5)]
    np.testing.assert_allclose(recording.data[:5, 0], first, rtol=1e-6)
    # the same file renamed outside the set's naming states no rate: --fs is asked for, under the user's file name
    renamed = tmp_path / "needle.asc.gz"
    renamed.write_bytes(gzip.compress(plain))
    with pytest.raises(UserError, match=r"^needle\.asc\.gz: an \.asc file does not state its sampling rate; .*--fs"):
        open_recording(renamed)
    assert open_recording(renamed, fs=20000).fs == 20000.0


@pytest.mark.parametrize("suffix", [".xz", ".gz", ".bz2"])
def test_edf_and_csv_compressed_read_as_the_plain_files(tmp_path, suffix):
    import edfio

    signal_uv = np.random.default_rng(3).normal(0, 300, (4000, 2))
    edf = tmp_path / "session.edf"
    edfio.Edf([edfio.EdfSignal(signal_uv[:, i] / 1000.0, 4000.0, label=f"EMG{i}", physical_dimension="mV",
                               physical_range=(-2, 2)) for i in range(2)]).write(edf)  # fmt: skip
    plain = open_recording(edf)
    packed = open_recording(_compressed(edf, suffix))
    np.testing.assert_array_equal(packed.data, plain.data)
    assert packed.fs == 4000.0 and packed.source.name == f"session.edf{suffix}"
    csv = tmp_path / "trial.csv"
    np.savetxt(csv, signal_uv, delimiter=",", fmt="%.3f")
    read = open_recording(_compressed(csv, suffix), fs=4000)
    np.testing.assert_allclose(read.data, signal_uv, atol=1e-3)


def test_wfdb_record_compressed_header_and_signal_file(tmp_path):
    import wfdb

    signal_mv = np.random.default_rng(5).normal(0, 0.2, (4000, 1))
    folder, name = tmp_path, "needle"
    wfdb.wrsamp(name, fs=10000, units=["mV"], sig_name=["EMG"], p_signal=signal_mv, fmt=["16"],
                write_dir=str(folder))  # fmt: skip
    plain = open_recording(folder / f"{name}.hea")
    _compressed(folder / f"{name}.dat", ".xz")
    header = _compressed(folder / f"{name}.hea", ".gz")
    packed = open_recording(header)
    np.testing.assert_array_equal(packed.data, plain.data)
    assert packed.fs == 10000.0 and packed.source == header


def test_a_compressed_file_with_a_silent_name_is_sniffed(tmp_path):
    csv = tmp_path / "values.csv"
    np.savetxt(csv, np.arange(12.0).reshape(6, 2), delimiter=",")
    packed = _compressed(csv, ".xz")
    silent = packed.rename(tmp_path / "values.csv.download")
    with pytest.raises(UserError, match="unknown recording format"):  # decompressed, but the inner name says nothing
        open_recording(silent, fs=100)
    named = tmp_path / "values.csv"
    shutil.copyfile(silent, named)  # compressed bytes under a plain .csv name are read as CSV text: refused
    with pytest.raises(UserError):
        open_recording(named, fs=100)


@pytest.mark.parametrize("suffix", [".xz", ".gz", ".bz2"])
def test_corrupt_and_truncated_archives_give_one_line(tmp_path, suffix):
    good = COMPRESSORS[suffix](b"1.0 2.0 3.0\n" * 2000)
    truncated = tmp_path / f"cut.asc{suffix}"
    truncated.write_bytes(good[: len(good) // 2])
    with pytest.raises(UserError, match=rf"^cut\.asc{suffix}: not a readable \w+ archive \(.+\)$"):
        open_recording(truncated, fs=4000)
    garbage = tmp_path / f"garbage.edf{suffix}"
    garbage.write_bytes(good[:8] + b"\x00" * 64)
    with pytest.raises(UserError, match=rf"^garbage\.edf{suffix}: not a readable \w+ archive"):
        open_recording(garbage)


def test_corrupt_archive_ends_analyze_with_one_line_and_exit_2(tmp_path, capsys):
    from monitor.cli import main

    path = tmp_path / "broken.asc.xz"
    path.write_bytes(b"\xfd7zXZ\x00" + b"\x01" * 40)
    assert main(["analyze", str(path), "--fs", "32768", "--out", str(tmp_path / "out"), "--no-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("neurofusion analyze: error: broken.asc.xz: not a readable xz archive")
    assert "\n" not in err and "Traceback" not in err


def test_a_dataset_folder_takes_compressed_csv_files_too(tmp_path):
    from monitor.recordings import open_dataset

    for index, suffix in enumerate(("", ".gz", ".xz")):
        csv = tmp_path / f"trial{index}.csv"
        np.savetxt(csv, np.full((20, 2), float(index)), delimiter=",")
        if suffix:
            _compressed(csv, suffix)
    (tmp_path / "notes.md.gz").write_bytes(gzip.compress(b"not a recording"))
    recordings = open_dataset(tmp_path, fs=100)
    assert [r.source.name for r in recordings] == ["trial0.csv", "trial1.csv.gz", "trial2.csv.xz"]
    assert [float(r.data[0, 0]) for r in recordings] == [0.0, 1.0, 2.0]
