"""Feeds a `Recording` to the amplifier (simulators/amplifier.py), which paces it onto LSL like a live amplifier.

Pacing lives in the amplifier alone; this adapter only hands out samples in order (wrapping around when looping)
and says which events fall on which sample: the file's markers (at the sample nearest their timestamp) and every
change of the per-sample label, published as ``{"label": <int>}`` so a consumer can score decisions against it.

With ``auxiliary=True`` the recording's auxiliary signals (an OTB file's %MVC force column) travel as extra channels
after the EMG, typed ``Force`` (or ``AUX``) so the monitor keeps them off the EMG paths, and labelled so the
motor-unit panel finds its force channel (``force (%MVC)``): recruitment thresholds against the file's force.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from monitor.recordings.base import Recording


def label_change_events(labels: np.ndarray, names: list[str] | None = None) -> list[tuple[int, str]]:
    """(sample index, '{"label": k}') at the first sample and wherever the label changes; with ``names``,
    '{"label": k, "name": names[k]}'."""
    changes = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate([[0], changes]).astype(int)
    events = []
    for index in starts:
        value = int(labels[index])
        event: dict[str, object] = {"label": value}
        if names is not None and 0 <= value < len(names):
            event["name"] = names[value]
        events.append((int(index), json.dumps(event)))
    return events


def auxiliary_channel(key: str) -> tuple[str, str]:
    """(label, LSL channel type) of an auxiliary signal: force or %MVC columns become ``Force`` channels whose label
    says force (what ``monitor.decomposition_service.force_channel`` looks for), anything else ``AUX``."""
    if "force" in key.lower() or "mvc" in key.lower():
        return ("force (%MVC)" if "mvc" in key.lower() else "force"), "Force"
    return key, "AUX"


def auxiliary_unit(key: str) -> str:
    """The LSL unit of an auxiliary signal: ``%MVC`` for a %MVC column, else unknown (a recording states no other
    auxiliary unit), never the EMG's microvolts."""
    return "%MVC" if "mvc" in key.lower() else "unknown"


class RecordingSource:
    """A `SampleSource` over a recording: ``read(n)`` continues where the last read stopped; with ``auxiliary``, the
    recording's auxiliary signals follow the EMG as typed channels."""

    def __init__(self, recording: Recording, loop: bool = False, auxiliary: bool = False) -> None:
        self.recording = recording
        self.loop = loop
        self.fs = float(recording.fs)
        self.channel_labels = list(recording.channel_labels)
        self.channel_types = ["EMG"] * recording.n_channels
        self.channel_units = ["microvolts"] * recording.n_channels  # recordings are read into µV
        self.layout: dict[str, Any] | None = recording.layout
        self.position = 0  # samples handed out so far, counting every pass of a loop
        self._data = recording.data
        if auxiliary and recording.auxiliary:
            keys = sorted(recording.auxiliary)
            self._data = np.column_stack([recording.data, *(recording.auxiliary[key] for key in keys)])
            for key in keys:
                label, kind = auxiliary_channel(key)
                self.channel_labels.append(label)
                self.channel_types.append(kind)
                self.channel_units.append(auxiliary_unit(key))
        self.n_channels = self._data.shape[1]

    def read(self, n_samples: int) -> np.ndarray:
        total = self.recording.n_samples
        if self.loop:
            indices = np.arange(self.position, self.position + n_samples) % total
            chunk = self._data[indices]
        else:
            chunk = self._data[self.position : self.position + n_samples]
        self.position += chunk.shape[0]
        return chunk


class MarkedRecordingSource(RecordingSource):
    """A recording source that also publishes its markers and label changes at their samples."""

    def __init__(self, recording: Recording, loop: bool = False, auxiliary: bool = False) -> None:
        super().__init__(recording, loop, auxiliary)
        events = [(recording.sample_index(t), text) for t, text in recording.markers]
        if recording.labels is not None:
            events += label_change_events(recording.labels, recording.label_names)
        self._events = sorted(events, key=lambda event: event[0])
        self._next_event = 0  # counts over every pass, so event k of pass p is number p * len(events) + k

    def markers_until(self, sample_index: int) -> list[tuple[int, str]]:
        """Events on samples before ``sample_index`` (the amplifier's running count) not handed out yet."""
        due: list[tuple[int, str]] = []
        n_events = len(self._events)
        while n_events:
            loop_pass, k = divmod(self._next_event, n_events)
            if loop_pass > 0 and not self.loop:
                break
            at = loop_pass * self.recording.n_samples + self._events[k][0]
            if at >= sample_index:
                break
            due.append((at, self._events[k][1]))
            self._next_event += 1
        return due


def replay_source(recording: Recording, loop: bool = False, auxiliary: bool = False) -> RecordingSource:
    """The right source for ``recording``: with a marker stream only when it has markers or labels; ``auxiliary``:
    its auxiliary signals (force) as extra channels after the EMG."""
    if recording.markers or recording.labels is not None:
        return MarkedRecordingSource(recording, loop, auxiliary)
    return RecordingSource(recording, loop, auxiliary)
