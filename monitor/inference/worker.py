"""The inference worker: receives windows over ZeroMQ, runs NeuroFusionNet in batches, replies.

It either binds a ROUTER socket (clients connect to it directly) or connects a DEALER socket to a broker's
backend (``neurofusion broker``), announcing itself with ``worker_ready`` heartbeats. Both ways it sees the same
frames, ``[client identity, b"", header, payload]``, and answers on the same envelope. Requests that arrive
together (within ``batch_wait_s`` of the first, up to ``max_batch``) run as one batch. Nothing a peer sends can
stop it: bad messages get an error reply, or are dropped and counted when they carry no envelope to reply on.

Hot swap: ``load_model`` loads a checkpoint in a background thread of the worker (never on the serving path),
checks that it takes the running model's inputs, and switches to it between two batches, so every reply's model
id changes at one point and no request fails. The replaced models stay loaded for ``use_model`` (switching back).
Both are refused unless the peer is authenticated and the checkpoint lies in an allowed folder (the
``ControlPolicy`` of monitor/inference/security.py): reaching the socket is not enough to change what every bed
is told.
"""

from __future__ import annotations

import logging
import math
import os
import queue
import socket as socket_module
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import zmq

from monitor.inference import protocol
from monitor.inference.security import (
    ControlPolicy,
    ControlRefused,
    CurveClientKeys,
    CurveServerKeys,
    secure_client,
    secure_server,
)

log = logging.getLogger(__name__)

# A little above the largest legal message, so that libzmq itself disconnects a peer sending more.
MAX_MESSAGE_BYTES = protocol.MAX_PAYLOAD_BYTES + protocol.MAX_HEADER_BYTES + 1024
WORKER_ACCEPTS = (protocol.KIND_REQUEST, protocol.KIND_PING, protocol.KIND_BROKER_HEARTBEAT, protocol.KIND_LOAD_MODEL,
                  protocol.KIND_USE_MODEL)
RECEIVE_QUEUE = 256  # messages held by libzmq before the sender's queue fills: bounds worker memory
DENSE_TRAFFIC_FACTOR = 10  # arrivals closer than 10 batch waits apart are worth waiting for
# ... but only when more than one client (bed) sent in this long: one bed's windows come a hop (50 ms) apart, and
# two of its windows that arrive together (a late DSP step finished both) are both already queued, so waiting
# for companions only delays its decisions (by batch_wait_s on the burst and again on the window after it)
CLIENTS_SEEN_S = 1.0


class PredictorLike(Protocol):
    """What the worker needs from models.predictor.Predictor."""

    card: Any  # ModelCard with model_id and classes

    def predict(self, windows: np.ndarray, channel_mask: np.ndarray, fs: float) -> Any: ...


@dataclass
class WorkerSettings:
    endpoint: str
    connect: bool = False  # False: bind a ROUTER for clients; True: connect a DEALER to a broker backend
    max_batch: int = 32
    batch_wait_s: float = 0.002
    heartbeat_s: float = 0.25
    curve_server: CurveServerKeys | None = None  # when binding
    curve_client: CurveClientKeys | None = None  # when connecting to a secured broker
    delay_s: float = 0.0  # diagnostic: extra model time per window, to rehearse a slow worker (fault tests)
    control: ControlPolicy | None = None  # who may load_model/use_model, and from where (None: nobody)


ModelLoader = Callable[[str], PredictorLike]  # checkpoint path -> a warmed-up predictor (ValueError if unusable)


def check_compatible(running: Any, candidate: Any) -> None:
    """ValueError unless a model with card ``candidate`` can answer the requests ``running`` answers."""
    for name in ("n_channels", "window_samples", "fs"):
        if float(getattr(candidate, name)) != float(getattr(running, name)):
            raise ValueError(f"{name} {getattr(candidate, name)} differs from the running model's "
                             f"{getattr(running, name)}")
    if list(candidate.classes) != list(running.classes):
        raise ValueError(f"classes {list(candidate.classes)} differ from the running model's {list(running.classes)}")
    running.check_layout(candidate.layout)


class BatchHandler:
    """Turns received multipart messages into replies; owns the counters. No sockets, so it is easy to test."""

    def __init__(self, predictor: PredictorLike, worker_name: str, max_batch: int = 32,
                 loader: ModelLoader | None = None, delay_s: float = 0.0,
                 control: ControlPolicy | None = None) -> None:
        self.worker_name = worker_name
        self.control = control
        self.max_batch = max(1, int(max_batch))
        self.delay_s = max(0.0, float(delay_s))
        self.counts: Counter[str] = Counter()
        self.last_broker_heartbeat = 0.0
        self.loader = loader
        self.models: OrderedDict[str, PredictorLike] = OrderedDict()
        self._activate(predictor)
        self._loads_running = 0
        self._finished_loads: queue.SimpleQueue[tuple[list[bytes], str, PredictorLike | Exception]] = (
            queue.SimpleQueue())

    def _activate(self, predictor: PredictorLike) -> str:
        """Make ``predictor`` the one answering; -> the previous model id. Called only between batches."""
        previous = getattr(self, "model_id", str(predictor.card.model_id))
        self.predictor = predictor
        self.model_id = str(predictor.card.model_id)
        self.classes = tuple(str(name) for name in predictor.card.classes)
        self.models[self.model_id] = predictor
        self.models.move_to_end(self.model_id)
        while len(self.models) > protocol.MAX_LOADED_MODELS:  # the oldest inactive one goes
            oldest = next(iter(self.models))
            del self.models[oldest]
        return previous

    @property
    def loads_pending(self) -> bool:
        return self._loads_running > 0

    def _model_loaded(self, envelope: list[bytes], request_id: str, previous: str) -> list[bytes | memoryview]:
        return envelope + protocol.encode_model_loaded(protocol.ModelLoaded(
            request_id, self.model_id, previous, tuple(self.models)))

    def _refuse_control(self, envelope: list[bytes], message: protocol.LoadModel | protocol.UseModel,
                        ) -> list[bytes | memoryview] | None:
        """The error reply for a model-control request this peer may not make (None: it may)."""
        try:
            if self.control is None:
                raise ControlRefused(protocol.UNAUTHORIZED, "this worker takes no model control requests")
            self.control.check_peer(message.token, "load_model" if isinstance(message, protocol.LoadModel)
                                    else "use_model")
            if isinstance(message, protocol.LoadModel):
                self.control.checkpoint(message.path)
        except ControlRefused as refused:
            self.counts[f"error_{refused.code}"] += 1
            log.warning("model control refused: %s", refused)
            return envelope + protocol.encode_error(protocol.ErrorReply(message.request_id, refused.code,
                                                                        str(refused)[:1000]))
        return None

    def _start_load(self, envelope: list[bytes], message: protocol.LoadModel) -> list[bytes | memoryview] | None:
        if self.loader is None:
            self.counts[f"error_{protocol.BAD_MODEL}"] += 1
            return envelope + protocol.encode_error(protocol.ErrorReply(
                message.request_id, protocol.BAD_MODEL, "this worker does not load models on request"))
        assert self.control is not None  # _refuse_control let it through
        checkpoint = str(self.control.checkpoint(message.path))  # the real path, links resolved
        self._loads_running += 1
        self.counts["model_loads"] += 1
        loader, running_card = self.loader, self.predictor.card

        def load() -> None:
            try:
                candidate = loader(checkpoint)
                check_compatible(running_card, candidate.card)
                outcome: PredictorLike | Exception = candidate
            except Exception as error:  # any failure is the requester's answer, never the worker's end
                outcome = error
            self._finished_loads.put((envelope, message.request_id, outcome))

        threading.Thread(target=load, name="model-loader", daemon=True).start()
        return None

    def finish_loads(self) -> list[list[bytes | memoryview]]:
        """Switch to the models whose loading has finished (between two batches); their replies."""
        replies: list[list[bytes | memoryview]] = []
        while True:
            try:
                envelope, request_id, outcome = self._finished_loads.get_nowait()
            except queue.Empty:
                return replies
            self._loads_running -= 1
            if isinstance(outcome, Exception):
                self.counts[f"error_{protocol.BAD_MODEL}"] += 1
                log.info("model not loaded: %s", outcome)
                replies.append(envelope + protocol.encode_error(protocol.ErrorReply(
                    request_id, protocol.BAD_MODEL, f"model not loaded: {outcome}"[:500])))
                continue
            previous = self._activate(outcome)
            self.counts["model_switches"] += 1
            log.info("now serving %s (was %s)", self.model_id, previous)
            replies.append(self._model_loaded(envelope, request_id, previous))

    def _use_model(self, envelope: list[bytes], message: protocol.UseModel) -> list[bytes | memoryview]:
        predictor = self.models.get(message.model_id)
        if predictor is None:
            self.counts[f"error_{protocol.UNKNOWN_MODEL}"] += 1
            return envelope + protocol.encode_error(protocol.ErrorReply(
                message.request_id, protocol.UNKNOWN_MODEL,
                f"no model {message.model_id!r} is loaded (loaded: {', '.join(self.models)})"))
        previous = self._activate(predictor)
        self.counts["model_switches"] += 1
        return self._model_loaded(envelope, message.request_id, previous)

    def handle(self, messages: list[list[bytes]]) -> list[list[bytes | memoryview]]:
        """Replies (each with its routing envelope) for a list of received messages, in arrival order of groups."""
        replies: list[list[bytes | memoryview]] = []
        groups: dict[tuple[int, int, float], list[tuple[list[bytes], protocol.InferenceRequest]]] = {}
        switches: list[tuple[list[bytes], protocol.UseModel]] = []
        for frames in messages:
            self.counts["received"] += 1
            try:
                envelope, body = protocol.split_envelope(frames)
            except protocol.ProtocolError:
                self.counts["dropped_no_envelope"] += 1
                continue
            try:
                message = protocol.decode(body, accept=WORKER_ACCEPTS)
            except protocol.ProtocolError as error:
                self.counts[f"error_{error.code}"] += 1
                replies.append(envelope + protocol.encode_error(
                    protocol.ErrorReply(error.request_id, error.code, error.detail)))
                continue
            if isinstance(message, protocol.InferenceRequest):
                if message.model_id is not None and message.model_id != self.model_id:
                    self.counts[f"error_{protocol.MODEL_MISMATCH}"] += 1
                    replies.append(envelope + protocol.encode_error(protocol.ErrorReply(
                        message.request_id, protocol.MODEL_MISMATCH,
                        f"this worker runs {self.model_id}, not {message.model_id}")))
                    continue
                groups.setdefault((*message.window.shape, message.fs), []).append((envelope, message))
            elif isinstance(message, protocol.Ping):
                self.counts["pings"] += 1
                replies.append(envelope + protocol.encode_pong(protocol.Pong(
                    message.request_id, "worker", self.model_id, 1,
                    {"worker": self.worker_name, "classes": list(self.classes), "counts": dict(self.counts),
                     "models": list(self.models)})))
            elif isinstance(message, (protocol.LoadModel, protocol.UseModel)) and (
                    refusal := self._refuse_control(envelope, message)) is not None:
                replies.append(refusal)
            elif isinstance(message, protocol.LoadModel):
                reply = self._start_load(envelope, message)
                if reply is not None:
                    replies.append(reply)
            elif isinstance(message, protocol.UseModel):
                # answered after this call's batches, which still ran on the model they were sent to
                switches.append((envelope, message))
            else:  # BrokerHeartbeat
                self.last_broker_heartbeat = time.monotonic()
        for (_, _, fs), items in groups.items():
            for start in range(0, len(items), self.max_batch):
                replies.extend(self._run_batch(items[start : start + self.max_batch], fs))
        for envelope, switch in switches:
            replies.append(self._use_model(envelope, switch))
        return replies

    def _run_batch(self, items: list[tuple[list[bytes], protocol.InferenceRequest]], fs: float,
                   ) -> list[list[bytes | memoryview]]:
        windows = np.stack([request.window for _, request in items])
        masks = np.stack([request.channel_mask for _, request in items])
        started = time.perf_counter()
        try:
            prediction = self.predictor.predict(windows, masks, fs)
            if self.delay_s:  # a slow model costs per window, so a batch does not hide it; timed as model time
                time.sleep(self.delay_s * len(items))
            probabilities = np.asarray(prediction.probabilities, dtype=np.float32)
            attention = np.asarray(prediction.channel_attention, dtype=np.float32)
            if probabilities.shape != (len(items), len(self.classes)) or attention.shape != masks.shape:
                raise ValueError(f"model returned shapes {probabilities.shape} and {attention.shape}")
        except Exception as error:  # the model refusing one batch (wrong channel count...) must not stop the worker
            self.counts[f"error_{protocol.MODEL_REJECTED}"] += len(items)
            log.info("model rejected a batch of %d: %s", len(items), error)
            return [envelope + protocol.encode_error(protocol.ErrorReply(
                request.request_id, protocol.MODEL_REJECTED, f"{type(error).__name__}: {error}"[:300]))
                for envelope, request in items]
        worker_ms = (time.perf_counter() - started) * 1000.0
        self.counts["answered"] += len(items)
        self.counts["batches"] += 1
        replies = []
        for row, (envelope, request) in enumerate(items):
            result = protocol.InferenceResult(
                request_id=request.request_id,
                bed_id=request.bed_id,
                sequence=request.sequence,
                last_timestamp=request.last_timestamp,
                model_id=self.model_id,
                classes=self.classes,
                label=self.classes[int(np.argmax(probabilities[row]))],
                probabilities=probabilities[row],
                channel_attention=attention[row],
                worker_ms=worker_ms,
                batch_size=len(items),
            )
            replies.append(envelope + protocol.encode_result(result))
        return replies


def warm_up(predictor: PredictorLike) -> None:
    """Run one window through the model so that the first real request does not pay for lazy initialisation."""
    card = predictor.card
    n_channels, n_samples = int(card.n_channels), int(card.window_samples)
    predictor.predict(np.zeros((1, n_channels, n_samples), np.float32), np.ones((1, n_channels), bool), card.fs)


def load_for_serving(path: str) -> PredictorLike:
    """The default ``load_model`` loader: a checkpoint file (``weights_only=True``), warmed up, ONNX when current."""
    from pathlib import Path

    from models.predictor import load_predictor

    checkpoint = Path(path)
    if checkpoint.suffix != ".pt" or not checkpoint.is_file():
        raise ValueError(f"no checkpoint (.pt file) at {path}")
    predictor = load_predictor(checkpoint, backend="auto")
    warm_up(predictor)
    return predictor


def default_worker_name() -> str:
    return f"{socket_module.gethostname()}:{os.getpid()}"


def serve(
    predictor: PredictorLike,
    settings: WorkerSettings,
    stop: threading.Event | None = None,
    on_ready: Callable[[str], None] | None = None,
    context: zmq.Context | None = None,
    loader: ModelLoader | None = load_for_serving,
) -> Counter[str]:
    """Run the worker until ``stop`` is set. ``on_ready`` gets the bound (or connected) endpoint. Returns counts.

    ``loader`` enables ``load_model`` requests (None: they are refused); ``settings.control`` says who may make
    them and from which folders (None: every load_model and use_model is refused)."""
    stop = stop or threading.Event()
    context = context or zmq.Context.instance()
    handler = BatchHandler(predictor, default_worker_name(), settings.max_batch, loader, settings.delay_s,
                           settings.control)
    sock = context.socket(zmq.DEALER if settings.connect else zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, MAX_MESSAGE_BYTES)
    sock.setsockopt(zmq.RCVHWM, RECEIVE_QUEUE)
    sock.setsockopt(zmq.SNDHWM, 1000)
    authenticator = None
    try:
        if settings.connect:
            if settings.curve_client:
                secure_client(sock, settings.curve_client)
            sock.setsockopt(zmq.IMMEDIATE, 1)  # heartbeats are not queued for a broker that is not there
            sock.connect(settings.endpoint)
            ready_endpoint = settings.endpoint
        else:
            if settings.curve_server:
                authenticator = secure_server(sock, settings.curve_server)
            sock.bind(settings.endpoint)
            ready_endpoint = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        if on_ready:
            on_ready(ready_endpoint)
        _loop(sock, handler, settings, stop)
    finally:
        sock.close(0)
        if authenticator is not None:
            authenticator.stop()
    return handler.counts


def _loop(sock: zmq.Socket, handler: BatchHandler, settings: WorkerSettings, stop: threading.Event) -> None:
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)
    next_heartbeat = 0.0
    previous_arrival, previous_size = float("-inf"), 0
    clients: dict[bytes, float] = {}  # envelope identity -> its last arrival (monotonic)
    while not stop.is_set():
        for reply in handler.finish_loads():  # a model that finished loading takes over between two batches
            _send(sock, reply, handler)
        now = time.monotonic()
        if settings.connect and now >= next_heartbeat:
            # worker_ready is registration and heartbeat at once: a restarted broker learns of us within one beat.
            ready = protocol.encode_worker_ready(protocol.WorkerReady(
                handler.worker_name, handler.model_id, capacity=4 * handler.max_batch))
            _send(sock, [b"", *ready], handler)
            next_heartbeat = now + settings.heartbeat_s
        timeout_ms = max(1, int(1000 * min(0.1, next_heartbeat - now))) if settings.connect else 100
        if handler.loads_pending:  # look for the finished load often, so the switch is not held up by idle polls
            timeout_ms = min(timeout_ms, 5)
        if not poller.poll(timeout_ms):
            continue
        # Wait for companions only when traffic is dense (the previous batch was busy or recent): a lone bed
        # sending every 50 ms would otherwise pay the full wait on every window for nothing.
        now = time.monotonic()
        dense = traffic_is_dense(clients, now, previous_arrival, previous_size, settings.batch_wait_s)
        messages = _receive_batch(sock, poller, handler.max_batch, settings.batch_wait_s if dense else 0.0)
        previous_arrival, previous_size = now, len(messages)
        for frames in messages:
            if len(frames) >= 3 and frames[0]:  # a routed message (broker heartbeats carry no client)
                clients[bytes(frames[0])] = now
        if len(clients) > 64:  # identities of clients gone for good
            for identity in [key for key, seen in clients.items() if now - seen > CLIENTS_SEEN_S]:
                del clients[identity]
        for reply in handler.handle(messages):
            _send(sock, reply, handler)


def traffic_is_dense(clients: dict[bytes, float], now: float, previous_arrival: float, previous_size: int,
                     batch_wait_s: float) -> bool:
    """Whether a request arriving ``now`` is worth ``batch_wait_s`` of waiting for companions: the previous batch
    was busy or recent, and more than one client sent within ``CLIENTS_SEEN_S`` (``clients``: identity -> last
    arrival)."""
    recent = previous_size > 1 or now - previous_arrival < DENSE_TRAFFIC_FACTOR * batch_wait_s
    return recent and sum(1 for seen in clients.values() if now - seen < CLIENTS_SEEN_S) > 1


def _receive_batch(sock: zmq.Socket, poller: zmq.Poller, max_batch: int, wait_s: float) -> list[list[bytes]]:
    """All messages that arrive within ``wait_s`` of the first (at most a few batches' worth)."""
    messages = [sock.recv_multipart()]
    give_up = time.monotonic() + wait_s
    limit = 4 * max_batch  # heartbeats and errors ride along; the handler splits requests into max_batch groups
    while len(messages) < limit:
        try:
            messages.append(sock.recv_multipart(zmq.NOBLOCK))
            continue
        except zmq.Again:
            pass
        remaining_ms = (give_up - time.monotonic()) * 1000.0
        if remaining_ms <= 0 or not poller.poll(math.ceil(remaining_ms)):  # poll takes whole milliseconds
            break
    return messages


def _send(sock: zmq.Socket, frames: list[bytes | memoryview], handler: BatchHandler) -> None:
    try:
        sock.send_multipart(frames, zmq.NOBLOCK)
    except zmq.Again:
        handler.counts["dropped_send_queue_full"] += 1  # a peer that does not read its replies
    except zmq.ZMQError as error:  # e.g. an identity that has just disconnected
        handler.counts["dropped_send_error"] += 1
        log.debug("reply not sent: %s", error)
