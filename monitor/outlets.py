"""The monitor's own results as LSL streams, so LabRecorder keeps raw EMG and results in one XDF file.

Three numeric streams, irregular rate, each sample stamped with the LSL time of the window's last sample (so they
line up with the raw EMG in the XDF, whatever the processing delay):
- ``<stream>-decisions`` (type ``Classification``): one channel per class probability (the model's, always), then
  ``label_index``: the verdict, the index of the predicted class while the muscle contracts, ``REST_INDEX`` (-1)
  while it is relaxed and ``LEARNING_INDEX`` (-2) while its rest level is still being learned (no condition then).
- ``<stream>-fatigue`` (type ``Fatigue``): mean over usable channels of RMS, MNF, MDF and FInsm5.
- ``<stream>-quality`` (type ``Quality``): 1 where a channel is usable, 0 where it is masked.
- ``<stream>-events`` (type ``Markers``): session events as text (signal lost, signal restored with the gap length).
"""

from __future__ import annotations

from typing import Any

import numpy as np

FATIGUE_CHANNELS = ("RMS", "MNF", "MDF", "FInsm5")
# label_index codes for the verdicts that are not a class (negative: no class index can be mistaken for them)
REST_INDEX = -1
LEARNING_INDEX = -2


def _outlet(name: str, stream_type: str, labels: list[str], source_id: str, unit: str = "",
            codes: dict[str, int] | None = None) -> Any:  # fmt: skip
    import pylsl

    info = pylsl.StreamInfo(name, stream_type, len(labels), pylsl.IRREGULAR_RATE, "float32", source_id)
    if codes:
        described = info.desc().append_child("label_index_codes")
        for name_of_code, code in codes.items():
            described.append_child_value(name_of_code, str(code))
    channels = info.desc().append_child("channels")
    for label in labels:
        channel = channels.append_child("channel")
        channel.append_child_value("label", label)
        if unit:
            channel.append_child_value("unit", unit)
    return pylsl.StreamOutlet(info)


def emg_mean(values: np.ndarray, usable: np.ndarray | None, emg_channels: np.ndarray | None) -> float:
    """Mean of a per-channel figure over usable EMG channels (all EMG channels when none is usable)."""
    values = np.asarray(values, dtype=np.float64)
    selected = np.zeros(len(values), dtype=bool)
    selected[emg_channels if emg_channels is not None else slice(None)] = True
    if usable is not None and (selected & usable).any():
        selected &= usable
    finite = values[selected][np.isfinite(values[selected])]
    return float(finite.mean()) if len(finite) else float("nan")


def _events_outlet(name: str, source_id: str) -> Any:
    import pylsl

    return pylsl.StreamOutlet(pylsl.StreamInfo(name, "Markers", 1, pylsl.IRREGULAR_RATE, "string", source_id))


class ResultOutlets:
    def __init__(
        self, stream_name: str, source_id: str, channel_labels: list[str], classes: list[str] | None = None
    ) -> None:
        self._prefix = stream_name
        self._source_id = source_id
        self._decisions: Any = None
        self._classes: list[str] | None = None
        if classes:
            # made now when the classes are known, so a recorder started before the first decision includes it
            self._make_decisions_outlet(list(classes))
        self.fatigue = _outlet(f"{stream_name}-fatigue", "Fatigue", list(FATIGUE_CHANNELS), f"{source_id}-fatigue")
        self.quality = _outlet(f"{stream_name}-quality", "Quality", list(channel_labels), f"{source_id}-quality")
        self.events = _events_outlet(f"{stream_name}-events", f"{source_id}-events")

    def push_event(self, text: str, timestamp: float) -> None:
        self.events.push_sample([text], timestamp)

    def push_decision(self, classes: list[str], probabilities: np.ndarray, timestamp: float,
                      label_index: int | None = None) -> None:  # fmt: skip
        """``label_index``: the verdict's code (class index, REST_INDEX, LEARNING_INDEX); None: the top class."""
        if self._decisions is None or self._classes != list(classes):
            # with a remote worker the classes are known only once its first answer arrives (or after a model swap)
            self._make_decisions_outlet(list(classes))
        code = np.argmax(probabilities) if label_index is None else label_index
        sample = np.append(np.asarray(probabilities, dtype=np.float32), np.float32(code))
        self._decisions.push_sample(sample.tolist(), timestamp)

    def _make_decisions_outlet(self, classes: list[str]) -> None:
        self._classes = classes
        self._decisions = _outlet(
            f"{self._prefix}-decisions", "Classification", [*classes, "label_index"], f"{self._source_id}-decisions",
            # so a reader of the XDF file learns what the negative label indices mean without this code
            codes={"rest": REST_INDEX, "learning_rest_level": LEARNING_INDEX},
        )

    def push_window(
        self, features: dict[str, np.ndarray], usable: np.ndarray, timestamp: float, emg_channels: np.ndarray
    ) -> None:
        values = [emg_mean(features[name], usable, emg_channels) for name in FATIGUE_CHANNELS]
        self.fatigue.push_sample(values, timestamp)
        self.quality.push_sample(usable.astype(np.float32).tolist(), timestamp)
