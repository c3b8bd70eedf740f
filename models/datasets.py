"""Labelled windows for training and evaluation, cut the way the live pipeline cuts them.

A recording (or a simulated subject) is filtered causally with the monitor's own ``dsp.filters.default_chain``
from its first sample, then cut into windows; a window is kept only if every sample in it has the same label
(no rest/gesture transitions). Each window carries a ``group`` (subject or session) so splits can keep whole
groups apart: the reported test figures never come from windows of a recording that was also trained on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dsp.filters import default_chain
from models.label_timing import muscle_timed_window_labels
from models.weight_cache import is_verified, user_cache_dir, write_verified
from simulators.electrodes import ElectrodeLayout

DEFAULT_CACHE = user_cache_dir()  # generated subjects, keyed by simulator version (private to the user)
MYO_FS = 200.0
MYO_CLASSES = (
    "rest", "wrist flexion", "wrist extension", "radial deviation",
    "ulnar deviation", "pronation", "supination", "fist",
)


@dataclass
class WindowSet:
    windows: np.ndarray  # (N, C, S) float32, filtered µV
    labels: np.ndarray  # (N,) int64 index into classes
    groups: np.ndarray  # (N,) str: subject or session id
    fs: float
    layout: dict[str, Any]
    classes: list[str]
    fatigue: np.ndarray | None = None  # (N,) float32 regression target (e.g. relative conduction velocity) or None
    times: np.ndarray | None = None  # (N,) float64 seconds from the start of its recording, at the window's end
    # (N,) seconds between the window and the nearest label change of its recording (inf: none); labels that follow
    # a cue lead the muscle by the reaction time, so windows near a change are labelled before the muscle moved
    label_distance_s: np.ndarray | None = None
    # (N,) each window's label with the label changes moved to when the muscle made them (models.label_timing);
    # scoring a causal classifier against both shows how much of its error is the cue's lead
    muscle_labels: np.ndarray | None = None
    description: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def n_channels(self) -> int:
        return int(self.windows.shape[1])

    @property
    def window_samples(self) -> int:
        return int(self.windows.shape[2])

    def subset(self, selector: np.ndarray) -> WindowSet:
        return replace(
            self,
            windows=self.windows[selector],
            labels=self.labels[selector],
            groups=self.groups[selector],
            fatigue=None if self.fatigue is None else self.fatigue[selector],
            times=None if self.times is None else self.times[selector],
            label_distance_s=None if self.label_distance_s is None else self.label_distance_s[selector],
            muscle_labels=None if self.muscle_labels is None else self.muscle_labels[selector],
        )

    def settled(self, margin_s: float) -> np.ndarray:
        """True for windows at least ``margin_s`` from any label change (all True when that is unknown)."""
        if self.label_distance_s is None:
            return np.ones(len(self), dtype=bool)
        return self.label_distance_s >= margin_s

    def in_groups(self, groups: list[str] | tuple[str, ...]) -> WindowSet:
        return self.subset(np.isin(self.groups, list(groups)))


def concatenate(sets: list[WindowSet]) -> WindowSet:
    if not sets:
        raise ValueError("nothing to concatenate")
    first = sets[0]
    for other in sets[1:]:
        if other.classes != first.classes or other.n_channels != first.n_channels or other.fs != first.fs:
            raise ValueError("window sets differ in classes, channel count or sampling rate")

    def joined(name: str) -> np.ndarray | None:
        parts = [getattr(s, name) for s in sets]
        return None if any(part is None for part in parts) else np.concatenate(parts)

    return replace(
        first,
        windows=np.concatenate([s.windows for s in sets]),
        labels=np.concatenate([s.labels for s in sets]),
        groups=np.concatenate([s.groups for s in sets]),
        fatigue=joined("fatigue"),
        times=joined("times"),
        label_distance_s=joined("label_distance_s"),
        muscle_labels=joined("muscle_labels"),
    )


def filter_like_pipeline(
    data: np.ndarray, fs: float, mode: str = "surface", mains_hz: float | None = 50.0
) -> np.ndarray:
    """(n, C) raw -> (n, C) float32 filtered with the monitor's default causal chain, from the first sample."""
    chain = default_chain(fs, data.shape[1], mode=mode, mains_hz=mains_hz)
    filtered, _ = chain.process(np.asarray(data, dtype=np.float64))
    return np.asarray(filtered, dtype=np.float32)


def cut_windows(
    filtered: np.ndarray,
    labels: np.ndarray,
    window_samples: int,
    hop_samples: int,
    skip_samples: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (windows (N, C, S), labels (N,), end indices (N,)) of the label-pure windows.

    ``skip_samples`` drops the start (filter settling).
    """
    n_samples = filtered.shape[0]
    ends = np.arange(skip_samples + window_samples, n_samples + 1, hop_samples)
    if len(ends) == 0:
        return np.zeros((0, filtered.shape[1], window_samples), np.float32), np.zeros(0, np.int64), ends
    label_windows = sliding_window_view(labels, window_samples)[ends - window_samples]
    pure = (label_windows == label_windows[:, :1]).all(axis=1)
    ends = ends[pure]
    windows = sliding_window_view(filtered, window_samples, axis=0)[ends - window_samples]  # (N, C, S)
    return np.ascontiguousarray(windows, dtype=np.float32), labels[ends - 1].astype(np.int64), ends


def windows_from_recording(
    data: np.ndarray,
    labels: np.ndarray,
    fs: float,
    group: str,
    layout: dict[str, Any],
    classes: list[str],
    window_ms: float = 200.0,
    hop_ms: float = 50.0,
    mode: str = "surface",
    label_delay_ms: float = 0.0,
    mains_hz: float | None = 50.0,
) -> WindowSet:
    """Filter a raw labelled recording (n, C) like the pipeline does and cut label-pure windows from it.

    ``label_delay_ms`` moves every label later by that much: labels that follow a cue lead the muscle by the
    subject's reaction time (``models.label_timing.activity_lags`` measures it), so windows just after a cue are
    still rest."""
    cue_labels = np.asarray(labels)
    labels = delay_labels(cue_labels, int(round(label_delay_ms * fs / 1000)))
    window_samples = int(round(window_ms * fs / 1000))
    hop_samples = max(1, int(round(hop_ms * fs / 1000)))
    filtered = filter_like_pipeline(data, fs, mode, mains_hz)
    windows, window_labels, ends = cut_windows(
        filtered, np.asarray(labels), window_samples, hop_samples, skip_samples=int(0.2 * fs)
    )
    return WindowSet(
        windows=windows,
        labels=window_labels,
        groups=np.full(len(window_labels), group, dtype=object).astype(str),
        fs=float(fs),
        layout=layout,
        classes=list(classes),
        times=ends / fs,
        label_distance_s=distance_to_label_change(np.asarray(labels), ends, window_samples, fs),
        muscle_labels=muscle_timed_window_labels(filtered, cue_labels, ends, window_samples, fs, list(classes)),
    )


def distance_to_label_change(labels: np.ndarray, ends: np.ndarray, window_samples: int, fs: float) -> np.ndarray:
    """Seconds between each window [end - window_samples, end) and the nearest label change (inf: none)."""
    changes = np.flatnonzero(np.diff(labels)) + 1  # first sample of each new label
    if len(changes) == 0:
        return np.full(len(ends), np.inf)
    starts = ends - window_samples
    after = np.searchsorted(changes, ends, side="left")  # first change at or after the window's end
    before = after - 1  # the last change before it (label-pure windows hold none inside)
    gap_after = np.where(after < len(changes), changes[np.minimum(after, len(changes) - 1)] - ends, np.inf)
    gap_before = np.where(before >= 0, starts - changes[np.maximum(before, 0)], np.inf)
    return np.maximum(np.minimum(gap_after, gap_before), 0) / fs


def delay_labels(labels: np.ndarray, samples: int) -> np.ndarray:
    """Labels moved ``samples`` later (the first label repeated at the start)."""
    if samples <= 0:
        return labels
    return np.concatenate([np.full(min(samples, len(labels)), labels[:1]), labels[: max(len(labels) - samples, 0)]])


def load_myo_gestures(
    root: str | Path, sessions: list[str] | None = None, window_ms: float = 200.0, hop_ms: float = 50.0,
    label_delay_ms: float = 0.0,
) -> WindowSet:
    """The Myo armband gesture recordings (``<root>/<session>/<label>.txt``: 8 int8 columns then the label).

    Each file is filtered on its own (they are separate recordings); the group is the session folder name.
    """
    root = Path(root)
    session_dirs = sorted(p for p in root.iterdir() if p.is_dir()) if sessions is None else [root / s for s in sessions]
    layout = ElectrodeLayout.ring(8).to_dict()
    parts = []
    for session_dir in session_dirs:
        files = sorted(session_dir.glob("*.txt"))
        if not files:
            raise FileNotFoundError(f"no <label>.txt recordings in {session_dir}")
        for path in files:
            table = np.loadtxt(path, delimiter=",", dtype=np.float64)
            part = windows_from_recording(
                table[:, :8], table[:, 8].astype(np.int64), MYO_FS, session_dir.name, layout, list(MYO_CLASSES),
                window_ms, hop_ms, label_delay_ms=label_delay_ms,
            )
            part.description = {"file": f"{session_dir.name}/{path.name}"}
            parts.append(part)
    result = concatenate(parts)
    result.description = {"dataset": "myo-gestures", "root": str(root), "sessions": [d.name for d in session_dirs]}
    return result


def last_block_mask(dataset: WindowSet, fraction: float) -> np.ndarray:
    """True for the last ``fraction`` of each (group, class)'s windows in time order: a contiguous validation block."""
    selected = np.zeros(len(dataset), dtype=bool)
    for group in np.unique(dataset.groups):
        for label in np.unique(dataset.labels):
            indices = np.flatnonzero((dataset.groups == group) & (dataset.labels == label))
            n_selected = int(round(len(indices) * fraction))
            if n_selected:
                selected[indices[-n_selected:]] = True
    return selected


def split_by_group(
    dataset: WindowSet, test_groups: list[str], validation_groups: list[str] | None = None,
    validation_fraction: float = 0.15, seed: int = 0,
) -> tuple[WindowSet, WindowSet, WindowSet]:
    """-> (train, validation, test). Test = whole groups. Validation = whole groups when given, else the last
    ``validation_fraction`` of each training group's windows in time order (a contiguous block, so overlapping
    neighbours of validation windows are not in training except at one boundary)."""
    test_mask = np.isin(dataset.groups, test_groups)
    if not test_mask.any():
        raise ValueError(f"no windows in test groups {test_groups}; groups are {sorted(set(dataset.groups))}")
    if validation_groups:
        validation_mask = np.isin(dataset.groups, validation_groups)
    else:
        validation_mask = last_block_mask(dataset, validation_fraction) & ~test_mask
    train_mask = ~test_mask & ~validation_mask
    return dataset.subset(train_mask), dataset.subset(validation_mask), dataset.subset(test_mask)


def subject_protocol(condition: str, seed: int, tissue: str = "legacy") -> dict[str, Any]:
    """A simulated subject's contraction protocol (profile, %MVC, period, SNR) and, on the fibre model, its
    severity, all drawn from its seed."""
    from simulators.tissue import SEVERITIES

    rng = np.random.default_rng(seed)
    protocol: dict[str, Any] = {
        "profile": str(rng.choice(["gestures", "intermittent", "hold"])),
        "mvc_percent": float(rng.uniform(15.0, 80.0)),
        "period_s": float(rng.uniform(2.0, 5.0)),
        "snr_db": float(rng.uniform(15.0, 35.0)),
    }
    # drawn after the legacy draws, and only for the fibre model, so legacy subjects keep their samples
    protocol["severity"] = str(rng.choice(SEVERITIES)) if tissue == "fibres" and condition != "healthy" else "moderate"
    return protocol


def simulated_subject(
    condition: str,
    seed: int,
    duration_s: float = 20.0,
    layout: str = "ring8",
    fs: float = 2048.0,
    window_ms: float = 200.0,
    hop_ms: float = 100.0,
    tissue: str = "legacy",
) -> WindowSet:
    """One simulated subject (its own motor-unit pool, drawn from ``seed``) in a varied contraction protocol.

    Only windows entirely inside a contraction are kept: at rest there is no motor-unit activity and the condition
    cannot be seen. The fatigue target is the relative conduction velocity at the window's end (1 = fresh).
    ``tissue="fibres"`` simulates the fibre-level model (docs/simulator.md), each patient's severity drawn from
    the seed (mild / moderate / severe alike), so the classes overlap as they do in clinics; "legacy" draws
    exactly the samples it always did.
    """
    from simulators.conditions import CONDITIONS
    from simulators.emg import EmgSimulator, SimulationConfig

    protocol = subject_protocol(condition, seed, tissue)
    config = SimulationConfig(layout=layout, fs=fs, condition=condition, seed=seed, tissue=tissue, **protocol)
    simulator = EmgSimulator(config)
    truth_rate_hz = 20.0
    data, truth_ends, truths = simulator.generate_with_truth(duration_s, truth_rate_hz)
    # each truth describes the samples read just before it (one truth step)
    boundaries = np.concatenate([[0], truth_ends])
    active = np.zeros(len(data), dtype=np.int64)
    relative_cv = np.ones(len(data), dtype=np.float32)
    for start, end, truth in zip(boundaries[:-1], boundaries[1:], truths, strict=True):
        active[start:end] = truth["mvc_percent"] > 0
        relative_cv[start:end] = truth["relative_cv"]
    mode = "needle" if config.electrode_layout().kind == "needle" else "surface"
    window_samples = int(round(window_ms * fs / 1000))
    filtered = filter_like_pipeline(data, fs, mode)
    windows, activity, ends = cut_windows(
        filtered, active, window_samples, max(1, int(round(hop_ms * fs / 1000))), skip_samples=int(0.2 * fs)
    )
    keep = activity == 1
    n = int(keep.sum())
    return WindowSet(
        windows=windows[keep],
        labels=np.full(n, CONDITIONS.index(condition), dtype=np.int64),
        groups=np.full(n, f"{condition}-{seed}"),
        fs=float(fs),
        layout=config.electrode_layout().to_dict(),
        classes=list(CONDITIONS),
        fatigue=relative_cv[ends[keep] - 1],
        times=ends[keep] / fs,
        description={"simulation": {"condition": condition, "seed": seed, "profile": config.profile,
                                    "mvc_percent": config.mvc_percent, "snr_db": config.snr_db,
                                    **({"tissue": tissue, "severity": config.severity} if tissue != "legacy" else {})}},
    )


def simulated_corpus(
    subjects_per_condition: int,
    first_seed: int = 1000,
    duration_s: float = 20.0,
    layout: str = "ring8",
    fs: float = 2048.0,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    progress: Any = None,
    subject_gain_db: float = 12.0,
    run_tasks: Callable[[Callable[..., None], list[tuple]], list] | None = None,
    tissue: str = "legacy",
) -> WindowSet:
    """Subjects of every condition (seeds first_seed, first_seed + 1, ...), cached as .npz under ``cache_dir``
    (private to the user, each file checked against its recorded sha256 before use: models/weight_cache.py).

    Each subject's signal is scaled by a gain drawn log-uniformly within +-``subject_gain_db`` (from its seed):
    electrode contact, skin and amplifier gain change amplitude from one patient to the next by that much, and
    without it the simulated conditions are separable by amplitude alone (neuropathic units are several times
    larger), which every model, LDA included, learns perfectly and no real recording would allow.

    ``run_tasks(function, calls)`` (e.g. ``monitor.cohort.cluster.TaskRunner``: Dask tasks) simulates the
    subjects missing from the cache first, each task writing its subject to the cache and returning nothing, so no
    signal passes through a scheduler.
    """
    from simulators.conditions import CONDITIONS

    wanted = [
        (condition, first_seed + index * len(CONDITIONS) + condition_index)
        for index in range(subjects_per_condition)
        for condition_index, condition in enumerate(CONDITIONS)
    ]
    if run_tasks is not None and cache_dir is not None:
        missing = [(c, s) for c, s in wanted
                   if not is_verified(_cache_path(cache_dir, c, s, duration_s, layout, fs, tissue))]
        run_tasks(_simulate_into_cache, [(c, s, duration_s, layout, fs, str(cache_dir), tissue) for c, s in missing])
    parts = []
    for condition, seed in wanted:
        parts.append(_subject_at_its_gain(condition, seed, duration_s, layout, fs, cache_dir, subject_gain_db, tissue))
        if progress is not None:
            progress(len(parts), subjects_per_condition * len(CONDITIONS))
    corpus = concatenate(parts)
    corpus.description = {
        "dataset": "simulator", "layout": layout, "fs": fs, "subjects_per_condition": subjects_per_condition,
        "first_seed": first_seed, "duration_s": duration_s, "subject_gain_db": subject_gain_db,
        **_tissue_description(tissue),
        "subjects": [part.description["simulation"] for part in parts],
    }
    return corpus


def _tissue_description(tissue: str) -> dict[str, str]:
    """The fibre model's versions for a corpus's description (legacy corpora keep their description as it was)."""
    if tissue == "legacy":
        return {}
    from simulators.emg import FIBRE_MODEL_VERSION
    from simulators.surface import SURFACE_MODEL_VERSION

    return {"tissue": tissue, "fibre_model_version": FIBRE_MODEL_VERSION,
            "surface_model_version": SURFACE_MODEL_VERSION}


def _subject_at_its_gain(condition: str, seed: int, duration_s: float, layout: str, fs: float,
                         cache_dir: str | Path | None, subject_gain_db: float, tissue: str = "legacy") -> WindowSet:
    """One subject scaled by its own gain, drawn from its seed alone (the same subject has the same gain in every
    corpus and split it appears in)."""
    # the tissue only when it is not the default: callers (and test doubles) of the legacy form keep working
    subject = _cached_subject(condition, seed, duration_s, layout, fs, cache_dir,
                              *(() if tissue == "legacy" else (tissue,)))
    gain_db = float(np.random.default_rng([seed, 7]).uniform(-subject_gain_db, subject_gain_db))
    subject.windows = subject.windows * np.float32(10 ** (gain_db / 20))
    subject.description = {"simulation": {**subject.description["simulation"], "gain_db": round(gain_db, 2)}}
    return subject


def simulated_subjects(
    groups: list[str],
    duration_s: float = 20.0,
    layout: str = "ring8",
    fs: float = 2048.0,
    cache_dir: str | Path | None = DEFAULT_CACHE,
    subject_gain_db: float = 12.0,
    tissue: str = "legacy",
) -> WindowSet:
    """The named simulated subjects ("neuropathy-40002": condition and seed), each at its own gain exactly as
    ``simulated_corpus`` builds it: one part of a split can be loaded without simulating or reading the others."""
    from simulators.conditions import CONDITIONS

    parts = []
    for group in groups:
        condition, _, seed = group.rpartition("-")
        if condition not in CONDITIONS or not seed.isdigit():
            raise ValueError(f"{group!r} is not a simulated subject (condition-seed)")
        parts.append(_subject_at_its_gain(condition, int(seed), duration_s, layout, fs, cache_dir, subject_gain_db,
                                          tissue))
    result = concatenate(parts)
    result.description = {
        "dataset": "simulator", "layout": layout, "fs": fs, "duration_s": duration_s,
        "subject_gain_db": subject_gain_db, **_tissue_description(tissue),
        "subjects": [part.description["simulation"] for part in parts],
    }
    return result


def _cache_path(cache_dir: str | Path, condition: str, seed: int, duration_s: float, layout: str, fs: float,
                tissue: str = "legacy") -> Path:
    from simulators.emg import FIBRE_MODEL_VERSION, SIMULATOR_VERSION
    from simulators.surface import SURFACE_MODEL_VERSION

    # the version is part of the name: a changed simulator must never be trained on from a stale cache; the fibre
    # model's samples change with its own versions (the legacy name is unchanged, so legacy caches stay valid)
    version = SIMULATOR_VERSION if tissue == "legacy" else \
        f"{SIMULATOR_VERSION}-{tissue}-{FIBRE_MODEL_VERSION}-{SURFACE_MODEL_VERSION}"
    return Path(cache_dir) / f"sim-{version}-{layout}-{fs:g}-{condition}-{seed}-{duration_s:g}s.npz"


def _simulate_into_cache(condition: str, seed: int, duration_s: float, layout: str, fs: float, cache_dir: str,
                         tissue: str = "legacy") -> None:
    _cached_subject(condition, seed, duration_s, layout, fs, cache_dir, tissue)


def _cached_subject(
    condition: str, seed: int, duration_s: float, layout: str, fs: float, cache_dir: str | Path | None,
    tissue: str = "legacy",
) -> WindowSet:
    # keyword only when it is not the default: callers (and test doubles) of the legacy form keep working
    tissue_option = {} if tissue == "legacy" else {"tissue": tissue}
    if cache_dir is None:
        return simulated_subject(condition, seed, duration_s, layout, fs, **tissue_option)
    path = _cache_path(cache_dir, condition, seed, duration_s, layout, fs, tissue)
    if is_verified(path):  # a file whose hash does not match is simulated again, never trained on
        stored = np.load(path, allow_pickle=False)
        from simulators.conditions import CONDITIONS

        return WindowSet(
            windows=stored["windows"], labels=stored["labels"], groups=stored["groups"], fs=float(fs),
            layout=ElectrodeLayout.from_name(layout).to_dict(), classes=list(CONDITIONS), fatigue=stored["fatigue"],
            times=stored["times"], description={"simulation": {
                "condition": condition, "seed": seed, "cached": True,
                **({"severity": subject_protocol(condition, seed, tissue)["severity"]} if tissue != "legacy" else {})}},
        )
    subject = simulated_subject(condition, seed, duration_s, layout, fs, **tissue_option)
    write_verified(path, lambda stream: np.savez(
        stream, windows=subject.windows, labels=subject.labels, groups=subject.groups.astype(str),
        fatigue=subject.fatigue, times=subject.times))
    return subject
