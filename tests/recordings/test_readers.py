"""Each reader on real files from ../shared/data and on small files written here; damaged files give a UserError."""

from __future__ import annotations

import itertools
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from xdf_file import XdfStream, write_xdf

from monitor.errors import UserError
from monitor.recordings import Recording, open_dataset, open_recording
from monitor.recordings.otb import FORCE_KEY, grid13x5_channel_number
from simulators.electrodes import ElectrodeLayout

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
MYO = DATA / "myo-gestures"
OTB = DATA / "hdemg-vastus-lateralis" / "otb_testfile.mat"
# wfdb 4.3 still calls pandas with inplace=True; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")


def _signal(n_samples: int, n_channels: int, seed: int = 0, sd: float = 100.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0.0, sd, (n_samples, n_channels))


def _truncate(path: Path, keep_fraction: float, folder: Path | None = None) -> Path:
    """A cut copy of ``path`` in ``folder`` (never beside a shared, read-only recording)."""
    cut = (folder or path.parent) / f"cut-{path.name}"
    content = path.read_bytes()
    cut.write_bytes(content[: int(len(content) * keep_fraction)])
    return cut


# ---------------------------------------------------------------- CSV / TSV


def test_myo_file_loads_with_rate_and_label_column_as_the_readme_describes():
    path = MYO / "12345-1" / "3.txt"
    table = np.loadtxt(path, delimiter=",")
    recording = open_recording(path, fs=200, label_column=8)
    assert recording.fs == 200.0 and recording.n_channels == 8
    np.testing.assert_array_equal(recording.data, table[:, :8].astype(np.float32))
    np.testing.assert_array_equal(recording.labels, table[:, 8].astype(int))
    assert set(np.unique(recording.labels)) == {0, 3}
    np.testing.assert_allclose(recording.timestamps[-1], (table.shape[0] - 1) / 200.0)


def test_myo_preset_adds_the_ring_layout_and_names_the_units():
    recording = open_recording(MYO / "12345-2" / "7.txt", preset="myo")
    assert recording.layout == ElectrodeLayout.ring(8).to_dict()
    assert recording.channel_labels == list(ElectrodeLayout.ring(8).labels)
    assert recording.units == ["myo int8 counts"] * 8
    assert set(np.unique(recording.labels)) == {0, 7}


def test_a_folder_of_myo_files_is_a_dataset_of_24_recordings():
    recordings = open_dataset(MYO, preset="myo")
    assert len(recordings) == 24
    assert {r.source.parent.name for r in recordings} == {"12345-1", "12345-2", "12345-3"}
    gestures = {int(r.source.stem): set(np.unique(r.labels)) - {0} for r in recordings}
    assert gestures == {k: ({k} if k else set()) for k in range(8)}
    assert all(11_000 < r.n_samples < 13_000 for r in recordings)


def test_csv_without_a_rate_names_the_option_that_supplies_it():
    with pytest.raises(UserError, match="--fs supplies it"):
        open_recording(MYO / "12345-1" / "0.txt")


def test_csv_header_units_are_converted_to_microvolts_and_time_column_gives_the_rate(tmp_path):
    signal = _signal(500, 2)
    times = 3.0 + np.arange(500) / 250.0
    path = tmp_path / "units.csv"
    np.savetxt(path, np.column_stack([times, signal / 1000.0, np.arange(500) % 2]), delimiter=",",
               header="time,biceps [mV],triceps (mV),gesture", comments="")  # fmt: skip
    recording = open_recording(path, time_column="time", label_column="gesture")
    assert recording.fs == pytest.approx(250.0)
    assert recording.channel_labels == ["biceps", "triceps"] and recording.units == ["mV", "mV"]
    np.testing.assert_allclose(recording.data, signal, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(recording.timestamps, times)
    np.testing.assert_array_equal(recording.labels, np.arange(500) % 2)


def test_tsv_channel_selection_and_explicit_scale(tmp_path):
    signal = _signal(300, 4)
    path = tmp_path / "counts.tsv"
    np.savetxt(path, signal, delimiter="\t")
    recording = open_recording(path, fs=1000, channels="3,1", scale=0.5)
    np.testing.assert_allclose(recording.data, 0.5 * signal[:, [3, 1]], rtol=1e-6, atol=1e-4)
    assert recording.channel_labels == ["col3", "col1"]


def test_csv_with_a_non_voltage_header_unit_asks_for_a_scale(tmp_path):
    path = tmp_path / "force.csv"
    np.savetxt(path, np.ones((5, 1)), delimiter=",", header="force [N]", comments="")
    with pytest.raises(UserError, match="--scale"):
        open_recording(path, fs=100)


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "empty"), ("1,2,3\n4,5,6\n7,8\n", "line 3 has 2 cells where the rows before it have 3"),
     ("a,b\nx,y\n", "not a table of numbers")],  # fmt: skip
)
def test_damaged_csv_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(UserError, match=message) as raised:
        open_recording(path, fs=100)
    assert "\n" not in str(raised.value)


def test_word_labels_get_codes_and_names(tmp_path):
    signal = _signal(6, 2)
    words = ["rest", "rest", "fist", "fist", "rest", "pinch"]
    path = tmp_path / "words.csv"
    path.write_text("".join(f"{a:.3f},{b:.3f},{w}\n" for (a, b), w in zip(signal, words, strict=True)))
    recording = open_recording(path, fs=100, label_column=2)
    np.testing.assert_array_equal(recording.labels, [0, 0, 1, 1, 0, 2])
    assert recording.label_names == ["rest", "fist", "pinch"]
    np.testing.assert_allclose(recording.data, signal, atol=1e-3)
    path.write_text("1,2,rest\n3,4,1\n")
    with pytest.raises(UserError, match="mixes numbers and words"):
        open_recording(path, fs=100, label_column=2)


def test_csv_label_column_out_of_range_is_reported(tmp_path):
    path = tmp_path / "three.csv"
    np.savetxt(path, np.ones((5, 3)), delimiter=",")
    with pytest.raises(UserError, match="--label-column 8"):
        open_recording(path, fs=200, label_column=8)


# ---------------------------------------------------------------- OT Bioelettronica .mat


@pytest.fixture(scope="module")
def otb_recording() -> Recording:
    return open_recording(OTB)


def test_otb_file_reads_the_64_grid_channels_in_microvolts(otb_recording):
    assert otb_recording.data.shape == (66560, 64)
    assert otb_recording.fs == 2048.0
    assert otb_recording.timestamps[0] == pytest.approx(7.0) and otb_recording.duration_s == pytest.approx(32.5)
    assert otb_recording.units == ["uV"] * 64
    assert otb_recording.layout == ElectrodeLayout.from_name("grid13x5").to_dict()
    assert otb_recording.channel_labels == list(ElectrodeLayout.from_name("grid13x5").labels)
    assert otb_recording.auxiliary[FORCE_KEY].shape == (66560,)
    # the %MVC reference of a force ramp rises well above its starting level
    force = otb_recording.auxiliary[FORCE_KEY]
    assert force.max() - force[:2048].mean() > 10.0


def test_otb_channels_sit_where_the_grid_puts_them(otb_recording):
    raw = scipy.io.loadmat(OTB)["Data"][0, 0][:, :64]
    grid_index = [tuple(ix) for ix in otb_recording.layout["grid_index"]]
    for k, (row, col) in enumerate(grid_index):
        np.testing.assert_array_equal(otb_recording.data[:, k], raw[:, grid13x5_channel_number(row, col) - 1])
    # physical check of the mapping: grid neighbours correlate more than with the file's channel order read row-major
    centred = raw - raw.mean(axis=0)
    correlation = np.corrcoef(centred.T)

    def neighbour_correlation(position_of_channel):
        pairs = itertools.combinations(range(64), 2)
        return np.mean([correlation[a, b] for a, b in pairs
                        if np.abs(np.subtract(position_of_channel[a], position_of_channel[b])).sum() == 1])  # fmt: skip

    by_grid = {grid13x5_channel_number(r, c) - 1: (r, c) for r, c in grid_index}
    row_major = {k: divmod(k + 1, 5) for k in range(64)}
    assert neighbour_correlation(by_grid) > neighbour_correlation(row_major) + 0.05


def test_otb_channel_numbers_cover_the_grid_once():
    numbers = [grid13x5_channel_number(r, c) for r in range(13) for c in range(5)]
    assert numbers.count(None) == 1 and sorted(n for n in numbers if n) == list(range(1, 65))


def test_mat_file_that_is_not_an_otb_export_is_refused(tmp_path):
    path = tmp_path / "other.mat"
    scipy.io.savemat(path, {"emg": np.ones((10, 2))})
    with pytest.raises(UserError, match="not an OT Bioelettronica export"):
        open_recording(path)
    with pytest.raises(UserError, match="not a readable MATLAB file"):
        open_recording(_truncate(OTB, 0.001, tmp_path))


# ---------------------------------------------------------------- EDF / BDF


def _write_edf(path: Path, signal: np.ndarray, fs: float = 500.0) -> Path:
    import edfio

    signals = [
        edfio.EdfSignal(signal[:, i] / 1000.0, fs, label=f"EMG{i}", physical_dimension="mV", physical_range=(-2, 2))
        for i in range(signal.shape[1])
    ]
    signals.append(edfio.EdfSignal(np.linspace(0, 40, signal.shape[0]), fs, label="Force", physical_dimension="N",
                                   physical_range=(0, 100)))  # fmt: skip
    annotations = [edfio.EdfAnnotation(1.25, None, "contraction"), edfio.EdfAnnotation(3.0, 1.0, "rest")]
    edfio.Edf(signals, annotations=annotations).write(path)
    return path


def test_edf_millivolts_become_microvolts_and_annotations_markers(tmp_path):
    signal = _signal(2000, 3)
    recording = open_recording(_write_edf(tmp_path / "session.edf", signal))
    assert recording.fs == 500.0 and recording.channel_labels == ["EMG0", "EMG1", "EMG2"]
    assert recording.units == ["mV"] * 3
    # 16-bit over +-2 mV: one step is 4000 uV / 65535
    np.testing.assert_allclose(recording.data, signal, atol=4000 / 65535)
    assert recording.markers == [(1.25, "contraction"), (3.0, "rest")]
    np.testing.assert_allclose(recording.auxiliary["Force"][[0, -1]], [0.0, 40.0], atol=0.01)


def test_bdf_microvolts_with_a_layout(tmp_path):
    import edfio

    signal = _signal(1024, 8, seed=2)
    signals = [edfio.BdfSignal(signal[:, i], 512.0, label=f"E{i + 1:02d}", physical_dimension="uV",
                               physical_range=(-1000, 1000)) for i in range(8)]  # fmt: skip
    path = tmp_path / "ring.bdf"
    edfio.Bdf(signals).write(path)
    recording = open_recording(path, layout="ring8")
    np.testing.assert_allclose(recording.data, signal, atol=2000 / 2**24 * 2)
    assert recording.layout["kind"] == "ring"
    with pytest.raises(UserError, match="layout 'grid8x8' has 64 electrodes"):
        open_recording(path, layout="grid8x8")


def test_edf_without_voltage_signals_names_the_options(tmp_path):
    import edfio

    edfio.Edf([edfio.EdfSignal(np.ones(100), 100.0, label="Force", physical_dimension="N")]).write(tmp_path / "f.edf")
    with pytest.raises(UserError, match="--channels picks the EMG signals and --scale"):
        open_recording(tmp_path / "f.edf")
    recording = open_recording(tmp_path / "f.edf", channels="Force", scale=1.0)
    assert recording.data.shape == (100, 1)


def test_truncated_and_corrupt_edf_files_give_clear_errors(tmp_path):
    path = _write_edf(tmp_path / "whole.edf", _signal(2000, 3))
    with pytest.raises(UserError, match="truncated"):
        open_recording(_truncate(path, 0.3))
    garbage = tmp_path / "garbage.edf"
    garbage.write_bytes(b"this is not an EDF header" * 20)
    with pytest.raises(UserError, match="not a readable EDF file"):
        open_recording(garbage)


# ---------------------------------------------------------------- WFDB


def _write_wfdb(folder: Path, signal_mv: np.ndarray, fs: float = 4000.0) -> Path:
    import wfdb

    wfdb.wrsamp("needle", fs=fs, units=["mV", "mV"], sig_name=["EMG", "EMG2"], p_signal=signal_mv,
                fmt=["16", "16"], write_dir=str(folder))  # fmt: skip
    wfdb.wrann("needle", "atr", np.array([400, 2000]), symbol=["N", "N"], aux_note=["", "burst"],
               write_dir=str(folder))  # fmt: skip
    return folder / "needle.hea"


def test_wfdb_record_with_annotations(tmp_path):
    signal_mv = _signal(4000, 2, sd=0.2)
    recording = open_recording(_write_wfdb(tmp_path, signal_mv))
    assert recording.fs == 4000.0 and recording.units == ["mV", "mV"]
    # wfdb picks a gain per channel for 16-bit storage: the error is well under a microvolt here
    np.testing.assert_allclose(recording.data, signal_mv * 1000.0, atol=0.05)
    assert recording.markers == [(0.1, "N"), (0.5, "burst")]
    only_second = open_recording(tmp_path / "needle.dat", channels="EMG2")
    np.testing.assert_array_equal(only_second.data[:, 0], recording.data[:, 1])


def test_damaged_wfdb_records_give_clear_errors(tmp_path):
    header = _write_wfdb(tmp_path, _signal(4000, 2, sd=0.2))
    dat = tmp_path / "needle.dat"
    dat.write_bytes(dat.read_bytes()[:3000])
    with pytest.raises(UserError, match="not a readable WFDB record"):
        open_recording(header)
    header.write_text("garbage\n")
    with pytest.raises(UserError, match="not a readable WFDB record"):
        open_recording(header)


# ---------------------------------------------------------------- NPZ


def test_npz_as_the_simulator_writes_it(tmp_path):
    layout = ElectrodeLayout.grid(8, 8)
    signal = _signal(1024, 64).astype(np.float32)
    path = tmp_path / "sim.npz"
    np.savez(path, data=signal, timestamps=np.arange(1024) / 2048.0, fs=np.float64(2048.0),
             channel_labels=np.array(layout.labels), layout_json=np.array(json.dumps(layout.to_dict())),
             mvc_percent=np.full(1024, 40.0))  # fmt: skip
    recording = open_recording(path)
    np.testing.assert_array_equal(recording.data, signal)
    assert recording.layout == layout.to_dict() and recording.fs == 2048.0
    np.testing.assert_array_equal(recording.auxiliary["mvc_percent"], 40.0)


def test_files_the_simulator_writes_read_back_with_truth(tmp_path):
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.files import record, write

    simulated = record(EmgSimulator(SimulationConfig(layout="ring8", fs=1000.0, seed=1)), 2.0)
    from_npz = open_recording(write(simulated, tmp_path / "sim.npz"))
    np.testing.assert_array_equal(from_npz.data, simulated.data)
    assert from_npz.layout == simulated.layout.to_dict() and from_npz.label_names == simulated.label_names
    np.testing.assert_array_equal(from_npz.labels, simulated.labels)
    np.testing.assert_array_equal(from_npz.auxiliary["mvc_percent"], simulated.mvc_percent)
    assert [text for _, text in from_npz.markers] == simulated.marker_texts
    assert from_npz.metadata["condition"] == simulated.condition
    from_edf = open_recording(write(simulated, tmp_path / "sim.edf"), layout="ring8")
    assert from_edf.n_channels == 8 and from_edf.n_samples == simulated.data.shape[0]
    # EDF stores 16-bit integers over the signal's range: equal to within a few quantisation steps
    step = (simulated.data.max() - simulated.data.min()) / 65535
    np.testing.assert_allclose(from_edf.data, simulated.data, atol=4 * step + 0.01)


def test_npz_needing_pickle_or_cut_short_is_refused(tmp_path):
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, data=np.ones((10, 2)), fs=np.array(100.0), channel_labels=np.array([{"a": 1}], dtype=object))
    with pytest.raises(UserError, match="pickled"):
        open_recording(pickled)
    whole = tmp_path / "whole.npz"
    np.savez(whole, data=np.ones((1000, 4)), fs=np.array(100.0))
    with pytest.raises(UserError, match="not a readable NPZ"):
        open_recording(_truncate(whole, 0.5))
    np.savez(tmp_path / "no-rate.npz", data=np.ones((10, 2)))
    with pytest.raises(UserError, match="no 'fs' array"):
        open_recording(tmp_path / "no-rate.npz")
    assert zipfile.is_zipfile(whole)


# ---------------------------------------------------------------- XDF


def _xdf_streams(n: int = 3000, fs: float = 1000.0) -> list[XdfStream]:
    layout = ElectrodeLayout.ring(8)
    times = 1000.0 + np.arange(n) / fs
    return [
        XdfStream("Amp", "EMG", fs, times, _signal(n, 8).astype(np.float32), list(layout.labels),
                  ["microvolts"] * 8, json.dumps(layout.to_dict())),  # fmt: skip
        XdfStream("Amp-markers", "Markers", 0.0, np.array([1000.5, 1001.75]), ['{"label": 1}', "rest"]),
        XdfStream("Decisions", "Decisions", 20.0, 1000.0 + np.arange(60) * 0.05, np.ones((60, 3), np.float32)),
    ]


def test_xdf_emg_stream_markers_layout_and_other_streams(tmp_path):
    streams = _xdf_streams()
    recording = open_recording(write_xdf(tmp_path / "session.xdf", streams))
    np.testing.assert_array_equal(recording.data, streams[0].values)
    np.testing.assert_allclose(recording.timestamps, streams[0].timestamps, atol=1e-9)
    assert recording.fs == 1000.0 and recording.units == ["microvolts"] * 8
    assert recording.layout == ElectrodeLayout.ring(8).to_dict()
    assert recording.markers == [(1000.5, '{"label": 1}'), (1001.75, "rest")]
    assert recording.other_streams["Decisions"][1].shape == (60, 3)


def test_xdf_stream_choice_and_missing_units(tmp_path):
    streams = _xdf_streams(n=500)
    second = XdfStream("Amp2", "EMG", 500.0, streams[0].timestamps[:200], np.zeros((200, 2), np.float32),
                       ["a", "b"], ["mV", "mV"])  # fmt: skip
    path = write_xdf(tmp_path / "two.xdf", [*streams, second])
    with pytest.raises(UserError, match="--stream picks one"):
        open_recording(path)
    assert open_recording(path, stream="Amp2").data.shape == (200, 2)
    times = np.arange(50) / 100.0
    no_units = XdfStream("Bare", "EMG", 100.0, times, np.ones((50, 2), np.float32), ["x", "y"], ["", ""])
    with pytest.raises(UserError, match="--scale gives microvolts per unit"):
        open_recording(write_xdf(tmp_path / "bare.xdf", [no_units]))
    assert open_recording(tmp_path / "bare.xdf", scale=1.0).data.shape == (50, 2)


def test_xdf_cut_short_reads_up_to_the_last_complete_chunk(tmp_path):
    streams = _xdf_streams()
    path = write_xdf(tmp_path / "whole.xdf", streams)
    recording = open_recording(_truncate(path, 0.6))
    assert 0 < recording.n_samples < 3000 and recording.n_samples % 256 == 0
    np.testing.assert_array_equal(recording.data, streams[0].values[: recording.n_samples])
    with pytest.raises(UserError, match="XDF"):
        open_recording(_truncate(path, 0.002))


# ---------------------------------------------------------------- dispatch and common behaviour


def test_format_is_sniffed_when_the_extension_says_nothing(tmp_path):
    path = write_xdf(tmp_path / "session.bin", _xdf_streams(n=300))
    assert open_recording(path).n_samples == 300
    unknown = tmp_path / "notes.xyz"
    unknown.write_text("hello")
    with pytest.raises(UserError, match="unknown recording format"):
        open_recording(unknown)
    with pytest.raises(UserError, match="not found"):
        open_recording(tmp_path / "missing.edf")
    with pytest.raises(UserError, match="open_dataset"):
        open_recording(tmp_path)


def test_options_a_format_does_not_use_are_refused(tmp_path):
    path = write_xdf(tmp_path / "session.xdf", _xdf_streams(n=300))
    with pytest.raises(UserError, match="--label-column does not apply to XDF"):
        open_recording(path, label_column=3)


def test_slicing_keeps_markers_labels_and_auxiliary_aligned():
    recording = Recording(
        data=np.arange(20, dtype=np.float32).reshape(10, 2),
        timestamps=5.0 + np.arange(10) / 10.0,
        fs=10.0,
        channel_labels=["a", "b"],
        units=["uV", "uV"],
        markers=[(5.1, "early"), (5.5, "middle")],
        labels=np.arange(10),
        auxiliary={"force": np.arange(10.0)},
    )
    part = recording.slice_seconds(0.3, 0.8)
    assert part.n_samples == 5 and part.timestamps[0] == pytest.approx(5.3)
    np.testing.assert_array_equal(part.labels, [3, 4, 5, 6, 7])
    np.testing.assert_array_equal(part.auxiliary["force"], [3, 4, 5, 6, 7])
    assert part.markers == [(5.5, "middle")]
    with pytest.raises(UserError, match="past the end"):
        recording.slice_seconds(2.0)


@pytest.mark.parametrize("name", ["cut.edf", "cut.xdf", "cut.npz", "cut.mat", "cut.csv"])
def test_damaged_files_end_the_command_with_one_line_and_exit_2(tmp_path, capsys, name):
    from monitor.cli import main

    path = tmp_path / name
    path.write_bytes(b"XDF:" if name.endswith(".xdf") else b"\x00\x01garbage\xff")
    assert main(["replay", str(path), "--fs", "100"] if name.endswith(".csv") else ["replay", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"neurofusion replay: error: {name}:") and "\n" not in err and "Traceback" not in err
