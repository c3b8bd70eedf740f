"""Test streams for the dashboard: a band-limited noise source paced onto a real LSL outlet in a thread.

The noise band is known, so the spectrum and fatigue views' MNF/MDF have a true value to be checked against.
"""

from __future__ import annotations

import threading
import uuid

import numpy as np
from scipy.signal import butter, sosfilt, sosfilt_zi

from simulators.electrodes import ElectrodeLayout


class BandNoiseSource:
    """Gaussian noise band-passed to ``band_hz`` on every channel; ``dead_channel`` reads NaN (electrode off)."""

    def __init__(self, layout: ElectrodeLayout, fs: float = 2048.0, band_hz: tuple[float, float] = (60.0, 140.0),
                 amplitude_uv: float = 50.0, dead_channel: int | None = None, seed: int = 1,
                 channel_gains: np.ndarray | None = None) -> None:
        self.fs = fs
        self.layout = layout
        self.n_channels = layout.n_channels
        self.channel_labels = list(layout.labels)
        self.dead_channel = dead_channel
        self._rng = np.random.default_rng(seed)
        self._sos = butter(4, band_hz, btype="bandpass", fs=fs, output="sos")
        self._state = np.repeat(sosfilt_zi(self._sos)[:, :, None], self.n_channels, axis=2) * 0.0
        # band-passing white noise of unit variance leaves roughly sqrt(bandwidth / nyquist) of its amplitude
        self._gain = amplitude_uv / np.sqrt((band_hz[1] - band_hz[0]) / (fs / 2))
        if channel_gains is not None:
            self._gain = self._gain * np.asarray(channel_gains, dtype=float)

    def read(self, n: int) -> np.ndarray:
        noise = self._rng.standard_normal((n, self.n_channels)) * self._gain
        out, self._state = sosfilt(self._sos, noise, axis=0, zi=self._state)
        out = out.astype(np.float32)
        if self.dead_channel is not None:
            out[:, self.dead_channel] = np.nan
        return out


class LiveStream:
    """A source on a real LSL outlet, paced in real time by the project's Amplifier in a background thread.

    ``vanish()`` stops it and destroys the outlet (the amplifier unplugged); ``start()`` brings it back under the same
    source_id, as a restarted amplifier would."""

    def __init__(self, source: object, name: str = "gui-test") -> None:
        self.source = source
        self.name = name
        self.source_id = f"{name}-{uuid.uuid4().hex[:8]}"
        self.amplifier = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LiveStream:
        from simulators.amplifier import Amplifier

        self._stop = threading.Event()
        self.amplifier = Amplifier(self.source, name=self.name, source_id=self.source_id, chunk_samples=64)
        self._thread = threading.Thread(target=self.amplifier.run, kwargs={"stop_event": self._stop}, daemon=True)
        self._thread.start()
        return self

    def vanish(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.amplifier = None  # drops the outlet: consumers see the stream disappear

    def resolve(self, timeout_s: float = 10.0):
        from monitor.acquisition import resolve_stream

        return resolve_stream(source_id=self.source_id, timeout_s=timeout_s)
