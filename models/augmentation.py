"""Data augmentation for EMG windows (the paper's step 12), as plain functions on (N, C, S) arrays.

Each function takes windows (numpy array or CPU torch tensor, float, µV) and a ``numpy.random.Generator`` and
returns new windows of the same shape and type, so it drops into any training loop:

- ``scale_amplitude``: per-window (or per-channel) gain, log-uniform in [1/max_gain, max_gain]: skin impedance and
  electrode contact change from one donning to the next.
- ``add_noise``: white Gaussian noise at a set SNR (dB) relative to each window-channel's own power.
- ``shift_electrodes``: the array moved over the muscle. A ring (armband) rotates by a random fraction of an
  electrode spacing, circularly, each channel becoming a linear mix of its two neighbours; a grid shifts by a
  fraction of a spacing along rows and columns (bilinear, edge channels repeat the edge).
- ``time_warp``: a smooth random warp of the time axis (stretch up to ``max_stretch`` about a random centre),
  resampled back to S samples by linear interpolation.
- ``drop_channels``: each channel zeroed with probability p (at least one kept): a lifted electrode.

``Augmenter`` chains them with probabilities; ``augment_windows`` makes k augmented copies of a training set.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from simulators.electrodes import ElectrodeLayout

ArrayLike = Any  # np.ndarray or torch.Tensor


def _as_numpy(windows: ArrayLike) -> tuple[np.ndarray, Callable[[np.ndarray], ArrayLike]]:
    """(float numpy view, function turning a result back into the caller's type)."""
    if hasattr(windows, "detach"):  # torch tensor: work in numpy on CPU, hand back a tensor of the same dtype
        import torch

        dtype = windows.dtype
        array = windows.detach().cpu().numpy()
        return array, lambda result: torch.from_numpy(np.ascontiguousarray(result)).to(dtype)
    array = np.asarray(windows)
    if array.ndim != 3:
        raise ValueError(f"windows must be (n_windows, n_channels, n_samples), got {array.shape}")
    dtype = array.dtype if np.issubdtype(array.dtype, np.floating) else np.float32
    return array, lambda result: np.ascontiguousarray(result, dtype=dtype)


def scale_amplitude(
    windows: ArrayLike, rng: np.random.Generator, max_gain: float = 1.5, per_channel: bool = False
) -> ArrayLike:
    if max_gain < 1:
        raise ValueError("max_gain must be >= 1")
    x, back = _as_numpy(windows)
    shape = (x.shape[0], x.shape[1] if per_channel else 1, 1)
    gains = np.exp(rng.uniform(-np.log(max_gain), np.log(max_gain), shape))
    return back(x * gains)


def add_noise(windows: ArrayLike, rng: np.random.Generator, snr_db: float = 20.0) -> ArrayLike:
    x, back = _as_numpy(windows)
    power = np.mean(np.square(x, dtype=np.float64), axis=2, keepdims=True)
    noise = rng.standard_normal(x.shape) * np.sqrt(power / 10.0 ** (snr_db / 10.0))
    return back(x + noise)


def _ring_rotate(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Channel c of the result reads position c + offset around the ring (linear between neighbours)."""
    n_channels = x.shape[1]
    base = np.floor(offsets).astype(np.int64)
    fraction = (offsets - base)[:, None, None]
    index = (np.arange(n_channels)[None, :] + base[:, None]) % n_channels  # (N, C)
    lower = np.take_along_axis(x, index[:, :, None], axis=1)
    upper = np.take_along_axis(x, ((index + 1) % n_channels)[:, :, None], axis=1)
    return (1.0 - fraction) * lower + fraction * upper


def _grid_shift(x: np.ndarray, layout: ElectrodeLayout, shifts: np.ndarray) -> np.ndarray:
    rows, cols = layout.rows, layout.cols
    if not layout.grid_index:
        if rows is None or cols is None or rows * cols != x.shape[1]:
            raise ValueError("grid shift needs the layout's rows x cols (or grid_index) to match the channels")
        positions = [(r, c) for r in range(rows) for c in range(cols)]
    else:
        positions = list(layout.grid_index)
    r_index = np.array([p[0] for p in positions])
    c_index = np.array([p[1] for p in positions])
    image = np.zeros((x.shape[0], rows, cols, x.shape[2]), dtype=np.float64)
    image[:, r_index, c_index, :] = x
    out = np.empty_like(x, dtype=np.float64)
    for i, (dr, dc) in enumerate(shifts):
        # the electrodes move by (dr, dc) spacings: each now sits where its neighbour (r + dr, c + dc) was
        moved = ndimage.shift(image[i], (-dr, -dc, 0.0), order=1, mode="nearest")
        out[i] = moved[r_index, c_index, :]
    return out


def shift_electrodes(
    windows: ArrayLike, rng: np.random.Generator, layout: ElectrodeLayout | dict, max_shift: float = 1.0
) -> ArrayLike:
    """Move the electrode array by up to ``max_shift`` spacings (ring: rotation; grid: along rows and columns)."""
    if isinstance(layout, dict):
        layout = ElectrodeLayout.from_dict(layout)
    x, back = _as_numpy(windows)
    if layout.n_channels != x.shape[1]:
        raise ValueError(f"layout has {layout.n_channels} electrodes, windows have {x.shape[1]} channels")
    if layout.kind == "ring":
        return back(_ring_rotate(x, rng.uniform(-max_shift, max_shift, x.shape[0])))
    if layout.kind == "grid":
        return back(_grid_shift(x, layout, rng.uniform(-max_shift, max_shift, (x.shape[0], 2))))
    raise ValueError(f"electrode shift needs a ring or a grid, not a {layout.kind} layout")


def time_warp(windows: ArrayLike, rng: np.random.Generator, max_stretch: float = 0.1) -> ArrayLike:
    """Locally stretch or compress time by up to ``max_stretch`` (smooth, monotonic warp), same length out."""
    if not 0 <= max_stretch < 1:
        raise ValueError("max_stretch must be in [0, 1)")
    x, back = _as_numpy(windows)
    n, _, s = x.shape
    t = np.linspace(0.0, 1.0, s)
    out = np.empty(x.shape, dtype=np.float64)
    for i in range(n):
        amount = rng.uniform(-max_stretch, max_stretch)
        centre = rng.uniform(0.25, 0.75)
        # rate 1 + amount * bump(t): a Gaussian bump keeps the warp smooth and, for |amount| < 1, monotonic
        rate = 1.0 + amount * np.exp(-0.5 * ((t - centre) / 0.2) ** 2)
        warped = np.concatenate([[0.0], np.cumsum((rate[1:] + rate[:-1]) / 2)])
        warped *= (s - 1) / warped[-1]
        for c in range(x.shape[1]):
            out[i, c] = np.interp(warped, np.arange(s), x[i, c])
    return back(out)


def drop_channels(windows: ArrayLike, rng: np.random.Generator, probability: float = 0.1) -> ArrayLike:
    x, back = _as_numpy(windows)
    keep = rng.uniform(size=x.shape[:2]) >= probability
    keep[np.arange(x.shape[0]), rng.integers(0, x.shape[1], x.shape[0])] = True  # never drop every channel
    return back(x * keep[:, :, None])


@dataclass
class Augmenter:
    """Applies each augmentation with its probability, in a fixed order; ``None`` layout skips electrode shifts."""

    layout: ElectrodeLayout | dict | None = None
    max_gain: float = 1.5
    snr_db: float = 20.0
    max_shift: float = 1.0
    max_stretch: float = 0.1
    drop_probability: float = 0.1
    p_scale: float = 0.5
    p_noise: float = 0.5
    p_shift: float = 0.5
    p_warp: float = 0.3
    p_drop: float = 0.2

    def __call__(self, windows: ArrayLike, rng: np.random.Generator) -> ArrayLike:
        x, back = _as_numpy(windows)
        x = x.astype(np.float64)
        steps: list[tuple[float, Callable[[np.ndarray, np.ndarray], np.ndarray]]] = [
            (self.p_scale, lambda w, r: scale_amplitude(w, r, self.max_gain)),
            (self.p_noise, lambda w, r: add_noise(w, r, self.snr_db)),
            (self.p_warp, lambda w, r: time_warp(w, r, self.max_stretch)),
            (self.p_drop, lambda w, r: drop_channels(w, r, self.drop_probability)),
        ]
        if self.layout is not None:
            steps.insert(2, (self.p_shift, lambda w, r: shift_electrodes(w, r, self.layout, self.max_shift)))
        for probability, step in steps:
            chosen = rng.uniform(size=len(x)) < probability
            if chosen.any():
                x[chosen] = step(x[chosen], rng)
        return back(x)


def augment_windows(
    windows: np.ndarray, labels: np.ndarray, augmenter: Augmenter, copies: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The originals followed by ``copies`` augmented copies, with labels repeated to match."""
    rng = np.random.default_rng(seed)
    parts = [np.asarray(windows, dtype=np.float32)]
    parts += [np.asarray(augmenter(windows, rng), dtype=np.float32) for _ in range(copies)]
    return np.concatenate(parts), np.tile(np.asarray(labels), copies + 1)


def cross_session_accuracy(
    root: str,
    train_sessions: tuple[str, ...] = ("12345-1", "12345-2"),
    test_sessions: tuple[str, ...] = ("12345-3",),
    copies: int = 2,
    augmenter: Augmenter | None = None,
    hop_ms: float = 100.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Cross-session gesture accuracy of LDA and a linear SVM on the model's handcrafted features, trained on
    ``train_sessions`` with and without ``copies`` augmented copies of each training window, tested on
    ``test_sessions`` (separate donnings of the armband, so the test electrodes sit elsewhere on the arm)."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    from dsp.features import MODEL_FEATURES, feature_matrix
    from models.datasets import load_myo_gestures

    data = load_myo_gestures(root, list(train_sessions) + list(test_sessions), hop_ms=hop_ms)
    train = data.in_groups(list(train_sessions))
    test = data.in_groups(list(test_sessions))
    augmenter = augmenter or Augmenter(layout=data.layout)

    def features(windows: np.ndarray) -> np.ndarray:
        return feature_matrix(windows, data.fs, MODEL_FEATURES).reshape(len(windows), -1)

    test_features = features(test.windows)
    augmented_windows, augmented_labels = augment_windows(train.windows, train.labels, augmenter, copies, seed)
    training_sets = {
        "plain": (features(train.windows), train.labels),
        "augmented": (features(augmented_windows), augmented_labels),
    }
    models = {
        "LDA": lambda: make_pipeline(StandardScaler(), LinearDiscriminantAnalysis()),
        "linear SVM": lambda: make_pipeline(StandardScaler(), LinearSVC(C=0.1, max_iter=5000)),
    }
    results: dict[str, Any] = {"train_windows": len(train), "test_windows": len(test), "copies": copies}
    for model_name, make in models.items():
        for set_name, (x, y) in training_sets.items():
            model = make().fit(x, y)
            results[f"{model_name} {set_name}"] = round(float(np.mean(model.predict(test_features) == test.labels)), 4)
    return results
