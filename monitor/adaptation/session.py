"""One patient's adaptation during a live session: marks -> windows -> background fine-tune -> hot swap.

The GUI panel and ``neurofusion adapt`` both drive this object: ``marks`` collects labelled spans, ``step()``
(called from a view timer or a script loop, never blocking) captures finished marks from the DSP buffer and
follows the fine-tuning process, and when that process reports a held-out gain the worker is asked to load the
adapted checkpoint (in a short-lived thread, because the request waits for the worker's answer). Without a gain,
or after a failure or a cancel, the running model is left exactly as it was and ``status`` says why.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dsp.ringbuffer import RingBuffer
from monitor.adaptation.job import (
    STATE_CANCELLED,
    STATE_DONE,
    STATE_FAILED,
    AdaptationJob,
    AdaptationSettings,
    write_job,
)
from monitor.adaptation.marks import MarkLog, MarkOutlet
from monitor.adaptation.spans import SpanStore, cut_marked_windows
from monitor.errors import UserError

log = logging.getLogger(__name__)

DEFAULT_PATIENTS_DIR = Path.home() / ".neurofusion" / "patients"
PATIENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MIN_WINDOWS_PER_CLASS = 8


def patient_folder(patients_dir: str | Path | None, patient_id: str) -> Path:
    if not PATIENT_ID.match(patient_id or ""):
        raise UserError(f"patient id {patient_id!r}: use 1-64 letters, digits, '.', '_' or '-'")
    return Path(patients_dir or DEFAULT_PATIENTS_DIR).expanduser() / patient_id


def patient_models(patients_dir: str | Path | None, patient_id: str) -> list[Path]:
    """A patient's adapted checkpoints, oldest first (load one in a later session, or `analyze --model`)."""
    folder = patient_folder(patients_dir, patient_id)
    return sorted(folder.glob("*.pt"), key=lambda path: path.stat().st_mtime) if folder.is_dir() else []


@dataclass
class ModelEntry:
    model_id: str
    checkpoint: Path | None  # None: the bundled default
    figures: dict[str, Any] = field(default_factory=dict)


class AdaptationSession:
    def __init__(
        self,
        filtered: RingBuffer,
        fs: float,
        card: Any,  # models.checkpoint.ModelCard of the running model
        base_checkpoint: str | Path | None,
        patient_id: str,
        patients_dir: str | Path | None = None,
        control: Any | None = None,  # monitor.inference.client.ModelControl (None: adapt and save, no swap)
        worker: Any | None = None,  # a WorkerHandle to tell which model a restart should serve
        channels: np.ndarray | None = None,  # the model's channels in the stream
        settings: AdaptationSettings | None = None,
        outlet: MarkOutlet | None = None,
        hop_ms: float = 50.0,
    ) -> None:
        self.folder = patient_folder(patients_dir, patient_id)
        self.patient_id = patient_id
        self.fs = float(fs)
        self.card = card
        self.control = control
        self.worker = worker
        self.settings = settings or AdaptationSettings()
        self.hop_samples = max(1, int(round(hop_ms * fs / 1000)))
        self.marks = MarkLog()
        self.store = SpanStore(filtered, channels)
        self.marks.subscribe(self.store.on_mark)
        if outlet is not None:
            self.marks.subscribe(outlet.push)
        base = None if base_checkpoint is None else Path(base_checkpoint)
        self.models: list[ModelEntry] = [ModelEntry(str(card.model_id), base)]
        self.active = self.models[0]
        self.job: AdaptationJob | None = None
        self.status = "mark a few seconds of each class, then adapt"
        self.last_figures: dict[str, Any] = {}
        self._cancelled = False
        self._swap: threading.Thread | None = None
        self._lock = threading.Lock()

    # ------------------------------------------------------------ starting

    @property
    def busy(self) -> bool:
        return (self.job is not None and not self.job.finished) or (self._swap is not None and self._swap.is_alive())

    def start(self) -> AdaptationJob:
        """Cut the marked windows and start fine-tuning the running model in a background process."""
        if self.busy:
            raise UserError("an adaptation is already running")
        self.store.capture()
        spans = self.store.spans()
        if not spans:
            raise UserError("no marked spans yet: mark a few seconds of each class first")
        window_samples = int(self.card.window_samples)
        if abs(self.fs - float(self.card.fs)) > 1e-6 * self.fs:
            raise UserError(f"the stream runs at {self.fs:g} Hz, the model at {self.card.fs:g} Hz: adapting needs "
                            "the model's own rate")
        try:
            windows = cut_marked_windows(spans, list(self.card.classes), window_samples, self.hop_samples)
        except ValueError as error:
            raise UserError(str(error)) from None
        counts = windows.counts()
        # every class, because fine-tuning on some would teach the model to forget the others, and the held-out
        # figure (made of the marked classes only) could not show it
        short = [name for name, count in counts.items()
                 if count["train"] < MIN_WINDOWS_PER_CLASS or count["held_out"] < MIN_WINDOWS_PER_CLASS // 2]
        if short:
            raise UserError(f"too little marked signal for {', '.join(short)}: mark a few seconds of every class "
                            f"({', '.join(counts)})")
        stamp = time.strftime("%Y%m%dT%H%M%S")
        base_id = str(self.models[0].model_id)
        model_id = f"{base_id}+{self.patient_id}-{stamp}"[-200:]
        output = self.folder / f"{self.patient_id}-{stamp}.pt"
        description = {"patient": self.patient_id, "marks": [mark.to_dict() for mark in self.marks.marks()],
                       "windows": counts, "created": stamp}
        job_folder = Path(tempfile.mkdtemp(prefix="neurofusion-adapt-"))
        base_checkpoint = self._checkpoint_of(self.active)
        write_job(job_folder, windows, base_checkpoint, output, model_id, self.settings, description)
        self._cancelled = False
        self.job = AdaptationJob(job_folder).start()
        self.status = f"adapting {self.active.model_id} on {len(windows.labels)} marked windows"
        return self.job

    @staticmethod
    def _checkpoint_of(entry: ModelEntry) -> Path:
        if entry.checkpoint is not None:
            return entry.checkpoint
        from models.checkpoint import BUNDLED_CHECKPOINT

        return BUNDLED_CHECKPOINT

    # ------------------------------------------------------------ following

    def step(self) -> None:
        """Capture finished marks, follow the job, start the swap when it is done. Never blocks."""
        self.store.capture()
        job = self.job
        if job is None or self._cancelled:
            return
        was_running = not job.finished
        job.poll()
        if not was_running or not job.finished:
            if not job.finished and job.epochs:
                self.status = f"adapting: epoch {job.epoch} of {job.epochs}"
            return
        self.last_figures = dict(job.result)
        shutil.rmtree(job.folder, ignore_errors=True)  # the copied windows are not kept past their use
        if job.state == STATE_FAILED:
            self.status = f"adaptation failed, the running model is unchanged: {job.error}"
        elif job.state == STATE_CANCELLED:
            self.status = "adaptation cancelled, the running model is unchanged"
        elif job.state == STATE_DONE and not job.result.get("improved"):
            self.status = (f"no gain on the held-out marks (accuracy {job.result['before']:.0%} before, "
                           f"{job.result['after']:.0%} after): the running model is unchanged")
        elif job.state == STATE_DONE:
            entry = ModelEntry(job.result["model_id"], Path(job.result["checkpoint"]), dict(job.result))
            self.status = (f"held-out accuracy {job.result['before']:.0%} -> {job.result['after']:.0%}; "
                           f"saved {entry.checkpoint.name}")
            if self.control is not None:
                self._run_swap(lambda: self.control.load_model(entry.checkpoint), entry)
            else:
                self.models.append(entry)

    def wait(self, timeout_s: float) -> str:
        """Block until the job and any swap are over (scripts, tests); -> the status line."""
        give_up = time.monotonic() + timeout_s
        while time.monotonic() < give_up:
            self.step()
            if not self.busy:
                break
            time.sleep(0.05)
        if self._swap is not None:
            self._swap.join(max(0.0, give_up - time.monotonic()))
        return self.status

    def cancel(self) -> None:
        """Stop the fine-tuning; nothing is swapped even if it had just finished."""
        self._cancelled = True
        if self.job is not None and not self.job.finished:
            self.job.cancel()
            shutil.rmtree(self.job.folder, ignore_errors=True)
        self.status = "adaptation cancelled, the running model is unchanged"

    # ------------------------------------------------------------ swapping

    def load_saved(self, checkpoint: str | Path) -> None:
        """Run a model adapted in an earlier session (see ``patient_models``): the worker checks and loads it."""
        if self.control is None:
            raise UserError("no inference worker to load the model into")
        from models.checkpoint import read_card  # the .card.json: the worker loads the weights, not this process

        path = Path(checkpoint)
        figures: dict[str, Any] = {}
        try:
            card = read_card(path)
            held_out = card.metrics.get("adaptation_held_out", {})
            if held_out:
                figures = {"before": held_out["accuracy_before"], "after": held_out["accuracy_after"]}
            model_id = str(card.model_id)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            model_id = path.stem  # the worker will say what is wrong with it
        self._run_swap(lambda: self.control.load_model(path), ModelEntry(model_id, path, figures))

    def switch_to(self, model_id: str) -> None:
        """Switch back (or forth) to a model this session has run; the worker still holds it."""
        entry = next((item for item in self.models if item.model_id == model_id), None)
        if entry is None:
            raise UserError(f"no model {model_id!r} in this session")
        if self.control is None:
            raise UserError("no inference worker to switch")
        self._run_swap(lambda: self.control.use_model(model_id), entry)

    def _run_swap(self, request: Any, entry: ModelEntry) -> None:
        def swap() -> None:
            try:
                loaded = request()
            except UserError as error:
                self.status = f"the worker kept its model: {error}"
                return
            entry.model_id = loaded.model_id  # the worker's word: the card's id
            with self._lock:
                if entry not in self.models:
                    self.models.append(entry)
                self.active = entry
            if self.worker is not None:
                self.worker.adopt_model(self._checkpoint_of(entry))
            self.status = f"now running {loaded.model_id}" + (
                f" (held-out {entry.figures['before']:.0%} -> {entry.figures['after']:.0%})"
                if "after" in entry.figures else "")

        self._swap = threading.Thread(target=swap, name="model-swap", daemon=True)
        self._swap.start()
