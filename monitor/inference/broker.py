"""Load-balancing broker: N monitors (clients) share M workers, on one host or across hosts.

Clients connect DEALER sockets to the frontend ROUTER exactly as they would to a worker; workers connect DEALER
sockets to the backend ROUTER and announce themselves with ``worker_ready`` heartbeats. Each request goes to the
live worker with the fewest requests in flight (below its announced capacity), so a worker that is busy with a
batch gets fewer; requests wait in a bounded queue when all are full, and are refused with ``no_worker`` when
none is alive. Results are also published, topic = bed id, on an optional PUB socket for a central station.
The broker reads only headers; payloads pass through untouched (workers validate them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field

import zmq

from monitor.inference import protocol
from monitor.inference.security import CurveServerKeys, secure_server
from monitor.inference.worker import MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)


@dataclass
class BrokerSettings:
    frontend: str = "tcp://127.0.0.1:5555"  # monitors connect here
    backend: str = "tcp://127.0.0.1:5556"  # workers connect here
    publish: str | None = None  # results for a central station (PUB, topic = bed id)
    heartbeat_s: float = 0.25
    # A worker beats between batches, so a long batch on a loaded CPU must not count as death; one that comes
    # back is simply registered again, and its late replies are still forwarded.
    worker_liveness_s: float = 3.0
    queue_limit: int = 1000
    queue_max_age_s: float = 1.0  # queued longer than this: answered no_worker (the client has given up anyway)
    curve_server: CurveServerKeys | None = None  # applies to every bound socket


@dataclass
class _Worker:
    identity: bytes
    name: str
    model_id: str
    capacity: int
    last_seen: float
    in_flight: dict[str, float] = field(default_factory=dict)  # request id -> dispatch time
    last_dispatch: float = 0.0
    answered: int = 0


@dataclass
class _Queued:
    arrived: float
    envelope: list[bytes]
    body: list[bytes]
    request_id: str


class Broker:
    def __init__(self, settings: BrokerSettings, context: zmq.Context | None = None) -> None:
        self.settings = settings
        self.context = context or zmq.Context.instance()
        self.counts: Counter[str] = Counter()
        self.workers: OrderedDict[bytes, _Worker] = OrderedDict()
        self.queue: deque[_Queued] = deque()
        self.bound: dict[str, str] = {}

    def run(self, stop: threading.Event, on_ready: Callable[[dict[str, str]], None] | None = None) -> Counter[str]:
        sockets: list[zmq.Socket] = []
        authenticator = None

        def open_socket(kind: int, endpoint: str, name: str) -> zmq.Socket:
            nonlocal authenticator
            sock = self.context.socket(kind)
            sockets.append(sock)
            sock.setsockopt(zmq.LINGER, 0)
            if kind == zmq.ROUTER:
                sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
                sock.setsockopt(zmq.RCVHWM, 1000)
            if self.settings.curve_server:
                authenticator = secure_server(sock, self.settings.curve_server, authenticator)
            sock.bind(endpoint)
            self.bound[name] = sock.getsockopt_string(zmq.LAST_ENDPOINT)
            return sock

        try:
            frontend = open_socket(zmq.ROUTER, self.settings.frontend, "frontend")
            backend = open_socket(zmq.ROUTER, self.settings.backend, "backend")
            publisher = open_socket(zmq.PUB, self.settings.publish, "publish") if self.settings.publish else None
            if on_ready:
                on_ready(dict(self.bound))
            self._loop(frontend, backend, publisher, stop)
        finally:
            for sock in sockets:
                sock.close(0)
            if authenticator is not None:
                authenticator.stop()
        return self.counts

    def _loop(self, frontend: zmq.Socket, backend: zmq.Socket, publisher: zmq.Socket | None,
              stop: threading.Event) -> None:
        poller = zmq.Poller()
        poller.register(frontend, zmq.POLLIN)
        poller.register(backend, zmq.POLLIN)
        next_heartbeat = 0.0
        while not stop.is_set():
            now = time.monotonic()
            if now >= next_heartbeat:
                self._expire_workers(now)
                for identity in self.workers:
                    self._send(backend, [identity, b"", *protocol.encode_broker_heartbeat()])
                next_heartbeat = now + self.settings.heartbeat_s
            events = dict(poller.poll(max(1, int(1000 * (next_heartbeat - now)))))
            if backend in events:
                self._drain(backend, lambda frames: self._from_worker(frames, frontend, publisher))
            if frontend in events:
                self._drain(frontend, lambda frames: self._from_client(frames, frontend))
            self._dispatch_queue(frontend, backend)

    def _drain(self, sock: zmq.Socket, handle: Callable[[list[bytes]], None], limit: int = 1000) -> None:
        for _ in range(limit):
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    # ---------------------------------------------------------------- clients

    def _from_client(self, frames: list[bytes], frontend: zmq.Socket) -> None:
        self.counts["from_clients"] += 1
        try:
            envelope, body = protocol.split_envelope(frames)
            header = protocol.parse_header(body)
        except protocol.ProtocolError as error:
            if len(frames) > 1 and frames[1] == b"":  # a client of ours that sent a bad header: tell it
                self._reply_error(frontend, frames[:2], error.request_id, error.code, error.detail)
            else:
                self.counts["dropped_no_envelope"] += 1
            return
        request_id = header.get("id") if isinstance(header.get("id"), str) else None
        kind = header["kind"]
        if kind == protocol.KIND_PING:
            if request_id is None:
                self._reply_error(frontend, envelope, None, protocol.BAD_FIELD, "ping without an id")
                return
            pool = [{"name": w.name, "model": w.model_id, "in_flight": len(w.in_flight), "answered": w.answered}
                    for w in self.workers.values()]
            pong = protocol.Pong(request_id, "broker", None, len(self.workers), {"queued": len(self.queue),
                                                                                  "pool": pool})
            self._send(frontend, envelope + protocol.encode_pong(pong))
        elif kind == protocol.KIND_REQUEST and not (request_id and len(request_id) <= protocol.MAX_TEXT):
            self._reply_error(frontend, envelope, None, protocol.BAD_FIELD, "a request needs an 'id' string")
        elif kind == protocol.KIND_REQUEST:
            if not self.workers:
                self._reply_error(frontend, envelope, request_id, protocol.NO_WORKER, "no worker is connected")
            elif len(self.queue) >= self.settings.queue_limit:
                self._reply_error(frontend, envelope, request_id, protocol.NO_WORKER, "all workers are busy")
            else:
                self.queue.append(_Queued(time.monotonic(), envelope, body, request_id))
        else:
            self._reply_error(frontend, envelope, request_id, protocol.BAD_KIND,
                              "a broker accepts 'infer' and 'ping' from clients")

    def _dispatch_queue(self, frontend: zmq.Socket, backend: zmq.Socket) -> None:
        now = time.monotonic()
        while self.queue:
            item = self.queue[0]
            if now - item.arrived > self.settings.queue_max_age_s:
                self.queue.popleft()
                self._reply_error(frontend, item.envelope, item.request_id, protocol.NO_WORKER,
                                  "no worker was free in time")
                continue
            worker = self._least_loaded()
            if worker is None:
                return
            self.queue.popleft()
            if self._send(backend, [worker.identity, *item.envelope, *item.body]):
                worker.in_flight[item.request_id] = now
                worker.last_dispatch = time.monotonic()
                self.counts["dispatched"] += 1

    def _least_loaded(self) -> _Worker | None:
        free = [w for w in self.workers.values() if len(w.in_flight) < w.capacity]
        # ties go to the worker idle longest, so an idle pool shares the load instead of piling onto one
        return min(free, key=lambda w: (len(w.in_flight), w.last_dispatch)) if free else None

    # ---------------------------------------------------------------- workers

    def _from_worker(self, frames: list[bytes], frontend: zmq.Socket, publisher: zmq.Socket | None) -> None:
        identity, rest = frames[0], frames[1:]
        try:
            envelope, body = protocol.split_envelope(rest)
            header = protocol.parse_header(body)
        except protocol.ProtocolError:
            self.counts["bad_from_worker"] += 1
            return
        now = time.monotonic()
        if envelope == [b""]:  # addressed to the broker itself
            if header["kind"] == protocol.KIND_WORKER_READY:
                self._register(identity, body, now)
            return
        worker = self.workers.get(identity)
        if worker is not None:
            worker.last_seen = now
            worker.in_flight.pop(str(header.get("id")), None)
            worker.answered += 1
        self.counts["replies"] += 1
        self._send(frontend, envelope + body)
        if publisher is not None and header["kind"] == protocol.KIND_RESULT:
            topic = str(header.get("bed", "")).encode()
            self._send(publisher, [topic, *body])

    def _register(self, identity: bytes, body: list[bytes], now: float) -> None:
        try:
            ready = protocol.decode(body, accept=(protocol.KIND_WORKER_READY,))
        except protocol.ProtocolError:
            self.counts["bad_from_worker"] += 1
            return
        worker = self.workers.get(identity)
        if worker is None:
            log.info("worker %s joined (model %s)", ready.worker_name, ready.model_id)
            self.counts["workers_joined"] += 1
            self.workers[identity] = _Worker(identity, ready.worker_name, ready.model_id, ready.capacity, now)
        else:
            worker.last_seen = now
            # requests a worker should long have answered are lost (it restarted, or dropped them): free the slots
            stale = [rid for rid, sent in worker.in_flight.items() if now - sent > 2 * self.settings.queue_max_age_s]
            for rid in stale:
                del worker.in_flight[rid]

    def _expire_workers(self, now: float) -> None:
        for identity in [i for i, w in self.workers.items() if now - w.last_seen > self.settings.worker_liveness_s]:
            worker = self.workers.pop(identity)
            self.counts["workers_lost"] += 1
            self.counts["lost_in_flight"] += len(worker.in_flight)
            log.warning("worker %s went silent; %d requests lost", worker.name, len(worker.in_flight))

    # ---------------------------------------------------------------- sending

    def _reply_error(self, sock: zmq.Socket, envelope: list[bytes], request_id: str | None, code: str,
                     message: str) -> None:
        self.counts[f"error_{code}"] += 1
        self._send(sock, envelope + protocol.encode_error(protocol.ErrorReply(request_id, code, message)))

    def _send(self, sock: zmq.Socket, frames: list) -> bool:
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
            return True
        except zmq.Again:
            self.counts["dropped_send_queue_full"] += 1
        except zmq.ZMQError:  # peer gone (ROUTER with an unknown identity) or similar
            self.counts["dropped_send_error"] += 1
        return False

