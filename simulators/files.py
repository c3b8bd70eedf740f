"""Offline simulated recordings: generate as fast as the CPU allows and write NPZ or EDF/BDF (format in
docs/simulator.md). The NPZ keys are the ones monitor/recordings/npz.py reads back."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simulators.electrodes import ElectrodeLayout
from simulators.emg import ENDURANCE_FATIGUE_VERSION, FIBRE_MODEL_VERSION, SIMULATOR_VERSION, EmgSimulator

SUFFIXES = (".npz", ".edf", ".bdf")


@dataclass
class SimulatedRecording:
    """A generated recording with ground truth, per sample and as the marker stream would carry it."""

    data: np.ndarray  # (n, C) float32 µV
    fs: float
    layout: ElectrodeLayout
    labels: np.ndarray  # (n,) gesture index per sample
    label_names: list[str]
    mvc_percent: np.ndarray  # (n,) commanded contraction
    relative_cv: np.ndarray  # (n,) conduction velocity of the active muscles, held between truth samples
    true_mnf_hz: np.ndarray  # (n,) NaN while no unit fires
    true_mdf_hz: np.ndarray
    marker_samples: np.ndarray  # (M,) index of the sample each truth marker describes
    marker_texts: list[str]  # JSON of ground_truth(), as on the marker stream
    condition: str
    config: dict[str, Any]
    subject: dict[str, Any]

    @property
    def timestamps(self) -> np.ndarray:
        return np.arange(self.data.shape[0]) / self.fs


def record(simulator: EmgSimulator, duration_s: float, truth_rate_hz: float = 4.0) -> SimulatedRecording:
    """Runs ``simulator`` for ``duration_s`` from its current position and collects data and ground truth."""
    if duration_s <= 0:
        raise ValueError(f"duration must be positive, not {duration_s:g} s")
    first = simulator.position
    data, after, truths = simulator.generate_with_truth(duration_s, truth_rate_hz)
    n = data.shape[0]
    times = (first + np.arange(n)) / simulator.fs
    gesture, level = simulator.profile.at(times)
    # each truth describes the sample just before it was taken; hold it over the samples since the previous one
    holder = np.searchsorted(after - first, np.arange(n), side="right")
    holder = np.minimum(holder, len(truths) - 1)

    def held(key: str) -> np.ndarray:
        values = np.array([np.nan if t[key] is None else t[key] for t in truths], dtype=np.float32)
        return values[holder]

    config = asdict(simulator.config)
    config["layout"] = simulator.layout.to_dict()
    config["simulator_version"] = SIMULATOR_VERSION
    if simulator.config.tissue == "fibres":
        config["fibre_model_version"] = FIBRE_MODEL_VERSION
        if simulator.layout.kind != "needle":  # the surface conductor has its own version (simulators.surface)
            from simulators.surface import SURFACE_MODEL_VERSION

            config["surface_model_version"] = SURFACE_MODEL_VERSION
    if simulator.config.fatigue_model == "endurance":
        config["endurance_fatigue_version"] = ENDURANCE_FATIGUE_VERSION
    return SimulatedRecording(
        data=data,
        fs=simulator.fs,
        layout=simulator.layout,
        labels=gesture.astype(np.int16),
        label_names=simulator.profile.names,
        mvc_percent=(level * 100.0).astype(np.float32),
        relative_cv=held("relative_cv"),
        true_mnf_hz=held("true_mnf_hz"),
        true_mdf_hz=held("true_mdf_hz"),
        marker_samples=after - 1 - first,
        marker_texts=[json.dumps(t) for t in truths],
        condition=simulator.config.condition,
        config=config,
        subject={**simulator.subject.to_dict(), **({"tissue": simulator.tissue.to_dict()} if simulator.tissue else {})},
    )


def write(recording: SimulatedRecording, path: str | Path) -> Path:
    """Writes by suffix: .npz, .edf (16-bit) or .bdf (24-bit); raises ValueError for any other suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        write_npz(recording, path)
    elif suffix in (".edf", ".bdf"):
        write_edf(recording, path)
    else:
        raise ValueError(f"cannot write {path.name}: the output must end in {', '.join(SUFFIXES)}")
    return path


def write_npz(recording: SimulatedRecording, path: Path) -> None:
    """Compressed NPZ of plain arrays and strings only (readable with allow_pickle=False)."""
    np.savez_compressed(
        path,
        data=recording.data.astype(np.float32),
        timestamps=recording.timestamps,
        fs=np.float64(recording.fs),
        channel_labels=np.array(recording.layout.labels),
        units=np.array("microvolts"),
        layout_json=np.array(json.dumps(recording.layout.to_dict())),
        labels=recording.labels,
        label_names=np.array(recording.label_names),
        condition=np.array(recording.condition),
        mvc_percent=recording.mvc_percent,
        relative_cv=recording.relative_cv,
        true_mnf_hz=recording.true_mnf_hz,
        true_mdf_hz=recording.true_mdf_hz,
        marker_timestamps=recording.marker_samples / recording.fs,
        marker_texts=np.array(recording.marker_texts),
        config_json=np.array(json.dumps(recording.config)),
        subject_json=np.array(json.dumps(recording.subject)),
    )


def write_edf(recording: SimulatedRecording, path: Path) -> None:
    """EDF+ (16-bit) or BDF (24-bit) via edfio: one signal per electrode in uV, then %MVC and relative CV signals,
    and annotations for the condition and every gesture change. EDF cannot hold NaN: dropouts are written as 0.

    Data records last 1 s, so the duration must be a whole number of seconds at an integer rate."""
    import edfio

    bdf = path.suffix.lower() == ".bdf"
    fs = recording.fs
    n = recording.data.shape[0]
    if fs != round(fs) or n % int(round(fs)) != 0:
        raise ValueError(f"EDF/BDF needs an integer rate and whole seconds; got {fs:g} Hz x {n} samples")
    signal_type = edfio.BdfSignal if bdf else edfio.EdfSignal
    data = np.nan_to_num(recording.data.astype(np.float64), nan=0.0)

    def make(values: np.ndarray, label: str, unit: str) -> Any:
        low, high = float(values.min()), float(values.max())
        if high - low < 1e-6:
            low, high = low - 1.0, high + 1.0
        return signal_type(values, fs, label=label[:16], physical_dimension=unit, physical_range=(low, high))

    signals = [make(data[:, c], label, "uV") for c, label in enumerate(recording.layout.labels)]
    signals.append(make(recording.mvc_percent.astype(np.float64), "MVC", "%"))
    signals.append(make(np.nan_to_num(recording.relative_cv.astype(np.float64), nan=1.0), "relative CV", ""))
    annotations = [edfio.EdfAnnotation(0.0, None, f"condition={recording.condition}")]
    changes = np.flatnonzero(np.diff(recording.labels.astype(np.int64), prepend=-1))
    annotations += [
        edfio.EdfAnnotation(float(i / fs), None, f"gesture={recording.label_names[int(recording.labels[i])]}")
        for i in changes
    ]
    container = edfio.Bdf if bdf else edfio.Edf
    edf = container(signals, data_record_duration=1.0, annotations=annotations)
    edf.write(path)
