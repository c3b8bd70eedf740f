"""Workers the monitor starts itself: spawn `neurofusion worker` as a subprocess and restart it when it dies.

The worker prints one line, ``READY <endpoint> <model_id>``, once its model is loaded and its socket bound; the
handle waits for it, so a caller knows the real endpoint (``tcp://127.0.0.1:*`` picks a free port) and that
requests sent now will be answered. A restart binds the same endpoint again, so connected clients resume by
themselves (ZeroMQ reconnects).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from monitor.errors import UserError

log = logging.getLogger(__name__)

READY_PREFIX = "READY "
STANDBY_PREFIX = "STANDBY "
MAX_BACKOFF_S = 30.0
#: set in a spawned worker's environment: the pid of the monitor that started it (see exit_with_parent)
PARENT_PID_VARIABLE = "NEUROFUSION_PARENT_PID"
REPO_ROOT = Path(__file__).resolve().parents[2]


class WorkerHandle:
    """One worker subprocess, restartable on the endpoint it first bound.

    With ``standby`` a second process is kept with its model loaded, waiting on stdin for the word to bind, so a
    restart costs milliseconds instead of a Python + torch start (seconds on a busy two-core machine).
    """

    def __init__(self, endpoint: str, model_path: str | os.PathLike[str] | None = None, backend: str = "auto",
                 extra_args: tuple[str, ...] = (), ready_timeout_s: float = 120.0, standby: bool = False) -> None:
        self.requested_endpoint = endpoint
        self.endpoint = endpoint  # the resolved one once started
        self.model_path = None if model_path is None else str(model_path)
        self.backend = backend
        self.extra_args = tuple(extra_args)
        self.ready_timeout_s = ready_timeout_s
        self.standby = standby
        self.model_id: str | None = None
        self.restarts = 0
        self.process: subprocess.Popen[str] | None = None
        self._spare: subprocess.Popen[str] | None = None
        self._spare_loaded = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        #: who hears of this worker's deaths and restarts: (text, LSL time) -> None (the session's events stream)
        self._event_listeners: list[Callable[[str, float], None]] = []
        self._unheard_events: list[tuple[str, float]] = []  # before any listener: kept for the first one

    def add_event_listener(self, listener: Callable[[str, float], None]) -> None:
        """``listener(text, lsl_time)`` for each death and restart from now on, and those it missed before."""
        with self._lock:
            self._event_listeners.append(listener)
            missed, self._unheard_events = self._unheard_events, []
        for text, timestamp in missed:
            listener(text, timestamp)

    def remove_event_listener(self, listener: Callable[[str, float], None]) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._event_listeners.remove(listener)

    def announce(self, text: str) -> None:
        """A session event about this worker, stamped now on the LSL clock (the events stream's clock)."""
        try:
            from pylsl import local_clock

            timestamp = local_clock()
        except ImportError:  # a worker handle outside a monitor session
            timestamp = time.monotonic()
        with self._lock:
            listeners = list(self._event_listeners)
            if not listeners:
                self._unheard_events = [*self._unheard_events, (text, timestamp)][-20:]
        if not listeners:  # a listener (the session's event recorder) logs it itself
            log.warning("%s", text)
        for listener in listeners:
            try:
                listener(text, timestamp)
            except Exception:  # a listener's failure must not stop the supervision of the worker
                log.exception("worker event listener failed")

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def spare_ready(self) -> bool:
        return self._spare is not None and self._spare.poll() is None and self._spare_loaded.is_set()

    def command(self, standby: bool = False) -> list[str]:
        command = [sys.executable, "-m", "monitor.cli", "worker", "--bind", self.endpoint, "--backend", self.backend]
        if self.model_path:
            command += ["--model", self.model_path]
        return command + list(self.extra_args) + (["--standby"] if standby else [])

    def _launch(self, standby: bool) -> subprocess.Popen[str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
        env.setdefault("PYTHONUNBUFFERED", "1")
        env[PARENT_PID_VARIABLE] = str(os.getpid())  # the worker ends itself if this process dies without stopping it
        return subprocess.Popen(
            self.command(standby), stdout=subprocess.PIPE, stderr=None, text=True, env=env, cwd=str(REPO_ROOT),
            stdin=subprocess.PIPE if standby else subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the monitor's terminal is the monitor's to handle
        )

    def start(self) -> None:
        """Start (or promote the standby) and wait until it says READY (UserError if it exits or times out)."""
        with self._lock:
            self._closed = False
            process = self._promote_spare()
            if process is None:
                process = self._launch(standby=False)
            self.process = process
            line = _read_line(process, READY_PREFIX, self.ready_timeout_s)
            _, endpoint, model_id = line.split(maxsplit=2)
            self.endpoint, self.model_id = endpoint, model_id.strip()
            # keep reading stdout so the worker can never block on a full pipe
            threading.Thread(target=_drain, args=(process.stdout,), daemon=True).start()
        if self.standby and not self._closed:
            threading.Thread(target=self._prepare_spare, name="worker-standby", daemon=True).start()

    def _promote_spare(self) -> subprocess.Popen[str] | None:
        spare, self._spare = self._spare, None
        if spare is None or spare.poll() is not None:
            return None
        if not self._spare_loaded.wait(self.ready_timeout_s):  # still loading: still sooner than a cold start
            _terminate(spare)
            return None
        try:
            spare.stdin.write("BIND\n")
            spare.stdin.flush()
        except OSError:
            return None
        return spare

    def _prepare_spare(self) -> None:
        with self._lock:
            if self._closed or self._spare is not None:
                return
            self._spare_loaded.clear()
            spare = self._spare = self._launch(standby=True)
        try:
            _read_line(spare, STANDBY_PREFIX, self.ready_timeout_s)
            self._spare_loaded.set()
        except UserError as error:
            if not self._closed:  # when closing, we killed it ourselves
                log.warning("standby worker failed: %s", error)

    def adopt_model(self, model_path: str | os.PathLike[str] | None) -> None:
        """After a hot swap (``load_model``/``use_model``): a restart serves this model, not the one started with.

        A standby spare still holding the old model is replaced by one loading this one.
        """
        with self._lock:
            self.model_path = None if model_path is None else str(model_path)
            spare, self._spare = self._spare, None
        _terminate(spare)
        if self.standby and not self._closed:
            threading.Thread(target=self._prepare_spare, name="worker-standby", daemon=True).start()

    def restart(self) -> None:
        _terminate(self.process)
        self.restarts += 1
        self.start()

    def stop(self, timeout_s: float = 3.0) -> None:
        """Stop the worker and its standby."""
        with self._lock:
            self._closed = True
            spare, self._spare = self._spare, None
        for process in (self.process, spare):
            _terminate(process, timeout_s)


def exit_with_parent(stop: threading.Event, check_s: float = 0.5) -> None:
    """In a worker a monitor spawned: set ``stop`` once that monitor is gone (killed, or ended by a library's
    abort() before its cleanup ran), so no worker outlives the monitor that started it. Linux re-parents an orphan,
    so the parent pid changing is the sign. A worker started by hand (no variable) is left alone."""
    parent = os.environ.get(PARENT_PID_VARIABLE)
    if not parent or not parent.isdigit():
        return

    def watch() -> None:
        while not stop.wait(check_s):
            if os.getppid() != int(parent):
                log.warning("the monitor that started this worker (pid %s) is gone; stopping", parent)
                # stdout was a pipe to that monitor: its last lines now go nowhere instead of failing
                with contextlib.suppress(OSError, ValueError):
                    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
                stop.set()
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _terminate(process: subprocess.Popen[str] | None, timeout_s: float = 3.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _read_line(process: subprocess.Popen[str], prefix: str, timeout_s: float) -> str:
    """The first stdout line starting with ``prefix``; UserError if the process exits or stays silent."""
    found: list[str] = []

    def read() -> None:
        for line in process.stdout:
            if line.startswith(prefix):
                found.append(line)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    if not found:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(1.0)  # output ended: the process is exiting, let it finish so we report it right
        exited = process.poll()
        if exited is None:
            process.kill()
            process.wait()
            raise UserError(f"inference worker did not become ready within {timeout_s:.0f} s")
        raise UserError(f"inference worker exited with status {exited} before it was ready (see its message above)")
    return found[0]


def _drain(stream: IO[str]) -> None:
    try:
        for _ in stream:
            pass
    except (OSError, ValueError):
        pass


def spawn_worker(model_path: str | os.PathLike[str] | None = None, endpoint: str = "tcp://127.0.0.1:*",
                 backend: str = "auto", extra_args: tuple[str, ...] = (), standby: bool = True) -> WorkerHandle:
    """Start a worker subprocess and return once it answers; ``handle.endpoint`` is where to connect.

    ``standby`` keeps a loaded spare process for fast restarts (it costs that process's memory).
    """
    handle = WorkerHandle(endpoint, model_path, backend, extra_args, standby=standby)
    handle.start()
    return handle


class WorkerSupervisor:
    """Restarts a spawned worker that died, or that a client has seen unresponsive for ``unresponsive_s``.

    It checks the process every ``check_s``, so a crash is noticed at once; the client's heartbeat only matters
    for a worker that is alive but no longer answering.
    """

    def __init__(self, handle: WorkerHandle, client: object | None = None, check_s: float = 0.1,
                 unresponsive_s: float = 5.0) -> None:
        self.handle = handle
        self.client = client  # anything with a ``state`` attribute (InferenceClient)
        self.check_s = check_s
        self.unresponsive_s = unresponsive_s
        self.restarts = 0
        self.last_error = ""
        self._announced_down = False  # a failing restart loop says "died" once, and "restarted" once it is back
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="worker-supervisor", daemon=True)

    def start(self) -> WorkerSupervisor:
        self._thread.start()
        return self

    def stop(self, stop_worker: bool = True) -> None:
        self._stop.set()
        self._thread.join(timeout=self.handle.ready_timeout_s + 5)
        if stop_worker:
            self.handle.stop()

    def _run(self) -> None:
        offline_since: float | None = None
        last_restart, backoff_s = float("-inf"), 0.0
        down_since = time.monotonic()
        while not self._stop.wait(self.check_s):
            hung = False
            if self.client is not None and self.handle.alive:
                if getattr(self.client, "state", "online") == "offline":
                    offline_since = offline_since or time.monotonic()
                    hung = time.monotonic() - offline_since > self.unresponsive_s
                else:
                    offline_since = None
            if self.handle.alive and not hung:
                continue
            # a worker that keeps dying right after its start (a poisoned model, no memory) is retried ever more
            # slowly, so a crash loop does not eat the CPU the monitor needs for acquisition
            backoff_s = min(MAX_BACKOFF_S, max(1.0, 2 * backoff_s)) if time.monotonic() - last_restart < 10 else 0.0
            # published on the session's events stream beside signal lost/restored: a recording shows why the
            # decisions stopped (it had no trace of a worker that died and came back)
            process = self.handle.process
            what = (f"unresponsive for {self.unresponsive_s:g} s" if hung
                    else f"died (exit status {process.poll() if process is not None else 'unknown'})")  # fmt: skip
            if not self._announced_down:
                self.handle.announce(f"inference worker {what}; restarting it"
                                     f"{f' in {backoff_s:.0f} s' if backoff_s else ''}")  # fmt: skip
                self._announced_down, down_since = True, time.monotonic()
            if self._stop.wait(backoff_s):
                return
            last_restart = time.monotonic()
            try:
                self.handle.restart()
                self.restarts += 1
                offline_since = None
                self.handle.announce(f"inference worker restarted ({time.monotonic() - down_since:.1f} s after it "
                                     f"went down, restart {self.restarts})")  # fmt: skip
                self._announced_down = False
            except UserError as error:  # keep trying: the monitor goes on filtering and shows "inference offline"
                self.last_error = str(error)
                log.error("worker restart failed: %s", error)
                self._stop.wait(1.0)
