"""The core's control channel and how views find a running core.

A running core has a folder ``<runtime>/core-<pid>-<hex>`` (mode 0700; ``<runtime>`` is ``$XDG_RUNTIME_DIR/
neurofusion`` or ``/tmp/neurofusion-<uid>``, also 0700 and owned by this user) holding ``core.json`` (its pid, the
shared-memory name, the control endpoint, the stream) and the ZeroMQ REP socket ``control`` (ipc://). Requests and
replies are single JSON objects. Every request carries the user's control token (``~/.config/neurofusion/
control.token``, the one the worker's model control uses): the folder's mode keeps other users out, the token keeps
out any process that has not read this user's private file.

Requests: ``hello`` / ``heartbeat`` / ``bye`` (a view says it is there; the core's status line reports views that go
silent or die), ``marker`` (text, LSL time), ``record`` (on: bool), ``settings`` (changes: the engine's filter and
window settings), ``status``, ``decomposition`` (action: calibrate / save / load / describe of the core's motor units,
``monitor.decomposition_service.CoreDecomposition.handle``). The server answers from its own thread and never blocks
the core's pipeline.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import os
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq

from monitor.errors import UserError
from monitor.inference.security import control_token

log = logging.getLogger(__name__)

SILENT_AFTER_S = 3.0  # a view that sent nothing for this long is reported as not answering
HEARTBEAT_S = 0.5


#: what a core folder adds to the root in its control socket's path: "/core-<pid>-<6 hex>/control"
CORE_SOCKET_SUFFIX_CHARACTERS = len("/core-4194304-abcdef/control")
#: the longest path a Unix socket can bind (sizeof(sockaddr_un.sun_path) - 1 on Linux; zmq.IPC_PATH_MAX_LEN)
UNIX_SOCKET_PATH_MAX = 107


def runtime_root() -> Path:
    """This user's folder for running cores (made 0700; refused when another user owns it or can enter it).

    ``$XDG_RUNTIME_DIR/neurofusion``, or ``/tmp/neurofusion-<uid>`` where that is unset or so deep that a core's
    control socket would not fit a Unix socket address (every process of the user picks the same folder)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    root = Path(base) / "neurofusion" if base else Path(f"/tmp/neurofusion-{os.getuid()}")
    if len(str(root)) + CORE_SOCKET_SUFFIX_CHARACTERS > UNIX_SOCKET_PATH_MAX:
        root = Path(f"/tmp/neurofusion-{os.getuid()}")
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = root.stat()
    if info.st_uid != os.getuid() or stat.S_IMODE(info.st_mode) & 0o077:
        raise UserError(f"{root} must belong to you with mode 0700 (it holds the monitor's control sockets)")
    return root


def make_core_dir(root: Path | None = None) -> Path:
    folder = (root or runtime_root()) / f"core-{os.getpid()}-{secrets.token_hex(3)}"
    folder.mkdir(mode=0o700)
    return folder


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# a segment whose writer process is gone and whose heartbeat is this old was left by a process killed before its
# cleanup (a core, a benchmark's or a snapshot's publisher): the views' own "core died" rule
ORPHAN_AFTER_S = 5.0


def remove_orphaned_segments(shm_dir: Path = Path("/dev/shm")) -> list[str]:
    """Removes this user's core-state segments whose writer died without unlinking them (SIGKILL, a crash); a core
    with a runtime folder is cleaned by ``running_cores`` already, a publisher without one (a snapshot's, a
    benchmark's) only here. Segments that cannot be read (being created, another user's) are left alone."""
    from monitor.core.shared_state import LayoutError, SharedStateReader, remove_segment

    removed = []
    for path in shm_dir.glob("nfcore-*"):
        try:
            if path.stat().st_uid != os.getuid():
                continue
            reader = SharedStateReader(path.name)
        except (OSError, LayoutError, ValueError):
            continue
        try:
            pid = reader.writer_pid
            orphan = pid > 0 and not pid_alive(pid) and reader.heartbeat_age_s() > ORPHAN_AFTER_S
        finally:
            reader.close()
        if orphan:
            remove_segment(path.name)
            removed.append(path.name)
    return removed


def running_cores(root: Path | None = None) -> list[dict[str, Any]]:
    """The cores of this user that are running now (folders of dead cores, and segments whose writer died, are
    removed on the way)."""
    remove_orphaned_segments()
    cores = []
    for folder in sorted((root or runtime_root()).glob("core-*")):
        try:
            description = json.loads((folder / "core.json").read_text())
        except (OSError, ValueError):
            continue  # a core still starting, or not a core
        if pid_alive(int(description["pid"])):
            cores.append(description | {"dir": str(folder)})
        else:  # a core killed before its cleanup: its folder and its shared memory go now
            from monitor.core.shared_state import remove_segment

            remove_segment(str(description.get("shm", "")).strip("/") or "nfcore-none")
            shutil.rmtree(folder, ignore_errors=True)
    return cores


def find_core(which: str | None = None) -> dict[str, Any]:
    """The running core ``which`` names (its folder, pid or stream name), or the only one running."""
    if which and Path(which, "core.json").is_file():
        return json.loads(Path(which, "core.json").read_text()) | {"dir": which}
    cores = running_cores()
    if which:
        cores = [core for core in cores if which in (str(core["pid"]), core["stream"], core["dir"])]
    if len(cores) == 1:
        return cores[0]
    if not cores:
        named = f" named {which!r}" if which else ""
        raise UserError(f"no running monitor core{named}: start one with `neurofusion monitor --no-view` "
                        "(or `neurofusion demo`)")  # fmt: skip
    listing = "; ".join(f"pid {core['pid']} stream {core['stream']!r}" for core in cores)
    raise UserError(f"{len(cores)} monitor cores are running ({listing}): pass --core PID")


@dataclass
class ViewSeen:
    pid: int
    kind: str
    last_seen: float = field(default_factory=time.monotonic)


class ViewRegistry:
    """The views that said hello, when each was last heard from, and one line about them for the status line."""

    def __init__(self) -> None:
        self.views: dict[str, ViewSeen] = {}
        self.lock = threading.Lock()
        self.child: Any = None  # a view process this core started (subprocess.Popen), if any
        self.note = ""  # what became of that view: restarted, or given up (monitor.core.process.ViewChild)

    def seen(self, view_id: str, pid: int, kind: str) -> None:
        with self.lock:
            view = self.views.setdefault(view_id, ViewSeen(pid, kind))
            view.last_seen = time.monotonic()

    def gone(self, view_id: str) -> None:
        with self.lock:
            self.views.pop(view_id, None)

    def silence_of(self, pid: int) -> float | None:
        """Seconds since the view in process ``pid`` was last heard from; None before its first hello."""
        with self.lock:
            heard = [view.last_seen for view in self.views.values() if view.pid == pid]
        return time.monotonic() - max(heard) if heard else None

    def describe(self) -> str:
        now = time.monotonic()
        parts = []
        with self.lock:
            for view_id, view in list(self.views.items()):
                if not pid_alive(view.pid):
                    parts.append(f"{view.kind} view gone (pid {view.pid} ended)")
                    del self.views[view_id]
                elif now - view.last_seen > SILENT_AFTER_S:
                    parts.append(f"{view.kind} view not answering for {now - view.last_seen:.0f} s (pid {view.pid})")
                else:
                    parts.append(f"{view.kind} view attached (pid {view.pid})")
        if self.note:
            parts.append(self.note)
        child = self.child
        if child is not None and not any(f"pid {child.pid}" in p for p in parts):
            if child.poll() is None:  # started, not attached yet (a restart takes seconds of Python and Qt start-up)
                parts.append(f"view starting (pid {child.pid})")
            else:
                parts.append(f"view gone (pid {child.pid} exited with {child.returncode}); reattach: neurofusion view")
        return "; ".join(parts) or "no view attached"


class ControlServer(threading.Thread):
    """Answers the views' requests; ``handlers`` map a request's ``op`` to a function of the request."""

    def __init__(self, endpoint: str, handlers: dict[str, Callable[[dict[str, Any]], dict[str, Any]]],
                 token: str | None = None) -> None:
        super().__init__(name="core-control", daemon=True)
        self.endpoint = endpoint
        self.handlers = handlers
        self._token = token if token is not None else control_token()
        self._socket = zmq.Context.instance().socket(zmq.REP)
        self._socket.setsockopt(zmq.LINGER, 0)
        self._socket.bind(endpoint)
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout=2.0)
        self._socket.close(0)

    def run(self) -> None:
        while not self._halt.is_set():
            if not self._socket.poll(100):
                continue
            message = self._socket.recv()
            try:
                reply = self.answer(message)
            except Exception as error:  # a bad request must never end the core
                log.exception("control request failed")
                reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
            self._socket.send(json.dumps(reply).encode())

    def answer(self, message: bytes) -> dict[str, Any]:
        try:
            request = json.loads(message)
        except ValueError:
            return {"ok": False, "error": "not a JSON object"}
        if not isinstance(request, dict):
            return {"ok": False, "error": "not a JSON object"}
        if not hmac.compare_digest(str(request.get("token", "")).encode(), self._token.encode()):
            return {"ok": False, "error": "refused: wrong control token"}
        handler = self.handlers.get(str(request.get("op")))
        if handler is None:
            return {"ok": False, "error": f"unknown op {request.get('op')!r}; known: {sorted(self.handlers)}"}
        try:
            return {"ok": True} | handler(request)
        except (UserError, ValueError, TypeError, KeyError) as error:
            return {"ok": False, "error": str(error)}


class ControlClient:
    """A view's side: one request at a time, each with a timeout (a core that does not answer is reported)."""

    def __init__(self, endpoint: str, token: str | None = None, timeout_s: float = 2.0) -> None:
        self.endpoint, self.timeout_s = endpoint, timeout_s
        self._token = token if token is not None else control_token()
        self._lock = threading.Lock()
        self._socket: zmq.Socket | None = None

    def _connected(self) -> zmq.Socket:
        if self._socket is None:
            self._socket = zmq.Context.instance().socket(zmq.REQ)
            self._socket.setsockopt(zmq.LINGER, 0)
            self._socket.connect(self.endpoint)
        return self._socket

    def request(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            socket = self._connected()
            socket.send(json.dumps({"op": op, "token": self._token, **fields}).encode())
            if not socket.poll(int(self.timeout_s * 1000)):
                socket.close(0)  # a REQ socket waiting for a lost reply can send nothing more: start afresh
                self._socket = None
                return {"ok": False, "error": f"the monitor core did not answer within {self.timeout_s:g} s"}
            return json.loads(socket.recv())

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close(0)
                self._socket = None


def write_description(folder: Path, description: dict[str, Any]) -> None:
    """core.json appears complete or not at all (written aside, then renamed)."""
    aside = folder / ".core.json"
    aside.write_text(json.dumps(description))
    aside.replace(folder / "core.json")


def remove_core_dir(folder: Path) -> None:
    with contextlib.suppress(OSError):
        shutil.rmtree(folder)
