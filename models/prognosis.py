"""Fatigue prognosis (the paper's Algorithm 3): an LSTM forecasts the median-frequency trajectory of a sustained
contraction over the next minutes from its trend so far, and the time left until MDF reaches a threshold
("endurance left"), with an uncertainty band.

Data: trajectories of epoch MDF (one value per ``EPOCH_S``, as ``dsp.fatigue`` produces) during sustained
contractions, drawn from the simulator's own fatigue model (``simulators.fatigue.FatigueModel``: conduction
velocity falls linearly with the excess over the threshold force until a floor, and MDF falls in proportion),
with random force, fatigue rate, starting MDF and epoch-to-epoch estimation noise. The network sees the last
``HISTORY_EPOCHS`` epochs relative to the contraction's baseline (median of its first epochs) and predicts, for
each of the next ``HORIZON_EPOCHS`` epochs, a Gaussian (mean and log-variance) of the relative MDF: training
minimises the Gaussian negative log-likelihood, so the variance is the model's own uncertainty.

The simpler alternative it must beat: a straight line fitted to the last ``LINEAR_FIT_S`` seconds and extended.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from models.cached_training import fit_minibatches, settings_key, train_or_load_cached
from models.weight_cache import user_cache_dir
from simulators.fatigue import FatigueModel

if TYPE_CHECKING:
    from torch import nn

    from models.forecaster_onnx import OnnxForecaster

log = logging.getLogger(__name__)
EPOCH_S = 2.0
HISTORY_EPOCHS = 45  # 90 s of trend
HORIZON_EPOCHS = 60  # forecast the next 2 minutes
MIN_HISTORY_EPOCHS = 10  # forecasts start after 20 s of contraction
BASELINE_EPOCHS = 5
LINEAR_FIT_S = 60.0
CACHE_DIR = user_cache_dir()  # private to the user (models/weight_cache.py)
#: the live forecaster: ``train_forecaster()`` with the default ``ForecasterTraining`` (77 KB, state dict only), with
#: its card (the training settings' key and held-out figures) beside it
BUNDLED_WEIGHTS = Path(__file__).resolve().parent / "weights" / "fatigue-forecaster.pt"


@dataclass(frozen=True)
class TrajectoryConfig:
    duration_s: float = 420.0
    mvc_range: tuple[float, float] = (0.3, 0.8)
    rate_range: tuple[float, float] = (0.08, 0.25)  # conduction-velocity loss per minute at 50 % MVC
    floor_range: tuple[float, float] = (0.5, 0.75)
    start_mdf_range: tuple[float, float] = (70.0, 120.0)
    noise_range: tuple[float, float] = (0.01, 0.04)  # relative std of one epoch's MDF estimate


def simulate_trajectories(
    count: int, seed: int, config: TrajectoryConfig | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """-> (observed MDF (count, T) Hz, true MDF (count, T) Hz), one value per epoch of a sustained contraction."""
    config = config or TrajectoryConfig()
    rng = np.random.default_rng(seed)
    n_epochs = int(config.duration_s / EPOCH_S)
    observed = np.empty((count, n_epochs))
    truth = np.empty((count, n_epochs))
    for i in range(count):
        model = FatigueModel(rate_per_min=rng.uniform(*config.rate_range), floor=rng.uniform(*config.floor_range))
        level = rng.uniform(*config.mvc_range)
        velocity = model.advance(np.ones(1), np.full((n_epochs, 1), level), 1.0 / EPOCH_S)[:, 0]
        truth[i] = rng.uniform(*config.start_mdf_range) * velocity
        observed[i] = truth[i] * (1.0 + rng.normal(0.0, rng.uniform(*config.noise_range), n_epochs))
    return observed, truth


def _baseline(history: np.ndarray) -> np.ndarray:
    return np.median(history[..., :BASELINE_EPOCHS], axis=-1)


def network_input(history: np.ndarray) -> np.ndarray:
    """(B, T) epoch MDF since the contraction's start -> (B, HISTORY_EPOCHS, 2): relative MDF - 1, valid flag.
    Shorter histories are padded on the left with zeros and flagged invalid."""
    history = np.atleast_2d(np.asarray(history, dtype=np.float64))
    relative = history / _baseline(history)[:, None] - 1.0
    recent = relative[:, -HISTORY_EPOCHS:]
    features = np.zeros((len(history), HISTORY_EPOCHS, 2), dtype=np.float32)
    features[:, -recent.shape[1] :, 0] = recent
    features[:, -recent.shape[1] :, 1] = 1.0
    return features


def build_forecaster(hidden: int = 48) -> nn.Module:
    import torch
    from torch import nn

    class FatigueForecaster(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lstm = nn.LSTM(2, hidden, num_layers=1, batch_first=True)
            self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, 2 * HORIZON_EPOCHS))

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            _, (state, _) = self.lstm(x)
            out = self.head(state[-1])
            mean, log_variance = out[:, :HORIZON_EPOCHS], out[:, HORIZON_EPOCHS:]
            # forecasts are offsets from the last valid input (the trend continues from where it is)
            return x[:, -1:, 0] + mean, log_variance.clamp(-12.0, 4.0)

    return FatigueForecaster()


def training_pairs(
    observed: np.ndarray, truth: np.ndarray, rng: np.random.Generator, per_trajectory: int
) -> tuple[np.ndarray, np.ndarray]:
    """Random cut points -> (inputs (N, H, 2), targets (N, HORIZON) relative true MDF - 1)."""
    n_epochs = observed.shape[1]
    inputs, targets = [], []
    for i in range(len(observed)):
        for cut in rng.integers(MIN_HISTORY_EPOCHS, n_epochs - HORIZON_EPOCHS + 1, per_trajectory):
            history = observed[i, :cut]
            inputs.append(network_input(history)[0])
            targets.append(truth[i, cut : cut + HORIZON_EPOCHS] / _baseline(history) - 1.0)
    return np.stack(inputs), np.stack(targets).astype(np.float32)


@dataclass(frozen=True)
class ForecasterTraining:
    trajectories: int = 1000
    cuts_per_trajectory: int = 8
    epochs: int = 8
    batch_size: int = 128
    learning_rate: float = 3e-3
    hidden: int = 48
    seed: int = 0

    def key(self) -> str:
        return settings_key(self)


def train_forecaster(settings: ForecasterTraining | None = None, cache_dir: Path | None = CACHE_DIR) -> nn.Module:
    """Trains (or loads from ``cache_dir``) the forecaster on simulated trajectories; returns the eval-mode net."""
    settings = settings or ForecasterTraining()
    fit = partial(_fit_on_simulated_trajectories, settings=settings)
    return train_or_load_cached("prognosis", settings, cache_dir, lambda: build_forecaster(settings.hidden), fit)


def _fit_on_simulated_trajectories(network: nn.Module, settings: ForecasterTraining) -> None:
    """Trains ``network`` on random cut points of simulated trajectories by the Gaussian negative log-likelihood,
    so that its variance is its own uncertainty."""
    import torch

    rng = np.random.default_rng(settings.seed)
    observed, truth = simulate_trajectories(settings.trajectories, settings.seed)
    inputs, targets = training_pairs(observed, truth, rng, settings.cuts_per_trajectory)
    x, y = torch.from_numpy(inputs), torch.from_numpy(targets)
    loss_function = torch.nn.GaussianNLLLoss()

    def batch_loss(batch: torch.Tensor) -> torch.Tensor:
        mean, log_variance = network(x[batch])
        return loss_function(mean, y[batch], log_variance.exp())

    fit_minibatches(network, len(x), batch_loss, settings)


def load_forecaster(weights: Path = BUNDLED_WEIGHTS) -> nn.Module:
    """The forecaster for live use, cheaply: the bundled weights (``torch.load(weights_only=True)``, never a pickle)
    when their card says they come from the current default training; otherwise trained once (~2 minutes) and
    cached in ``user_cache_dir()``."""
    import torch

    settings = ForecasterTraining()
    card = weights.with_suffix(".json")
    if weights.is_file() and card.is_file() and json.loads(card.read_text()).get("training_key") == settings.key():
        network = build_forecaster(settings.hidden)
        network.load_state_dict(torch.load(weights, weights_only=True))
        return network.eval()
    return train_forecaster(settings, cache_dir=user_cache_dir())


def load_live_forecaster(weights: Path = BUNDLED_WEIGHTS) -> OnnxForecaster | nn.Module:
    """The forecaster for the GUI: the exported ONNX file under ONNX Runtime (no torch import) while it matches
    ``weights`` (``models/forecaster_onnx.py``), otherwise ``load_forecaster(weights)`` with torch."""
    from models.forecaster_onnx import load_onnx_forecaster

    network, reason = load_onnx_forecaster(weights)
    if network is not None:
        return network
    log.info("fatigue forecaster runs with torch: %s", reason)
    return load_forecaster(weights)


def lstm_forecast(network: OnnxForecaster | nn.Module, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(B, T) epoch MDF histories -> (mean MDF (B, HORIZON) Hz, std (B, HORIZON) Hz) for the next epochs."""
    from models.forecaster_onnx import OnnxForecaster

    history = np.atleast_2d(np.asarray(history, dtype=np.float64))
    baseline = _baseline(history)[:, None]
    features = network_input(history)
    if isinstance(network, OnnxForecaster):
        mean, log_variance = network(features)
    else:
        import torch

        with torch.inference_mode():
            mean, log_variance = (out.numpy() for out in network(torch.from_numpy(features)))
    return (1.0 + mean) * baseline, np.exp(0.5 * log_variance) * baseline


def linear_forecast(history: np.ndarray) -> np.ndarray:
    """(B, T) -> (B, HORIZON): least-squares line through the last ``LINEAR_FIT_S`` of each history, extended."""
    history = np.atleast_2d(np.asarray(history, dtype=np.float64))
    fit_epochs = min(history.shape[1], int(LINEAR_FIT_S / EPOCH_S))
    t = np.arange(history.shape[1] - fit_epochs, history.shape[1], dtype=np.float64)
    slope, intercept = np.polyfit(t, history[:, -fit_epochs:].T, 1)
    future = history.shape[1] + np.arange(HORIZON_EPOCHS, dtype=np.float64)
    return intercept[:, None] + slope[:, None] * future[None, :]


def endurance_left(mean: np.ndarray, std: np.ndarray, threshold_hz: float, z: float = 1.645) -> dict[str, float | None]:
    """Seconds until the forecast MDF reaches ``threshold_hz``: the central estimate and a 90 % band (the times the
    mean -/+ z std curves cross). None where a curve stays above the threshold over the horizon."""

    def crossing(curve: np.ndarray) -> float | None:
        below = np.flatnonzero(curve <= threshold_hz)
        return None if below.size == 0 else float((below[0] + 1) * EPOCH_S)

    mean, std = np.asarray(mean, dtype=np.float64), np.asarray(std, dtype=np.float64)
    return {"seconds": crossing(mean), "earliest_s": crossing(mean - z * std), "latest_s": crossing(mean + z * std),
            "horizon_s": HORIZON_EPOCHS * EPOCH_S}  # fmt: skip


def evaluate_forecasts(
    network: nn.Module, observed: np.ndarray, truth: np.ndarray, seed: int = 1, cuts: int = 4
) -> dict[str, Any]:
    """RMSE (Hz) of the LSTM and of linear extrapolation against the true MDF over the horizon, on held-out
    trajectories, overall and per horizon third; plus the LSTM's 90 % band coverage of the truth."""
    rng = np.random.default_rng(seed)
    lstm_errors, linear_errors, inside = [], [], []
    n_epochs = observed.shape[1]
    for i in range(len(observed)):
        for cut in rng.integers(MIN_HISTORY_EPOCHS, n_epochs - HORIZON_EPOCHS + 1, cuts):
            history = observed[i : i + 1, :cut]
            target = truth[i, cut : cut + HORIZON_EPOCHS]
            mean, std = lstm_forecast(network, history)
            lstm_errors.append(mean[0] - target)
            linear_errors.append(linear_forecast(history)[0] - target)
            inside.append(np.abs(mean[0] - target) <= 1.645 * std[0])
    lstm_errors, linear_errors = np.array(lstm_errors), np.array(linear_errors)
    thirds = np.array_split(np.arange(HORIZON_EPOCHS), 3)

    def rmse(errors: np.ndarray, columns=slice(None)) -> float:
        return round(float(np.sqrt(np.mean(errors[:, columns] ** 2))), 3)

    return {
        "forecasts": len(lstm_errors),
        "horizon_s": HORIZON_EPOCHS * EPOCH_S,
        "lstm_rmse_hz": rmse(lstm_errors),
        "linear_rmse_hz": rmse(linear_errors),
        "lstm_rmse_by_third_hz": [rmse(lstm_errors, t) for t in thirds],
        "linear_rmse_by_third_hz": [rmse(linear_errors, t) for t in thirds],
        "lstm_band_coverage": round(float(np.mean(inside)), 3),
    }


class EnduranceEstimator:
    """Live use: feed one epoch MDF per ``EPOCH_S`` of a contraction; ``estimate()`` gives the forecast and the
    endurance left until MDF falls ``drop_pct`` below the contraction's baseline (dsp.fatigue's "fatigued" is 15 %)."""

    def __init__(self, network: OnnxForecaster | nn.Module, drop_pct: float = 15.0) -> None:
        self.network = network
        self.drop_pct = drop_pct
        self.history: list[float] = []

    def reset(self) -> None:
        self.history.clear()

    def add_epoch(self, mdf_hz: float) -> None:
        if math.isfinite(mdf_hz):
            self.history.append(float(mdf_hz))

    def estimate(self) -> dict[str, Any] | None:
        if len(self.history) < MIN_HISTORY_EPOCHS:
            return None
        history = np.asarray(self.history)
        mean, std = lstm_forecast(self.network, history[None, :])
        threshold = float(_baseline(history[None, :])[0]) * (1.0 - self.drop_pct / 100.0)
        return {"threshold_hz": round(threshold, 2), "forecast_hz": mean[0].round(2).tolist(),
                "forecast_std_hz": std[0].round(2).tolist(), **endurance_left(mean[0], std[0], threshold)}  # fmt: skip


def measured_contraction(seconds: float, seed: int, mvc_percent: float = 50.0, fatigue_rate: float = 0.15,
                         fs: float = 1024.0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """A sustained contraction from the EMG simulator: (epoch MDF measured from the filtered signal the way the
    monitor measures it: median over 200 ms windows and channels, true MDF of the noise-free signal), per epoch."""
    from dsp.features import compute_features
    from dsp.filters import default_chain
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout="ring8", fs=fs, profile="hold", mvc_percent=mvc_percent, fatigue_rate=fatigue_rate,
                              artifacts=("noise",), mains_hz=0.0, seed=seed)  # fmt: skip
    simulator = EmgSimulator(config)
    chain = default_chain(fs, simulator.n_channels, mains_hz=None)
    epoch = int(round(EPOCH_S * fs))
    window = int(round(0.2 * fs))
    measured, truth = [], []
    for _ in range(int(seconds / EPOCH_S)):
        filtered, _ = chain.process(simulator.read(epoch))
        windows = filtered[: (epoch // window) * window].T.reshape(simulator.n_channels, -1, window).transpose(1, 0, 2)
        measured.append(float(np.median(compute_features(windows, fs, ["MDF"])["MDF"])))
        truth.append(float(simulator.ground_truth()["true_mdf_hz"]))
    return np.asarray(measured), np.asarray(truth)


def evaluate_on_contraction(
    network: nn.Module, measured: np.ndarray, truth: np.ndarray, every: int = 5
) -> dict[str, Any]:
    """Forecasts from the measured MDF at every ``every``-th epoch, scored against the true MDF in % of each one's
    baseline (the measured and true MDF differ by a fixed offset: noise and filters; the trend is what counts)."""
    lstm_errors, linear_errors = [], []
    for cut in range(MIN_HISTORY_EPOCHS, len(measured) - HORIZON_EPOCHS + 1, every):
        history = measured[None, :cut]
        baseline = float(_baseline(history)[0])
        target = truth[cut : cut + HORIZON_EPOCHS] / float(_baseline(truth[None, :cut])[0])
        lstm_errors.append(lstm_forecast(network, history)[0][0] / baseline - target)
        linear_errors.append(linear_forecast(history)[0] / baseline - target)
    lstm_errors, linear_errors = np.array(lstm_errors), np.array(linear_errors)
    return {
        "forecasts": len(lstm_errors),
        "lstm_rmse_pct": round(float(100 * np.sqrt(np.mean(lstm_errors**2))), 2),
        "linear_rmse_pct": round(float(100 * np.sqrt(np.mean(linear_errors**2))), 2),
        "mdf_start_end_hz": [round(float(measured[0]), 1), round(float(measured[-1]), 1)],
        "true_mdf_start_end_hz": [round(float(truth[0]), 1), round(float(truth[-1]), 1)],
    }
