"""A minimal XDF 1.0 writer for tests (chunk layout per the XDF specification), independent of the reader."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np


@dataclass
class XdfStream:
    name: str
    stream_type: str
    nominal_srate: float
    timestamps: np.ndarray
    values: np.ndarray | list[str]  # (n, C) numeric, or one string per sample
    channel_labels: list[str] = field(default_factory=list)
    channel_units: list[str] = field(default_factory=list)
    layout_json: str | None = None
    channel_types: list[str] = field(default_factory=list)  # default: every channel EMG


def _varlen(value: int) -> bytes:
    if value < 256:
        return struct.pack("<BB", 1, value)
    if value < 2**32:
        return struct.pack("<BI", 4, value)
    return struct.pack("<BQ", 8, value)


def _chunk(tag: int, content: bytes) -> bytes:
    return _varlen(len(content) + 2) + struct.pack("<H", tag) + content


def _header_xml(stream: XdfStream) -> bytes:
    is_string = isinstance(stream.values, list)
    n_channels = 1 if is_string else np.asarray(stream.values).shape[1]
    types = stream.channel_types or ["EMG"] * len(stream.channel_labels)
    channels = "".join(
        f"<channel><label>{escape(label)}</label><unit>{escape(unit)}</unit><type>{escape(kind)}</type></channel>"
        for label, unit, kind in zip(stream.channel_labels, stream.channel_units, types, strict=True)
    )
    layout = f"<layout>{escape(stream.layout_json)}</layout>" if stream.layout_json else ""
    return (
        '<?xml version="1.0"?><info>'
        f"<name>{escape(stream.name)}</name><type>{escape(stream.stream_type)}</type>"
        f"<channel_count>{n_channels}</channel_count><nominal_srate>{stream.nominal_srate}</nominal_srate>"
        f"<channel_format>{'string' if is_string else 'float32'}</channel_format>"
        f"<created_at>0</created_at><desc><channels>{channels}</channels>{layout}</desc></info>"
    ).encode()


def _samples(stream_id: int, stream: XdfStream, start: int, stop: int) -> bytes:
    body = bytearray(struct.pack("<I", stream_id) + _varlen(stop - start))
    for index in range(start, stop):
        body += struct.pack("<Bd", 8, float(stream.timestamps[index]))
        if isinstance(stream.values, list):
            text = stream.values[index].encode()
            body += _varlen(len(text)) + text
        else:
            body += np.asarray(stream.values[index], dtype="<f4").tobytes()
    return _chunk(3, bytes(body))


def write_xdf(path: Path, streams: list[XdfStream], chunk_samples: int = 256) -> Path:
    """Writes header, stream headers, interleaved sample chunks, clock offsets and footers, as LabRecorder does."""
    out = bytearray(b"XDF:")
    out += _chunk(1, b'<?xml version="1.0"?><info><version>1.0</version></info>')
    for stream_id, stream in enumerate(streams, start=1):
        out += _chunk(2, struct.pack("<I", stream_id) + _header_xml(stream))
    longest = max(len(stream.timestamps) for stream in streams)
    for start in range(0, longest, chunk_samples):
        for stream_id, stream in enumerate(streams, start=1):
            stop = min(start + chunk_samples, len(stream.timestamps))
            if start < stop:
                out += _samples(stream_id, stream, start, stop)
    for stream_id, stream in enumerate(streams, start=1):
        # two zero clock offsets: the streams already share one clock
        for collection_time in (float(stream.timestamps[0]), float(stream.timestamps[-1])):
            out += _chunk(4, struct.pack("<Idd", stream_id, collection_time, 0.0))
        footer = (
            f'<?xml version="1.0"?><info><first_timestamp>{stream.timestamps[0]}</first_timestamp>'
            f"<last_timestamp>{stream.timestamps[-1]}</last_timestamp>"
            f"<sample_count>{len(stream.timestamps)}</sample_count></info>"
        )
        out += _chunk(6, struct.pack("<I", stream_id) + footer.encode())
    path.write_bytes(bytes(out))
    return path
