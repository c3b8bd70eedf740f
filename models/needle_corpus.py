"""The needle recordings of a study and who they belong to: from a manifest CSV, or from the file names.

A manifest (``manifest.csv`` in the folder, or given) has the columns ``file, patient, label, muscle`` and
optionally ``side``, ``fs``, ``age``; ``file`` is relative to the manifest. Without one, the file names of the
shared clinical set are parsed (``EMG _<recording> _<patient>_ <side><muscle>_<Hea|Myo|Neu>.asc[.xz]``): its
patient numbers count within each class, so a person is ``(class, number)``, and both muscle folders hold the same
people. Its rate (32768 Hz) is in its README, not in the files.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

from monitor.errors import UserError

LABELS = ("healthy", "myopathy", "neuropathy")
SHARED_SET_FS = 32768.0

_CLASS_CODES = {"hea": "healthy", "myo": "myopathy", "neu": "neuropathy"}
_MUSCLE_CODES = {"b": "biceps", "d": "deltoid"}
_SHARED_NAME = re.compile(r"EMG\s*_(\d+)\s*_(\d+)_\s*([LR])([BD])_(Hea|Myo|Neu)\.asc(\.xz|\.gz)?$", re.IGNORECASE)


@dataclass(frozen=True)
class NeedleRecordingInfo:
    path: Path
    patient: str
    label: str
    muscle: str
    side: str = ""
    fs: float | None = None
    age: float | None = None

    @property
    def label_index(self) -> int:
        return LABELS.index(self.label)

    @property
    def person_muscle(self) -> tuple[str, str]:
        return self.patient, self.muscle


def parse_shared_name(path: Path) -> NeedleRecordingInfo | None:
    """The shared set's naming, or None for a file named otherwise."""
    match = _SHARED_NAME.search(path.name)
    if match is None:
        return None
    _recording, number, side, muscle, code, _compression = match.groups()
    label = _CLASS_CODES[code.lower()]
    return NeedleRecordingInfo(
        path=path,
        patient=f"{label}-{int(number)}",
        label=label,
        muscle=_MUSCLE_CODES[muscle.lower()],
        side={"l": "left", "r": "right"}[side.lower()],
        fs=SHARED_SET_FS,
    )


def manifest_rows(manifest: Path) -> list[dict[str, str]]:
    """A manifest's rows, column names lower-cased and every value stripped (one-line UserError if unreadable)."""
    try:
        with manifest.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"{manifest.name}: cannot read the manifest ({error})") from None
    return [{(key or "").strip().lower(): (value or "").strip() for key, value in row.items()} for row in rows]


def read_manifest(manifest: Path) -> list[NeedleRecordingInfo]:
    rows = manifest_rows(manifest)
    required = {"file", "patient", "label", "muscle"}
    if not rows or not required <= set(rows[0]):
        raise UserError(f"{manifest.name}: a manifest needs the columns {', '.join(sorted(required))}")
    infos = []
    for line, row in enumerate(rows, start=2):
        label = row["label"].strip().lower()
        if label not in LABELS:
            raise UserError(f"{manifest.name}, line {line}: label {row['label']!r} is not one of {', '.join(LABELS)}")
        path = (manifest.parent / row["file"].strip()).resolve()
        if not path.exists():
            raise UserError(f"{manifest.name}, line {line}: {row['file']} not found")
        infos.append(NeedleRecordingInfo(
            path=path, patient=row["patient"].strip(), label=label, muscle=row["muscle"].strip().lower(),
            side=(row.get("side") or "").strip().lower(),
            fs=float(row["fs"]) if (row.get("fs") or "").strip() else None,
            age=float(row["age"]) if (row.get("age") or "").strip() else None,
        ))
    return infos


def scan(source: str | Path) -> list[NeedleRecordingInfo]:
    """Every labelled needle recording of a folder (or of a manifest CSV), sorted by path."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() == ".csv":
        return read_manifest(source)
    if not source.is_dir():
        raise UserError(f"needle data not found: {source} (a folder of recordings or a manifest .csv)")
    if (source / "manifest.csv").is_file():
        return read_manifest(source / "manifest.csv")
    infos = [info for path in sorted(source.rglob("*")) if path.is_file() and (info := parse_shared_name(path))]
    if not infos:
        raise UserError(f"{source}: no manifest.csv and no recording named like the shared clinical set")
    return infos
