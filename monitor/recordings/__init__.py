"""Recorded sessions: one reader interface over XDF, EDF/BDF, WFDB, OTB .mat, CSV/TSV and NPZ; replay source."""

from monitor.recordings.base import Recording, open_dataset, open_recording

__all__ = ["Recording", "open_dataset", "open_recording"]
