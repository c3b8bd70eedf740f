"""What a cohort is made of: a folder, a glob pattern or a manifest CSV, each turned into ``CohortItem``s."""

from __future__ import annotations

import csv
import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.errors import UserError
from monitor.recordings.base import is_recording_file, recording_stem

# per-recording columns a manifest may add; each becomes the analyze option of the same name for that recording
MANIFEST_OPTIONS = {"fs": float, "muscle": str, "age": float}
MANIFEST_CARRIED = ("patient", "label", "side", "site")


@dataclass(frozen=True)
class CohortItem:
    path: Path
    relative: Path  # where its report goes under the cohort folder (suffixes dropped)
    options: dict[str, Any] = field(default_factory=dict)  # per-recording analyze options (fs, muscle, age)
    carried: dict[str, str] = field(default_factory=dict)  # manifest columns copied into its row (patient, label)


def is_cohort_target(names: list[str]) -> bool:
    """A single folder, glob pattern or manifest CSV (several files on the command line are one muscle's pool)."""
    if len(names) != 1:
        return False
    path = Path(names[0])
    if path.is_dir():
        return True
    if not path.exists() and glob.has_magic(names[0]):
        return True
    return path.is_file() and path.suffix.lower() == ".csv" and is_manifest(path)


def is_manifest(path: Path) -> bool:
    """A CSV whose header names a ``file`` column lists recordings; any other CSV is a recording."""
    try:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "file" in [name.strip().lower() for name in header]


def _relative_report_path(path: Path, root: Path) -> Path:
    relative = path.relative_to(root) if path.is_relative_to(root) else Path(path.name)
    return relative.parent / recording_stem(path)


def collect(target: str) -> list[CohortItem]:
    """The recordings of a folder (recursively), a glob pattern or a manifest, sorted by path."""
    path = Path(target)
    if path.is_dir() and is_manifest(path / "manifest.csv"):
        items = _read_manifest(path / "manifest.csv")
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if is_recording_file(p) and p.stem.lower() != "manifest")
        items = [_named_item(p, path) for p in files]
    elif path.is_file() and is_manifest(path):
        items = _read_manifest(path)
    else:
        files = sorted(Path(p) for p in glob.glob(target, recursive=True) if is_recording_file(Path(p)))
        root = Path(_glob_root(target))
        items = [_named_item(p, root) for p in files]
    if not items:
        raise UserError(f"{target}: no recordings found (a file a reader knows, compressed or not: docs/formats.md)")
    _refuse_clashing_reports(items, target)
    return items


def _named_item(path: Path, root: Path) -> CohortItem:
    """An item; a file named like the shared clinical needle set also carries its person, class and muscle."""
    from models.needle_corpus import parse_shared_name

    info = parse_shared_name(path)
    if info is None:
        return CohortItem(path, _relative_report_path(path, root))
    return CohortItem(path, _relative_report_path(path, root), {"muscle": info.muscle},
                      {"patient": info.patient, "label": info.label, "side": info.side})


def _glob_root(pattern: str) -> str:
    """The part of a glob pattern before its first wildcard (reports keep the folders after it)."""
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next(i for i, p in enumerate(parts) if glob.has_magic(p))]]
    return str(Path(*fixed)) if fixed else "."


def _read_manifest(manifest: Path) -> list[CohortItem]:
    from models.needle_corpus import manifest_rows

    items = []
    for line, row in enumerate(manifest_rows(manifest), start=2):
        path = (manifest.parent / row["file"]).resolve()
        if not path.is_file():
            raise UserError(f"{manifest.name}, line {line}: {row['file']} not found")
        options = {}
        for name, kind in MANIFEST_OPTIONS.items():
            if row.get(name):
                try:
                    options[name] = kind(row[name])
                except ValueError:
                    raise UserError(f"{manifest.name}, line {line}: {name} {row[name]!r} is not a number") from None
        carried = {name: row[name] for name in MANIFEST_CARRIED if row.get(name)}
        items.append(CohortItem(path, _relative_report_path(path, manifest.parent.resolve()), options, carried))
    return items


def _refuse_clashing_reports(items: list[CohortItem], target: str) -> None:
    seen: dict[Path, Path] = {}
    for item in items:
        if item.relative in seen:
            raise UserError(f"{target}: {item.path.name} and {seen[item.relative].name} would share the report folder "
                            f"{item.relative} (same name with another extension); analyse them separately")
        seen[item.relative] = item.path
