"""Fine-tuning in a background process (multiprocessing spawn), never in a thread of the monitor.

The monitor writes the marked windows to a job folder (``windows.npz``, ``job.json``); the child process reads
them (``allow_pickle=False``), measures the base model on the held-out windows, fine-tunes a copy on the others,
measures it again and saves it with its model card when the held-out accuracy improved. Progress, the result and
failures come back as plain dicts over a multiprocessing queue; ``cancel()`` sets an event the child checks
after every epoch, and terminates it if it does not stop in time. The running model is never touched here.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import queue
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

STATE_RUNNING = "running"
STATE_DONE = "done"
STATE_FAILED = "failed"
STATE_CANCELLED = "cancelled"


@dataclass(frozen=True)
class AdaptationSettings:
    epochs: int = 12
    learning_rate: float = 1e-3
    batch_size: int = 32
    min_gain: float = 0.0  # the held-out accuracy must rise by more than this for the model to be kept
    threads: int = 1
    seed: int = 0


class AdaptationCancelled(Exception):
    pass


def write_job(folder: Path, windows: Any, base_checkpoint: Path, output: Path, model_id: str,
              settings: AdaptationSettings, description: dict[str, Any]) -> Path:
    """Lay out a job folder from MarkedWindows; -> the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "windows.npz", windows=windows.windows, labels=windows.labels, ends=windows.ends,
             held_out=windows.held_out)
    job = {"base_checkpoint": str(base_checkpoint), "output": str(output), "model_id": model_id,
           "classes": list(windows.classes), "settings": asdict(settings), "description": description}
    (folder / "job.json").write_text(json.dumps(job, indent=1))
    return folder


def run_job(folder: str, events: Any, cancel: Any) -> None:
    """The child process's entry point: every outcome, an exception included, ends as one event on ``events``."""
    try:
        events.put(_fine_tune(Path(folder), events, cancel))
    except AdaptationCancelled:
        events.put({"kind": STATE_CANCELLED})
    except Exception as error:  # reported to the monitor, which leaves the running model alone
        events.put({"kind": STATE_FAILED, "error": f"{type(error).__name__}: {error}"[:500]})


def _fine_tune(folder: Path, events: Any, cancel: Any) -> dict[str, Any]:
    import copy

    import torch

    from models.calibration import accuracy, fine_tune
    from models.checkpoint import load_checkpoint, save_checkpoint
    from models.datasets import WindowSet
    from models.training import TrainingConfig

    job = json.loads((folder / "job.json").read_text())
    settings = AdaptationSettings(**job["settings"])
    torch.set_num_threads(settings.threads)
    stored = np.load(folder / "windows.npz", allow_pickle=False)
    base, card = load_checkpoint(job["base_checkpoint"])
    if list(card.classes) != list(job["classes"]):
        raise ValueError(f"the base model's classes {card.classes} are not the marks' {job['classes']}")
    held_out = stored["held_out"]

    def part(selector: np.ndarray) -> WindowSet:
        n = int(selector.sum())
        return WindowSet(stored["windows"][selector], stored["labels"][selector], np.full(n, "session"),
                         float(card.fs), card.layout, list(card.classes), times=stored["ends"][selector])

    train, test = part(~held_out), part(held_out)
    if len(train) < 2 or len(test) < 1:
        raise ValueError(f"too few windows to adapt ({len(train)} to train on, {len(test)} held out)")
    started = time.perf_counter()
    before = accuracy(base, test, card.feature_names)
    events.put({"kind": "progress", "epoch": 0, "epochs": settings.epochs, "before": before})

    config = TrainingConfig(epochs=settings.epochs, learning_rate=settings.learning_rate,
                            batch_size=settings.batch_size, channel_drop=0.1, seed=settings.seed,
                            threads=settings.threads)

    def progress(epoch: int, history: Any) -> None:
        events.put({"kind": "progress", "epoch": epoch + 1, "epochs": settings.epochs,
                    "loss": float(history.train_loss[-1])})
        if cancel.is_set():
            raise AdaptationCancelled

    if cancel.is_set():
        raise AdaptationCancelled
    tuned = fine_tune(base, train, card.feature_names, config, renormalise=True, progress=progress)
    after = accuracy(tuned, test, card.feature_names)
    figures = {"before": before, "after": after, "train_windows": len(train), "held_out_windows": len(test),
               "seconds": round(time.perf_counter() - started, 1)}
    improved = after > before + settings.min_gain
    result = {"kind": STATE_DONE, "improved": improved, **figures, "model_id": job["model_id"], "checkpoint": None}
    if improved:
        adapted = copy.deepcopy(card)
        adapted.model_id = job["model_id"]
        adapted.onnx_sha256 = None  # no export for this one yet: the worker runs it with torch
        adapted.training = {"adapted_from": job["base_checkpoint"], "base_model_id": card.model_id,
                            "settings": asdict(settings), **job["description"]}
        adapted.metrics = {**card.metrics, "adaptation_held_out": {"accuracy_before": before,
                                                                    "accuracy_after": after,
                                                                    "n_windows": len(test)}}
        result["checkpoint"] = str(save_checkpoint(job["output"], tuned, adapted))
    return result


class AdaptationJob:
    """The monitor's handle on one fine-tuning process. ``poll()`` never blocks."""

    def __init__(self, folder: Path) -> None:
        context = multiprocessing.get_context("spawn")  # never fork a process that runs Qt, LSL and ZeroMQ threads
        self.folder = folder
        self._events = context.Queue()
        self._cancel = context.Event()
        self._process = context.Process(target=run_job, args=(str(folder), self._events, self._cancel),
                                        name="neurofusion-adapt", daemon=True)
        self.state = STATE_RUNNING
        self.epoch, self.epochs = 0, 0
        self.result: dict[str, Any] = {}
        self.error = ""

    def start(self) -> AdaptationJob:
        self._process.start()
        return self

    @property
    def finished(self) -> bool:
        return self.state != STATE_RUNNING

    def poll(self) -> list[dict[str, Any]]:
        """Events since the last call; updates ``state``, ``epoch``, ``result`` and ``error``."""
        events = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            events.append(event)
            kind = event.get("kind")
            if kind == "progress":
                self.epoch, self.epochs = event["epoch"], event["epochs"]
                if "before" in event:
                    self.result["before"] = event["before"]
            elif self.state == STATE_RUNNING:
                self.state = kind
                self.result.update(event)
                self.error = event.get("error", "")
        if self.state == STATE_RUNNING and not self._process.is_alive() and self._events.empty():
            self.state = STATE_FAILED  # killed (memory, a signal) before it could say so
            self.error = f"the adaptation process exited with status {self._process.exitcode}"
            events.append({"kind": STATE_FAILED, "error": self.error})
        return events

    def wait(self, timeout_s: float) -> str:
        """Block until finished (scripts and tests); -> the final state."""
        give_up = time.monotonic() + timeout_s
        while not self.finished and time.monotonic() < give_up:
            self.poll()
            time.sleep(0.05)
        return self.state

    def cancel(self, timeout_s: float = 10.0) -> None:
        """Ask the process to stop after its current epoch; terminate it if it does not within ``timeout_s``."""
        if self.finished:
            return
        self._cancel.set()
        self._process.join(timeout_s)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join(2.0)
        self.poll()
        if self.state == STATE_RUNNING or self.state == STATE_FAILED:
            self.state = STATE_CANCELLED
