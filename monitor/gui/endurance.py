""""Endurance left" for the fatigue view: the LSTM forecast (models/prognosis.py) fed by the live MDF trend.

The trend is the fatigue view's own: channel-mean MDF in one-second bins, contraction bins marked. The ongoing
contraction (pauses up to the tracker's ``max_pause_s`` do not end it) is cut into ``EPOCH_S`` epochs from its
first bin, each the mean MDF of its contraction bins, which is what the forecaster was trained on. A new forecast
runs only when an epoch completes (about 0.3 ms, every 2 s).

The forecaster loads in a background thread at start-up, so the window opens at once and the readout says
"loading" meanwhile. It runs the bundled ONNX export under ONNX Runtime (``models/forecaster_onnx.py``), which keeps
torch (~180 MB, seconds to import) out of the GUI process; torch loads the bundled weights only where onnxruntime or
a matching export is missing.
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from dsp.fatigue import FatigueSettings
from models.prognosis import EPOCH_S, MIN_HISTORY_EPOCHS, EnduranceEstimator

log = logging.getLogger(__name__)


def contraction_epochs(
    mdf: np.ndarray, contracting: np.ndarray, bin_s: float = 1.0, max_pause_s: float = FatigueSettings().max_pause_s
) -> tuple[int, np.ndarray] | None:
    """(first bin, epoch MDF (E,)) of the contraction still going on in the newest bin; None at rest.

    Only complete epochs count; an epoch without a contraction bin (a pause) is NaN."""
    contracting = np.asarray(contracting, dtype=bool)
    active = np.flatnonzero(contracting)
    if not len(active) or active[-1] != len(contracting) - 1:
        return None
    breaks = np.flatnonzero(np.diff(active) > int(round(max_pause_s / bin_s)) + 1)
    start = int(active[breaks[-1] + 1] if len(breaks) else active[0])
    per_epoch = max(1, int(round(EPOCH_S / bin_s)))
    complete = (len(contracting) - start) // per_epoch
    values = np.where(contracting, np.asarray(mdf, dtype=np.float64), np.nan)[start : start + complete * per_epoch]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN epoch (a pause) is NaN, as documented
        return start, np.nanmean(values.reshape(complete, per_epoch), axis=1)


def _load_default() -> Any:
    from models.prognosis import load_live_forecaster

    return load_live_forecaster()


class EnduranceForecast:
    """The estimator for the ongoing contraction; ``update`` once per refresh, ``text()`` for the readout."""

    def __init__(self, loader: Callable[[], Any] = _load_default, background: bool = True) -> None:
        self.estimator: EnduranceEstimator | None = None
        self.error: str | None = None
        self.estimate: dict[str, Any] | None = None
        self.epochs = np.empty(0)
        self.start: int | None = None  # first bin of the ongoing contraction
        self.state = "at rest"
        self._key: tuple[int, int] | None = None
        self._ready = threading.Event()
        if background:
            threading.Thread(target=self._load, args=(loader,), name="forecaster-load", daemon=True).start()
        else:
            self._load(loader)

    def _load(self, loader: Callable[[], Any]) -> None:
        try:
            self.estimator = EnduranceEstimator(loader())
        except Exception as error:  # a missing or broken forecaster must not take the fatigue view down
            log.exception("the fatigue forecaster could not be loaded")
            self.error = f"{type(error).__name__}: {error}"
        self._ready.set()

    def wait_ready(self, timeout_s: float) -> bool:
        return self._ready.wait(timeout_s)

    def update(self, mdf: np.ndarray, contracting: np.ndarray, bin_s: float = 1.0) -> dict[str, Any] | None:
        """Re-estimates when the ongoing contraction has gained an epoch; returns the estimate (None: none yet)."""
        found = contraction_epochs(mdf, contracting, bin_s)
        if found is None:
            self.state, self.estimate, self._key, self.epochs, self.start = "at rest", None, None, np.empty(0), None
            return None
        start, epochs = found
        self.epochs, self.start = epochs, start
        if self.estimator is None:
            self.state = "unavailable" if self.error else "loading"
            return None
        if self._key == (start, len(epochs)):
            return self.estimate
        self._key = (start, len(epochs))
        self.estimator.reset()
        for value in epochs:
            self.estimator.add_epoch(float(value))
        self.estimate = self.estimator.estimate()
        finite = epochs[np.isfinite(epochs)]
        if self.estimate is None:
            self.state = "learning"
        elif len(finite) and finite[-1] <= self.estimate["threshold_hz"]:
            self.state = "reached"
        else:
            self.state = "forecast"
        return self.estimate

    def text(self) -> str:
        drop = f"MDF -{self.estimator.drop_pct:.0f} %" if self.estimator is not None else "MDF threshold"
        if self.state == "at rest":
            return "endurance left —  (at rest)"
        if self.state == "loading":
            return "endurance left —  (loading the forecaster)"
        if self.state == "unavailable":
            return "endurance left —  (no forecaster)"
        if self.state == "learning":
            return f"endurance left —  (needs {MIN_HISTORY_EPOCHS * EPOCH_S:.0f} s of contraction)"
        if self.state == "reached":
            return f"endurance left 0 s  ({drop} reached)"
        estimate = self.estimate
        horizon = f">{estimate['horizon_s']:.0f} s"

        def seconds(value: float | None) -> str:
            return horizon if value is None else f"{value:.0f} s"

        # the band's early edge comes from the low curve crossing first, the late edge from the high curve
        earliest, latest = seconds(estimate['earliest_s']), seconds(estimate['latest_s'])
        band = earliest if earliest == latest else f"{earliest}–{latest}"  # not ">120 s–>120 s"
        return f"endurance left {seconds(estimate['seconds'])}  (90 %: {band}, to {drop})"
