"""The monitor's side of the inference service: submit windows without ever blocking, collect decisions.

A background I/O thread owns the ZeroMQ DEALER socket (ZeroMQ sockets are not thread-safe), so ``submit`` only
queues and ``poll`` only drains. Windows wait at most ``deadline_s`` for an answer: older ones are dropped and
counted, and when more than ``max_in_flight`` are outstanding the oldest unsent one gives way to the newest
(latest wins). Pings every ``heartbeat_s`` tell whether the worker (or broker) is alive; the state is "starting"
until it first answers, then "online" or "offline".

A slow worker (model time per window longer than the hop) must cost decisions, not freshness: the client learns the
worker's time per window from its replies and keeps fewer windows in flight when that time is long (a window queued
behind three others at a 100 ms model would wait 300 ms for nothing), and it does not send a window that could no
longer be answered within its deadline (dropped and counted with the deadline drops, before wasting the worker's
time). With a fast worker neither rule changes anything.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from monitor.errors import UserError
from monitor.inference import protocol
from monitor.inference.security import CurveClientKeys, control_token, secure_client

log = logging.getLogger(__name__)

CLIENT_ACCEPTS = (protocol.KIND_RESULT, protocol.KIND_ERROR, protocol.KIND_PONG)
STATE_STARTING = "starting"
STATE_ONLINE = "online"
STATE_OFFLINE = "offline"


@dataclass(frozen=True)
class Decision:
    bed_id: str
    sequence: int
    last_timestamp: float  # LSL time of the window's last sample
    probabilities: np.ndarray  # (K,) float32
    label: str
    classes: tuple[str, ...]
    channel_attention: np.ndarray  # (C,) float32
    model_id: str
    worker_ms: float  # model time in the worker (for the whole batch this window was in)
    round_trip_ms: float  # submit() to reply received, queueing included
    received_at: float  # LSL time the reply arrived
    batch_size: int


@dataclass
class _Pending:
    request: protocol.InferenceRequest
    submitted: float  # perf_counter at submit()
    sent: bool = False


def _lsl_clock() -> Callable[[], float]:
    from monitor.lslenv import use_lsl_config

    use_lsl_config()
    import pylsl

    return pylsl.local_clock


class InferenceClient:
    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5555",
        bed_id: str = "bed-1",
        deadline_s: float = 0.5,
        *,
        max_in_flight: int = 4,
        heartbeat_s: float = 0.25,
        liveness_s: float = 1.0,
        startup_s: float = 30.0,
        model_id: str | None = None,
        curve: CurveClientKeys | None = None,
        clock: Callable[[], float] | None = None,
        context: zmq.Context | None = None,
    ) -> None:
        if deadline_s <= 0 or max_in_flight < 1:
            raise ValueError("deadline_s must be positive and max_in_flight at least 1")
        self.endpoint = endpoint
        self.bed_id = bed_id
        self.deadline_s = float(deadline_s)
        self.max_in_flight = int(max_in_flight)
        self.heartbeat_s = float(heartbeat_s)
        self.liveness_s = float(liveness_s)
        self.startup_s = float(startup_s)
        self.model_id = model_id
        self._clock = clock or _lsl_clock()
        self._lock = threading.Lock()
        self._decision_ready = threading.Condition(self._lock)
        self._submitted: deque[_Pending] = deque()  # handed over by submit(), not yet seen by the I/O thread
        self._decisions: deque[Decision] = deque(maxlen=10_000)
        self._counts: Counter[str] = Counter()
        self._error_codes: Counter[str] = Counter()
        self._last_error = ""
        self._created = time.monotonic()
        self._last_heard: float | None = None
        self._workers_behind = 1
        self._service_s = 0.0  # the worker's model time per window, smoothed over replies (I/O thread only)
        self._offline_since: float | None = None
        self._offline_seconds = 0.0
        self._closed = threading.Event()
        self._context = context or zmq.Context.instance()
        self._socket = self._context.socket(zmq.DEALER)
        try:
            self._configure_socket(endpoint, curve)
        except BaseException:
            self._socket.close(0)
            raise
        self._wake_read, self._wake_write = os.pipe()  # submit() wakes the I/O thread through it
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._thread = threading.Thread(target=self._run, name=f"inference-client-{bed_id}", daemon=True)
        self._thread.start()

    def _configure_socket(self, endpoint: str, curve: CurveClientKeys | None) -> None:
        sock = self._socket
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.IMMEDIATE, 1)  # no queueing for a worker that is not connected: it would be stale
        # retry every 100 ms without exponential back-off, so a restarted worker is found within 0.1 s
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 0)
        sock.setsockopt(zmq.SNDHWM, 100)
        if curve is not None:
            secure_client(sock, curve)
        # disconnects are seen at once through the socket monitor; heartbeats catch a hung or unreachable peer
        self._monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)
        self._connected = False
        try:
            sock.connect(endpoint)
        except zmq.ZMQError as error:
            self._monitor.close(0)
            raise UserError(f"cannot connect to inference endpoint {endpoint!r}: {error}") from None

    # ------------------------------------------------------------ caller's side (any thread)

    def submit(
        self,
        window: np.ndarray,
        last_timestamp: float,
        sequence: int,
        fs: float,
        channel_mask: np.ndarray | None = None,
    ) -> None:
        """Queue one (C, S) window for inference. Never blocks; never raises for a worker being away."""
        window = np.ascontiguousarray(window, dtype=np.float32)
        if window.ndim != 2:
            raise ValueError(f"window must be (channels, samples), got shape {window.shape}")
        mask = np.ones(window.shape[0], bool) if channel_mask is None else np.asarray(channel_mask, bool).reshape(-1)
        if not np.isfinite(window).all():
            # NaN must not go on the wire (the worker would refuse the whole window): mask those channels instead.
            finite = np.isfinite(window).all(axis=1)
            mask = mask & finite
            window = np.where(finite[:, None], window, np.float32(0.0))
        request = protocol.InferenceRequest(
            request_id=protocol.new_request_id(),
            bed_id=self.bed_id,
            sequence=int(sequence),
            last_timestamp=float(last_timestamp),
            fs=float(fs),
            window=window,
            channel_mask=mask,
            model_id=self.model_id,
        )
        with self._lock:
            self._submitted.append(_Pending(request, time.perf_counter()))
            self._counts["submitted"] += 1
            # should the I/O thread ever fall behind, memory stays bounded and the newest windows still win
            while len(self._submitted) > 4 * self.max_in_flight:
                self._submitted.popleft()
                self._counts["dropped_superseded"] += 1
        self._wake()

    def poll(self, timeout_s: float = 0.0) -> list[Decision]:
        """Decisions received since the last call. Waits up to ``timeout_s`` for the first one (0 = never)."""
        with self._decision_ready:
            if not self._decisions and timeout_s > 0:
                self._decision_ready.wait(timeout_s)
            decisions = list(self._decisions)
            self._decisions.clear()
        return decisions

    @property
    def state(self) -> str:
        with self._lock:
            return self._state_locked(time.monotonic())

    @property
    def stats(self) -> dict:
        now = time.monotonic()
        with self._lock:
            # the I/O thread tracks offline periods on its own tick, which a busy machine delays: bring it up to
            # date here so a snapshot that says "offline" also counts that period
            self._track_offline_locked(now)
            offline = self._offline_seconds + (now - self._offline_since if self._offline_since else 0.0)
            return {
                "state": self._state_locked(now),
                "submitted": self._counts["submitted"],
                "sent": self._counts["sent"],
                "answered": self._counts["answered"],
                "dropped_deadline": self._counts["dropped_deadline"],
                "dropped_superseded": self._counts["dropped_superseded"],
                "late_replies": self._counts["late_replies"],
                "errors": sum(self._error_codes.values()),
                "error_codes": dict(self._error_codes),
                "last_error": self._last_error,
                "bad_replies": self._counts["bad_replies"],
                "in_flight": self._counts["in_flight"],
                "offline_periods": self._counts["offline_periods"],
                "offline_seconds": round(offline, 3),
                "workers": self._workers_behind,
            }

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake()
        self._thread.join(timeout=2.0)
        os.close(self._wake_read)
        os.close(self._wake_write)

    def __enter__(self) -> InferenceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _wake(self) -> None:
        # a full pipe means the I/O thread is already due to wake; a closed one means we are shutting down
        with contextlib.suppress(OSError):
            os.write(self._wake_write, b"x")

    def _state_locked(self, now: float) -> str:
        if self._last_heard is None:
            return STATE_STARTING if now - self._created < self.startup_s else STATE_OFFLINE
        if not self._connected or now - self._last_heard > self.liveness_s or self._workers_behind == 0:
            return STATE_OFFLINE
        return STATE_ONLINE

    # ------------------------------------------------------------ I/O thread

    def _run(self) -> None:
        pending: OrderedDict[str, _Pending] = OrderedDict()  # by request id, oldest first
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(self._wake_read, zmq.POLLIN)
        poller.register(self._monitor, zmq.POLLIN)
        next_ping = 0.0
        try:
            while not self._closed.is_set():
                now = time.monotonic()
                if now >= next_ping:
                    self._send([b"", *protocol.encode_ping(protocol.Ping(protocol.new_request_id()))])
                    next_ping = now + self.heartbeat_s
                    self._track_offline(now)
                timeout_ms = max(1, int(1000 * min(next_ping - now, self._next_expiry(pending) - time.perf_counter())))
                events = dict(poller.poll(timeout_ms))
                if self._wake_read in events:
                    self._drain_wake_pipe()
                if self._monitor in events and self._connection_events():
                    next_ping = 0.0  # just (re)connected: ask at once instead of waiting for the next beat
                if self._socket in events:
                    self._receive_all(pending)
                self._take_submitted(pending)
                self._expire(pending)
                self._send_waiting(pending)
                self._supersede(pending)
        except zmq.ZMQError as error:  # the context was terminated under us: nothing left to do
            log.debug("inference client I/O thread stops: %s", error)
        finally:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._socket.close(0)

    def _connection_events(self) -> bool:
        """Apply socket-monitor events; True when a connection has just been established."""
        connected = False
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            with self._lock:
                self._connected = event == zmq.EVENT_HANDSHAKE_SUCCEEDED
                self._track_offline_locked(time.monotonic())
            connected = connected or self._connected
        return connected

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except BlockingIOError:
            pass

    def _next_expiry(self, pending: OrderedDict[str, _Pending]) -> float:
        if not pending:
            return time.perf_counter() + 1.0
        oldest = next(iter(pending.values()))
        return oldest.submitted + self.deadline_s

    def _take_submitted(self, pending: OrderedDict[str, _Pending]) -> None:
        with self._lock:
            while self._submitted:
                item = self._submitted.popleft()
                pending[item.request.request_id] = item

    def _supersede(self, pending: OrderedDict[str, _Pending]) -> None:
        """Latest wins: of the windows not sent yet, keep only the newest (as many as may be in flight)."""
        unsent = [key for key, item in pending.items() if not item.sent]
        for key in unsent[: max(0, len(unsent) - self._in_flight_limit())]:
            del pending[key]
            self._count("dropped_superseded")

    def _expire(self, pending: OrderedDict[str, _Pending]) -> None:
        limit = time.perf_counter() - self.deadline_s
        expired = [key for key, item in pending.items() if item.submitted < limit]
        for key in expired:
            del pending[key]
        if expired:
            self._count("dropped_deadline", len(expired))

    def _in_flight_limit(self) -> int:
        """At most ``max_in_flight``, fewer for a slow worker: windows queued in the worker should all be answered
        within half the deadline, so a decision is still fresh and the worker never works on what will expire."""
        if self._service_s <= 0:
            return self.max_in_flight
        return max(1, min(self.max_in_flight, int(self.deadline_s / (2.0 * self._service_s))))

    def _send_waiting(self, pending: OrderedDict[str, _Pending]) -> None:
        in_flight = sum(item.sent for item in pending.values())
        limit = self._in_flight_limit()
        now = time.perf_counter()
        hopeless = [key for key, item in pending.items() if not item.sent
                    and now - item.submitted + (in_flight + 1) * self._service_s > self.deadline_s]
        for key in hopeless:  # it would miss its deadline behind the windows already in the worker
            del pending[key]
        if hopeless:
            self._count("dropped_deadline", len(hopeless))
        for item in pending.values():
            if in_flight >= limit:
                break
            if item.sent:
                continue
            if not self._send([b"", *protocol.encode_request(item.request)]):
                break  # not connected: it waits (and expires at its deadline, counted)
            item.sent = True
            in_flight += 1
            self._count("sent")
        with self._lock:
            self._counts["in_flight"] = in_flight

    def _send(self, frames: list) -> bool:
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def _receive_all(self, pending: OrderedDict[str, _Pending]) -> None:
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            received = time.perf_counter()
            try:
                _, body = protocol.split_envelope(frames)
                message = protocol.decode(body, accept=CLIENT_ACCEPTS)
            except protocol.ProtocolError as error:
                self._count("bad_replies")
                log.warning("unreadable reply from %s: %s", self.endpoint, error)
                continue
            self._heard(message)
            if isinstance(message, protocol.InferenceResult):
                self._deliver(message, pending.pop(message.request_id, None), received)
            elif isinstance(message, protocol.ErrorReply):
                item = pending.pop(message.request_id, None) if message.request_id else None
                with self._lock:
                    self._error_codes[message.code] += 1
                    self._last_error = f"{message.code}: {message.message}"
                if item is None and message.code != protocol.NO_WORKER:
                    log.info("error reply without a pending request: %s", self._last_error)

    def _heard(self, message: protocol.Message) -> None:
        with self._lock:
            self._last_heard = time.monotonic()
            if isinstance(message, protocol.Pong):
                self._workers_behind = message.workers
            self._track_offline_locked(self._last_heard)

    def _deliver(self, result: protocol.InferenceResult, item: _Pending | None, received: float) -> None:
        per_window = result.worker_ms / 1000.0 / max(1, result.batch_size)
        # smoothed, so one slow batch (a garbage collection) does not halve the depth at once
        self._service_s = per_window if self._service_s <= 0 else 0.8 * self._service_s + 0.2 * per_window
        if item is None:
            self._count("late_replies")  # answered after its deadline: already counted as dropped
            return
        decision = Decision(
            bed_id=result.bed_id,
            sequence=result.sequence,
            last_timestamp=result.last_timestamp,
            probabilities=result.probabilities,
            label=result.label,
            classes=result.classes,
            channel_attention=result.channel_attention,
            model_id=result.model_id,
            worker_ms=result.worker_ms,
            round_trip_ms=(received - item.submitted) * 1000.0,
            received_at=self._clock(),
            batch_size=result.batch_size,
        )
        with self._decision_ready:
            self._decisions.append(decision)
            self._counts["answered"] += 1
            self._decision_ready.notify_all()

    def _count(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def _track_offline(self, now: float) -> None:
        with self._lock:
            self._track_offline_locked(now)

    def _track_offline_locked(self, now: float) -> None:
        """Count offline periods and their length, so a gap in decisions is reported, not hidden."""
        offline = self._state_locked(now) == STATE_OFFLINE
        if offline and self._offline_since is None:
            self._offline_since = now
            self._counts["offline_periods"] += 1
        elif not offline and self._offline_since is not None:
            self._offline_seconds += now - self._offline_since
            self._offline_since = None


class ModelControl:
    """Asks a worker to load a checkpoint and switch to it, or to switch back, and waits for its answer.

    A separate socket from the ``InferenceClient``'s, so a switch never waits behind windows (or they behind it).
    Blocking: call it from a background thread or a script, never the acquisition or GUI thread. It talks to one
    worker directly (a broker does not pass these kinds on: with several workers, ask each one). Without CURVE
    keys it presents the user's control token (``token_file``, default ~/.config/neurofusion/control.token, made
    on first use), which a worker of the same user reads from the same file.
    """

    def __init__(self, endpoint: str, *, curve: CurveClientKeys | None = None,
                 context: zmq.Context | None = None, token_file: str | os.PathLike[str] | None = None) -> None:
        self.endpoint = endpoint
        self._token = None if curve is not None else control_token(token_file)
        self._socket = (context or zmq.Context.instance()).socket(zmq.DEALER)
        self._socket.setsockopt(zmq.LINGER, 0)
        try:
            if curve is not None:
                secure_client(self._socket, curve)
            self._socket.connect(endpoint)
        except zmq.ZMQError as error:
            self._socket.close(0)
            raise UserError(f"cannot connect to inference endpoint {endpoint!r}: {error}") from None

    def load_model(self, path: str | os.PathLike[str], timeout_s: float = 60.0) -> protocol.ModelLoaded:
        """Load ``path`` beside the running model and switch to it. UserError when refused or unanswered."""
        request = protocol.LoadModel(protocol.new_request_id(), os.fspath(os.path.abspath(path)), self._token)
        return self._ask(protocol.encode_load_model(request), request.request_id, timeout_s)

    def use_model(self, model_id: str, timeout_s: float = 10.0) -> protocol.ModelLoaded:
        """Switch to a model the worker already holds (e.g. back to the one before an adaptation)."""
        request = protocol.UseModel(protocol.new_request_id(), model_id, self._token)
        return self._ask(protocol.encode_use_model(request), request.request_id, timeout_s)

    def _ask(self, frames: list[bytes], request_id: str, timeout_s: float) -> protocol.ModelLoaded:
        self._socket.send_multipart([b"", *frames])
        give_up = time.monotonic() + timeout_s
        while (remaining := give_up - time.monotonic()) > 0:
            if not self._socket.poll(max(1, int(remaining * 1000))):
                break
            frames_in = self._socket.recv_multipart()
            try:
                _, body = protocol.split_envelope(frames_in)
                message = protocol.decode(body, accept=(protocol.KIND_MODEL_LOADED, protocol.KIND_ERROR))
            except protocol.ProtocolError as error:
                log.warning("unreadable control reply from %s: %s", self.endpoint, error)
                continue
            if message.request_id != request_id:
                continue  # the answer to an earlier request that timed out
            if isinstance(message, protocol.ErrorReply):
                raise UserError(f"the worker refused: {message.code}: {message.message}")
            return message
        raise UserError(f"no answer from the inference worker at {self.endpoint} within {timeout_s:g} s")

    def close(self) -> None:
        self._socket.close(0)

    def __enter__(self) -> ModelControl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
