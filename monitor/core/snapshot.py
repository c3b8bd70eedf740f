"""``--snapshot``: a PNG of the whole dashboard, rendered by a short-lived process attached to the core.

The core never imports Qt: it publishes its state (the same shared memory an attached view reads, monitor/core)
and starts ``python -m monitor.core.snapshot``, which maps that memory read-only, builds the real window on a
``RemotePipeline``, waits until ``after_s`` seconds after the core asked (on the machine's monotonic clock, shared by
both processes, so Qt's start-up is not added to the wait when it is shorter), renders offscreen when there is no
display, writes the file and exits. A render that fails or hangs costs the core nothing but the snapshot.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
# the render process's own budget on top of the wait: Qt, pyqtgraph and the window start in ~2-8 s on the 2-core
# machine (8 s at load 17 for a view); past this the snapshot is given up, never the session
RENDER_TIMEOUT_S = 90.0
# the window draws the core's history once the view has copied it: at least this long after attaching
MIN_SETTLE_S = 0.3


def check_snapshot_target(path: str | os.PathLike[str]) -> Path:
    """The snapshot's file, or a one-line UserError for a name or folder it cannot be written to (before any
    process starts)."""
    target = Path(path)
    if target.suffix.lower() not in IMAGE_SUFFIXES:
        raise UserError(f"snapshot file {target} must end in .png (or .jpg, .bmp)")
    if not target.parent.is_dir():
        raise UserError(f"cannot write snapshot {target}: folder {target.parent} does not exist")
    return target


def render_command(shm_name: str, target: Path, render_at: float, size: tuple[int, int]) -> list[str]:
    return [sys.executable, "-m", "monitor.core.snapshot", shm_name, str(target), repr(render_at),
            str(size[0]), str(size[1])]  # fmt: skip


def take_snapshot(pipeline: Any, path: str | os.PathLike[str], after_s: float = 5.0,
                  size: tuple[int, int] = (1600, 1000), extra_status: Callable[[], dict[str, Any]] | None = None,
                  ) -> Path:  # fmt: skip
    """Renders the dashboard of the running ``pipeline`` after ``after_s`` seconds of live data into ``path``, in a
    process of its own reading the core's published state. ``extra_status`` adds to the published status what the
    core runs beside the pipeline (the motor-unit decomposition), so the snapshot draws it as an attached view would.
    UserError (one line) when it cannot be written."""
    from monitor.core.publisher import StatePublisher

    target = check_snapshot_target(path).absolute()
    render_at = time.monotonic() + max(0.0, after_s)
    publisher = StatePublisher(pipeline, extra_status=extra_status)
    publisher.start()
    try:
        command = render_command(publisher.name_in_shm, target, render_at, size)
        try:
            done = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  text=True, timeout=max(0.0, after_s) + RENDER_TIMEOUT_S)
        except subprocess.TimeoutExpired as error:
            raise UserError(f"snapshot {target} not rendered within {error.timeout:.0f} s") from None
    finally:
        publisher.stop()
    if done.returncode != 0:
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise UserError(reason.removeprefix("error: ") if done.returncode == UserError.exit_code
                        else f"snapshot {target} not rendered ({reason})")  # fmt: skip
    return target


def _render(shm_name: str, target: Path, render_at: float, size: tuple[int, int]) -> None:
    """The render process: attach read-only, wait until ``render_at``, draw everything once, save."""
    from monitor.core.shared_state import SharedStateReader
    from monitor.gui.app import save_snapshot
    from monitor.view_client import RemotePipeline

    remote = RemotePipeline(SharedStateReader(shm_name), None, kind="snapshot")
    remote.sync()
    remote.start()
    try:
        save_snapshot(remote, target, after_s=max(MIN_SETTLE_S, render_at - time.monotonic()), size=size)
    finally:
        remote.stop()


def main(argv: list[str]) -> int:
    if len(argv) != 5:
        print("error: usage: python -m monitor.core.snapshot SHM FILE RENDER_AT WIDTH HEIGHT", file=sys.stderr)
        return 2
    shm_name, target, render_at, width, height = argv
    try:
        _render(shm_name, Path(target), float(render_at), (int(width), int(height)))
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
