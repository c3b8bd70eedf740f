"""Whether the monitor process of `neurofusion demo` imports torch, and its memory at close. The demo runs in this
fresh process (a test process or a shell has usually imported torch already), its simulated amplifier and
inference worker in their own processes as always:

    .venv/bin/python -m tests.monitor_footprint --view window --duration 10     # the Qt window, offscreen
    .venv/bin/python -m tests.monitor_footprint --view headless --duration 10   # the terminal dashboard

``--adapt`` then fine-tunes the bundled model for one epoch on a few synthetic windows, as the window's adaptation
panel does (a job in its own process), to show that this does not bring torch into the monitor either.

Prints one JSON line on stdout (the dashboard is sent to stderr): RSS at close and its peak, whether torch,
torch_geometric and onnxruntime ended up in ``sys.modules``, the model id of the card the session read, and the
adaptation job's outcome.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

WATCHED_MODULES = ("torch", "torch_geometric", "onnxruntime")


def rss_mb() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def run_demo(view: str, duration_s: float) -> dict[str, Any]:
    """`neurofusion demo` in this process; -> the id of the card its adaptation panel was given (window only)."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    import monitor.session
    from monitor.cli import main

    adaptation_cards: list[str] = []
    if view == "window":
        # offscreen Qt counts as "no display" (the headless dashboard then); the window is what is measured here
        monitor.session.has_display = lambda: True
        start_adaptation = monitor.session.start_adaptation

        def recording_start_adaptation(*arguments: Any) -> Any:
            adaptation = start_adaptation(*arguments)
            adaptation_cards.append(str(adaptation.card.model_id) if adaptation is not None else "")
            return adaptation

        monitor.session.start_adaptation = recording_start_adaptation
    arguments = ["demo", "--duration", str(duration_s)] + (["--headless"] if view == "headless" else [])
    with contextlib.redirect_stdout(sys.stderr):
        code = main(arguments)
    return {"exit_code": code, "adaptation_card": adaptation_cards[0] if adaptation_cards else None}


def run_adaptation_job(timeout_s: float = 120.0) -> dict[str, Any]:
    """One epoch of fine-tuning the bundled model on random windows of its own shape, through the job the window's
    adaptation panel starts: -> its final state and error."""
    import numpy as np

    from models.checkpoint import BUNDLED_CHECKPOINT, read_card
    from monitor.adaptation.job import AdaptationJob, AdaptationSettings, write_job
    from monitor.adaptation.spans import MarkedWindows

    card = read_card()
    per_class, n_classes = 6, len(card.classes)
    n = per_class * n_classes
    generator = np.random.default_rng(0)
    windows = MarkedWindows(
        windows=generator.normal(0.0, 50.0, (n, card.n_channels, card.window_samples)).astype(np.float32),
        labels=np.repeat(np.arange(n_classes, dtype=np.int64), per_class), ends=np.arange(n, dtype=np.float64),
        held_out=np.tile(np.arange(per_class) < 2, n_classes), classes=list(card.classes),
    )
    with tempfile.TemporaryDirectory(prefix="neurofusion-footprint-") as folder:
        job_folder = write_job(Path(folder) / "job", windows, BUNDLED_CHECKPOINT, Path(folder) / "adapted.pt",
                               "footprint", AdaptationSettings(epochs=1, batch_size=8), {})
        job = AdaptationJob(job_folder).start()
        state = job.wait(timeout_s)
        job.cancel()  # a no-op unless the wait ran out
    return {"adaptation_job": state, "adaptation_error": job.error}


def measure(view: str, duration_s: float, adapt: bool) -> dict[str, Any]:
    result = run_demo(view, duration_s)
    result["rss_at_close_mb"] = round(rss_mb(), 1)
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    if adapt:
        result.update(run_adaptation_job())
    result.update({f"{name}_imported": name in sys.modules for name in WATCHED_MODULES})
    return {"view": view, **result}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--view", choices=("window", "headless"), default="window")
    parser.add_argument("--duration", type=float, default=10.0, metavar="S")
    parser.add_argument("--adapt", action="store_true", help="then run a one-epoch adaptation job")
    options = parser.parse_args()
    print(json.dumps(measure(options.view, options.duration, options.adapt)))
