"""The inference wire format, shared by client, worker and broker (specified in docs/protocol.md).

A message is a ZeroMQ multipart: one small UTF-8 JSON header frame, then raw little-endian float32 payload frames.
Nothing is pickled. Every decoder validates strictly and raises ``ProtocolError`` (with a machine-readable code)
instead of letting bad input reach numpy or the model, so a peer can answer with an error reply and carry on.
Routing envelopes (ROUTER identities and the empty delimiter frame) are not part of the message: use
``split_envelope`` first.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

PROTOCOL_VERSION = 1
WIRE_DTYPE = "<f4"  # the only payload dtype accepted: float32, little-endian
MAX_HEADER_BYTES = 64 * 1024
MAX_FRAMES = 4  # header + at most three payload frames (a result carries two)
MAX_CHANNELS = 512
MAX_SAMPLES = 16_384
MAX_PAYLOAD_BYTES = 8 * 1024 * 1024  # 256 ch x 8192 samples; workers also set ZMQ_MAXMSGSIZE near this
MAX_CLASSES = 64
MAX_TEXT = 256  # ids, labels, model ids
MAX_PATH = 4096  # checkpoint paths in load_model
MAX_LOADED_MODELS = 8  # models a worker keeps loaded for switching back
MAX_ENVELOPE_FRAMES = 4  # client identity, optionally a broker's worker identity, delimiter

KIND_REQUEST = "infer"
KIND_RESULT = "result"
KIND_ERROR = "error"
KIND_PING = "ping"
KIND_PONG = "pong"
KIND_WORKER_READY = "worker_ready"  # worker -> broker: registration and heartbeat in one
KIND_BROKER_HEARTBEAT = "broker_heartbeat"  # broker -> worker: "I am still here"
KIND_LOAD_MODEL = "load_model"  # client -> worker: load a checkpoint beside the running model and switch to it
KIND_USE_MODEL = "use_model"  # client -> worker: switch to a model already loaded (switching back)
KIND_MODEL_LOADED = "model_loaded"  # worker -> client: the switch happened; which model now answers
KINDS = (KIND_REQUEST, KIND_RESULT, KIND_ERROR, KIND_PING, KIND_PONG, KIND_WORKER_READY, KIND_BROKER_HEARTBEAT,
         KIND_LOAD_MODEL, KIND_USE_MODEL, KIND_MODEL_LOADED)

# Error codes carried in error replies (and used as counter names by the peers).
BAD_FRAMES = "bad_frames"
BAD_HEADER = "bad_header"
BAD_VERSION = "bad_version"
BAD_KIND = "bad_kind"
BAD_FIELD = "bad_field"
BAD_DTYPE = "bad_dtype"
BAD_SHAPE = "bad_shape"
TOO_LARGE = "too_large"
NOT_FINITE = "not_finite"
MODEL_MISMATCH = "model_mismatch"
MODEL_REJECTED = "model_rejected"
NO_WORKER = "no_worker"
BAD_MODEL = "bad_model"  # load_model: unreadable checkpoint, or one that does not fit the running model's inputs
UNKNOWN_MODEL = "unknown_model"  # use_model: no model of that id is loaded
UNAUTHORIZED = "unauthorized"  # load_model/use_model without the control token (and without CURVE)
MODEL_NOT_ALLOWED = "model_not_allowed"  # load_model: a checkpoint outside the worker's allowed model folders
INTERNAL = "internal"


class ProtocolError(ValueError):
    """A message that breaks the protocol. ``request_id`` is set when the header got far enough to name one."""

    def __init__(self, code: str, message: str, request_id: str | None = None) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.detail = message
        self.request_id = request_id


def new_request_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class InferenceRequest:
    request_id: str
    bed_id: str
    sequence: int
    last_timestamp: float  # LSL time of the window's last sample, echoed in the result
    fs: float
    window: np.ndarray  # (C, S) float32
    channel_mask: np.ndarray  # (C,) bool, True = channel usable
    model_id: str | None = None  # None = whatever the worker runs


@dataclass(frozen=True)
class InferenceResult:
    request_id: str
    bed_id: str
    sequence: int
    last_timestamp: float
    model_id: str
    classes: tuple[str, ...]
    label: str
    probabilities: np.ndarray  # (K,) float32
    channel_attention: np.ndarray  # (C,) float32
    worker_ms: float  # time the worker spent on the batch this request was in
    batch_size: int


@dataclass(frozen=True)
class ErrorReply:
    request_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class Ping:
    request_id: str


@dataclass(frozen=True)
class Pong:
    request_id: str
    role: str  # "worker" or "broker"
    model_id: str | None
    workers: int  # workers able to answer behind this endpoint (1 for a worker itself)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WorkerReady:
    worker_name: str
    model_id: str
    capacity: int  # requests the worker is willing to have in flight


@dataclass(frozen=True)
class BrokerHeartbeat:
    pass


@dataclass(frozen=True)
class LoadModel:
    request_id: str
    path: str  # an absolute checkpoint (.pt) path inside the worker's allowed model folders (weights_only=True)
    token: str | None = None  # the control token; None where CURVE authenticates the peer


@dataclass(frozen=True)
class UseModel:
    request_id: str
    model_id: str
    token: str | None = None  # as in LoadModel


@dataclass(frozen=True)
class ModelLoaded:
    request_id: str
    model_id: str  # the model answering from now on
    previous_model_id: str  # the one it replaced (still loaded)
    loaded: tuple[str, ...]  # every model id the worker holds, oldest first


Message = (InferenceRequest | InferenceResult | ErrorReply | Ping | Pong | WorkerReady | BrokerHeartbeat | LoadModel
           | UseModel | ModelLoaded)


# ---------------------------------------------------------------- envelopes


def split_envelope(frames: list[bytes]) -> tuple[list[bytes], list[bytes]]:
    """Split ``[identity..., b"", header, payload...]`` into (envelope incl. delimiter, message frames).

    Raises ProtocolError when no delimiter appears within the first few frames (the sender is not speaking
    this protocol; such a message is dropped and counted, there is nowhere sensible to reply).
    """
    for index, frame in enumerate(frames[: MAX_ENVELOPE_FRAMES + 1]):
        if len(frame) == 0:
            return list(frames[: index + 1]), list(frames[index + 1 :])
    raise ProtocolError(BAD_FRAMES, "no envelope delimiter")


# ---------------------------------------------------------------- encoding


def _header(kind: str, **fields: Any) -> bytes:
    return json.dumps({"v": PROTOCOL_VERSION, "kind": kind, **fields}, separators=(",", ":"), allow_nan=False).encode()


def _f32_frame(array: np.ndarray) -> memoryview:
    return memoryview(np.ascontiguousarray(array, dtype=WIRE_DTYPE)).cast("B")


def encode_request(request: InferenceRequest) -> list[bytes | memoryview]:
    window = np.asarray(request.window)
    if window.ndim != 2:
        raise ValueError(f"window must be (channels, samples), got shape {window.shape}")
    mask = np.asarray(request.channel_mask, dtype=bool).reshape(-1)
    if mask.shape[0] != window.shape[0]:
        raise ValueError(f"channel mask has {mask.shape[0]} entries for {window.shape[0]} channels")
    header = _header(
        KIND_REQUEST,
        id=request.request_id,
        bed=request.bed_id,
        seq=int(request.sequence),
        t_last=float(request.last_timestamp),
        fs=float(request.fs),
        shape=[int(window.shape[0]), int(window.shape[1])],
        dtype=WIRE_DTYPE,
        mask="".join("1" if used else "0" for used in mask),
        model=request.model_id,
    )
    return [header, _f32_frame(window)]


def encode_result(result: InferenceResult) -> list[bytes | memoryview]:
    header = _header(
        KIND_RESULT,
        id=result.request_id,
        bed=result.bed_id,
        seq=int(result.sequence),
        t_last=float(result.last_timestamp),
        model=result.model_id,
        classes=list(result.classes),
        label=result.label,
        dtype=WIRE_DTYPE,
        n_classes=int(np.size(result.probabilities)),
        n_channels=int(np.size(result.channel_attention)),
        worker_ms=float(result.worker_ms),
        batch=int(result.batch_size),
    )
    return [header, _f32_frame(result.probabilities), _f32_frame(result.channel_attention)]


def encode_error(error: ErrorReply) -> list[bytes]:
    return [_header(KIND_ERROR, id=error.request_id, code=error.code, message=error.message[:1000])]


def encode_ping(ping: Ping) -> list[bytes]:
    return [_header(KIND_PING, id=ping.request_id)]


def encode_pong(pong: Pong) -> list[bytes]:
    return [_header(KIND_PONG, id=pong.request_id, role=pong.role, model=pong.model_id, workers=pong.workers,
                    info=pong.info)]


def encode_worker_ready(ready: WorkerReady) -> list[bytes]:
    return [_header(KIND_WORKER_READY, worker=ready.worker_name, model=ready.model_id, capacity=ready.capacity)]


def encode_broker_heartbeat() -> list[bytes]:
    return [_header(KIND_BROKER_HEARTBEAT)]


def _token_field(token: str | None) -> dict[str, str]:
    return {} if token is None else {"token": token}


def encode_load_model(message: LoadModel) -> list[bytes]:
    return [_header(KIND_LOAD_MODEL, id=message.request_id, path=message.path, **_token_field(message.token))]


def encode_use_model(message: UseModel) -> list[bytes]:
    return [_header(KIND_USE_MODEL, id=message.request_id, model=message.model_id, **_token_field(message.token))]


def encode_model_loaded(message: ModelLoaded) -> list[bytes]:
    return [_header(KIND_MODEL_LOADED, id=message.request_id, model=message.model_id,
                    previous=message.previous_model_id, loaded=list(message.loaded))]


def encode(message: Message) -> list[bytes | memoryview]:
    encoders = {
        InferenceRequest: encode_request,
        InferenceResult: encode_result,
        ErrorReply: encode_error,
        Ping: encode_ping,
        Pong: encode_pong,
        WorkerReady: encode_worker_ready,
        LoadModel: encode_load_model,
        UseModel: encode_use_model,
        ModelLoaded: encode_model_loaded,
    }
    if isinstance(message, BrokerHeartbeat):
        return encode_broker_heartbeat()
    return encoders[type(message)](message)


# ---------------------------------------------------------------- decoding


def parse_header(frames: list[bytes]) -> dict[str, Any]:
    """Check frame count, size, JSON shape and version; return the header dict."""
    if not frames or len(frames) > MAX_FRAMES:
        raise ProtocolError(BAD_FRAMES, f"expected 1 to {MAX_FRAMES} frames, got {len(frames)}")
    raw = bytes(frames[0])
    if len(raw) > MAX_HEADER_BYTES:
        raise ProtocolError(TOO_LARGE, f"header of {len(raw)} bytes exceeds {MAX_HEADER_BYTES}")
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ProtocolError(BAD_HEADER, f"header is not JSON: {str(error)[:80]}") from None
    if not isinstance(header, dict):
        raise ProtocolError(BAD_HEADER, "header must be a JSON object")
    request_id = header.get("id") if _is_short_text(header.get("id")) else None
    version = header.get("v")
    if version != PROTOCOL_VERSION or isinstance(version, bool):
        raise ProtocolError(BAD_VERSION, f"protocol version {version!r} not supported (this is {PROTOCOL_VERSION})",
                            request_id)
    if header.get("kind") not in KINDS:
        raise ProtocolError(BAD_KIND, f"unknown message kind {str(header.get('kind'))[:40]!r}", request_id)
    return header


def decode(frames: list[bytes], accept: tuple[str, ...] = KINDS) -> Message:
    """Decode and validate one message (envelope already removed); kinds outside ``accept`` are refused."""
    header = parse_header(frames)
    if header["kind"] not in accept:
        request_id = header.get("id") if _is_short_text(header.get("id")) else None
        raise ProtocolError(BAD_KIND, f"{header['kind']!r} is not accepted here (only {', '.join(accept)})",
                            request_id)
    decoder = _DECODERS[header["kind"]]
    return decoder(header, frames)


def _is_short_text(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_TEXT


def _text(header: dict, key: str, request_id: str | None, optional: bool = False) -> str | None:
    value = header.get(key)
    if value is None and optional:
        return None
    if not _is_short_text(value):
        raise ProtocolError(BAD_FIELD, f"{key!r} must be a non-empty string of at most {MAX_TEXT} characters",
                            request_id)
    return value


def _integer(header: dict, key: str, request_id: str | None, minimum: int, maximum: int) -> int:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ProtocolError(BAD_FIELD, f"{key!r} must be an integer in [{minimum}, {maximum}]", request_id)
    return value


def _number(header: dict, key: str, request_id: str | None, positive: bool = False) -> float:
    value = header.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ProtocolError(BAD_FIELD, f"{key!r} must be a finite number", request_id)
    if positive and value <= 0:
        raise ProtocolError(BAD_FIELD, f"{key!r} must be positive", request_id)
    return float(value)


def _dtype(header: dict, request_id: str | None) -> None:
    if header.get("dtype") != WIRE_DTYPE:
        raise ProtocolError(BAD_DTYPE, f"dtype must be {WIRE_DTYPE!r}, got {str(header.get('dtype'))[:20]!r}",
                            request_id)


def _payload(frames: list[bytes], index: int, count: int, request_id: str | None, what: str) -> np.ndarray:
    """Frame ``index`` as ``count`` finite float32 values (a read-only view, no copy)."""
    expected = count * 4
    actual = len(frames[index])
    if actual != expected:
        raise ProtocolError(BAD_SHAPE, f"{what} frame has {actual} bytes, shape needs {expected}", request_id)
    values = np.frombuffer(frames[index], dtype=WIRE_DTYPE)
    if not np.isfinite(values).all():
        raise ProtocolError(NOT_FINITE, f"{what} contains NaN or infinity", request_id)
    return values


def _decode_request(header: dict, frames: list[bytes]) -> InferenceRequest:
    request_id = _text(header, "id", None)
    if len(frames) != 2:
        raise ProtocolError(BAD_FRAMES, f"a request has a header and one payload frame, got {len(frames)} frames",
                            request_id)
    bed_id = _text(header, "bed", request_id)
    sequence = _integer(header, "seq", request_id, 0, 2**63 - 1)
    last_timestamp = _number(header, "t_last", request_id)
    fs = _number(header, "fs", request_id, positive=True)
    if fs > 1e6:
        raise ProtocolError(BAD_FIELD, "'fs' above 1 MHz", request_id)
    _dtype(header, request_id)
    shape = header.get("shape")
    if (not isinstance(shape, list) or len(shape) != 2
            or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in shape)):
        raise ProtocolError(BAD_SHAPE, "'shape' must be [channels, samples], both positive integers", request_id)
    n_channels, n_samples = shape
    if n_channels > MAX_CHANNELS or n_samples > MAX_SAMPLES or n_channels * n_samples * 4 > MAX_PAYLOAD_BYTES:
        raise ProtocolError(TOO_LARGE, f"shape {n_channels} x {n_samples} exceeds the limits "
                            f"({MAX_CHANNELS} channels, {MAX_SAMPLES} samples, {MAX_PAYLOAD_BYTES} bytes)",
                            request_id)
    mask_text = header.get("mask")
    if not isinstance(mask_text, str) or len(mask_text) != n_channels or set(mask_text) - {"0", "1"}:
        raise ProtocolError(BAD_FIELD, f"'mask' must be a string of {n_channels} '0'/'1' characters", request_id)
    channel_mask = np.frombuffer(mask_text.encode("ascii"), dtype=np.uint8) == ord("1")
    model_id = _text(header, "model", request_id, optional=True)
    window = _payload(frames, 1, n_channels * n_samples, request_id, "window").reshape(n_channels, n_samples)
    return InferenceRequest(request_id, bed_id, sequence, last_timestamp, fs, window, channel_mask, model_id)


def _decode_result(header: dict, frames: list[bytes]) -> InferenceResult:
    request_id = _text(header, "id", None)
    if len(frames) != 3:
        raise ProtocolError(BAD_FRAMES, f"a result has a header and two payload frames, got {len(frames)}",
                            request_id)
    _dtype(header, request_id)
    classes = header.get("classes")
    n_classes = _integer(header, "n_classes", request_id, 1, MAX_CLASSES)
    n_channels = _integer(header, "n_channels", request_id, 1, MAX_CHANNELS)
    if not isinstance(classes, list) or len(classes) != n_classes or not all(_is_short_text(c) for c in classes):
        raise ProtocolError(BAD_FIELD, "'classes' must list one name per probability", request_id)
    label = _text(header, "label", request_id)
    if label not in classes:
        raise ProtocolError(BAD_FIELD, f"label {label!r} is not one of the classes", request_id)
    return InferenceResult(
        request_id=request_id,
        bed_id=_text(header, "bed", request_id),
        sequence=_integer(header, "seq", request_id, 0, 2**63 - 1),
        last_timestamp=_number(header, "t_last", request_id),
        model_id=_text(header, "model", request_id),
        classes=tuple(classes),
        label=label,
        probabilities=_payload(frames, 1, n_classes, request_id, "probabilities"),
        channel_attention=_payload(frames, 2, n_channels, request_id, "attention"),
        worker_ms=_number(header, "worker_ms", request_id),
        batch_size=_integer(header, "batch", request_id, 1, 1_000_000),
    )


def _decode_error(header: dict, frames: list[bytes]) -> ErrorReply:
    request_id = _text(header, "id", None, optional=True)
    code = _text(header, "code", request_id)
    message = header.get("message")
    if not isinstance(message, str):
        raise ProtocolError(BAD_FIELD, "'message' must be a string", request_id)
    return ErrorReply(request_id, code, message[:1000])


def _decode_ping(header: dict, frames: list[bytes]) -> Ping:
    return Ping(_text(header, "id", None))


def _decode_pong(header: dict, frames: list[bytes]) -> Pong:
    request_id = _text(header, "id", None)
    role = header.get("role")
    if role not in ("worker", "broker"):
        raise ProtocolError(BAD_FIELD, "'role' must be 'worker' or 'broker'", request_id)
    info = header.get("info", {})
    if not isinstance(info, dict):
        raise ProtocolError(BAD_FIELD, "'info' must be an object", request_id)
    return Pong(request_id, role, _text(header, "model", request_id, optional=True),
                _integer(header, "workers", request_id, 0, 1_000_000), info)


def _decode_worker_ready(header: dict, frames: list[bytes]) -> WorkerReady:
    return WorkerReady(_text(header, "worker", None), _text(header, "model", None),
                       _integer(header, "capacity", None, 1, 100_000))


def _decode_broker_heartbeat(header: dict, frames: list[bytes]) -> BrokerHeartbeat:
    return BrokerHeartbeat()


def _single_frame(frames: list[bytes], request_id: str | None) -> None:
    if len(frames) != 1:
        raise ProtocolError(BAD_FRAMES, f"this kind has a header frame only, got {len(frames)} frames", request_id)


def _decode_load_model(header: dict, frames: list[bytes]) -> LoadModel:
    request_id = _text(header, "id", None)
    _single_frame(frames, request_id)
    path = header.get("path")
    if not isinstance(path, str) or not 0 < len(path) <= MAX_PATH or "\x00" in path:
        raise ProtocolError(BAD_FIELD, f"'path' must be a non-empty string of at most {MAX_PATH} characters",
                            request_id)
    return LoadModel(request_id, path, _text(header, "token", request_id, optional=True))


def _decode_use_model(header: dict, frames: list[bytes]) -> UseModel:
    request_id = _text(header, "id", None)
    _single_frame(frames, request_id)
    return UseModel(request_id, _text(header, "model", request_id), _text(header, "token", request_id,
                                                                            optional=True))


def _decode_model_loaded(header: dict, frames: list[bytes]) -> ModelLoaded:
    request_id = _text(header, "id", None)
    _single_frame(frames, request_id)
    loaded = header.get("loaded")
    if (not isinstance(loaded, list) or not 0 < len(loaded) <= MAX_LOADED_MODELS
            or not all(_is_short_text(item) for item in loaded)):
        raise ProtocolError(BAD_FIELD, f"'loaded' must list 1 to {MAX_LOADED_MODELS} model ids", request_id)
    return ModelLoaded(request_id, _text(header, "model", request_id), _text(header, "previous", request_id),
                       tuple(loaded))


_DECODERS = {
    KIND_REQUEST: _decode_request,
    KIND_RESULT: _decode_result,
    KIND_ERROR: _decode_error,
    KIND_PING: _decode_ping,
    KIND_PONG: _decode_pong,
    KIND_WORKER_READY: _decode_worker_ready,
    KIND_BROKER_HEARTBEAT: _decode_broker_heartbeat,
    KIND_LOAD_MODEL: _decode_load_model,
    KIND_USE_MODEL: _decode_use_model,
    KIND_MODEL_LOADED: _decode_model_loaded,
}
