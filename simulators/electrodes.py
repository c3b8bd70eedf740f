"""Electrode layouts: where each channel sits, published in the stream description so the GNN can build its graph.

Coordinates (``coordinates`` field says which):
- ``"cross_section"`` (ring): x/y in mm on the forearm's cross-section, origin at the limb axis, so Euclidean
  distance between electrodes is the chord across the arm and neighbours wrap around naturally.
- ``"skin"`` (grid, needle, custom): x/y in mm on the unrolled skin surface; for grids x runs along columns and
  y along rows (rows follow the muscle fibres, as on OT Bioelettronica grids).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

FOREARM_CIRCUMFERENCE_MM = 260.0
KINDS = ("ring", "grid", "needle", "custom")
COORDINATE_SYSTEMS = ("cross_section", "skin")


@dataclass(frozen=True, eq=False)
class ElectrodeLayout:
    """Positions and labels of the recording electrodes; immutable, JSON round-trippable."""

    kind: str
    positions_mm: np.ndarray
    labels: tuple[str, ...]
    rows: int | None = None
    cols: int | None = None
    spacing_mm: float | None = None
    coordinates: str = "skin"
    grid_index: tuple[tuple[int, int], ...] = field(default=())

    def __post_init__(self) -> None:
        positions = np.asarray(self.positions_mm, dtype=np.float64).reshape(-1, 2)
        positions.setflags(write=False)
        object.__setattr__(self, "positions_mm", positions)
        object.__setattr__(self, "labels", tuple(str(label) for label in self.labels))
        object.__setattr__(self, "grid_index", tuple((int(r), int(c)) for r, c in self.grid_index))
        if self.kind not in KINDS:
            raise ValueError(f"electrode layout kind must be one of {KINDS}, not {self.kind!r}")
        if self.coordinates not in COORDINATE_SYSTEMS:
            raise ValueError(f"coordinates must be one of {COORDINATE_SYSTEMS}, not {self.coordinates!r}")
        if len(self.labels) != positions.shape[0] or positions.shape[0] == 0:
            raise ValueError(f"layout needs one label per position: {len(self.labels)} labels, {len(positions)} points")
        if len(set(self.labels)) != len(self.labels):
            raise ValueError("electrode labels must be unique")
        if self.grid_index and len(self.grid_index) != len(self.labels):
            raise ValueError("grid_index needs one (row, col) per channel")

    @property
    def n_channels(self) -> int:
        return len(self.labels)

    @classmethod
    def ring(cls, n: int = 8, circumference_mm: float = FOREARM_CIRCUMFERENCE_MM) -> ElectrodeLayout:
        """``n`` electrodes evenly around a forearm (Myo-like); channel 1 at angle 0, counter-clockwise."""
        if n < 1:
            raise ValueError(f"a ring needs at least one electrode, not {n}")
        radius = circumference_mm / (2.0 * math.pi)
        angles = 2.0 * math.pi * np.arange(n) / n
        positions = np.column_stack([radius * np.cos(angles), radius * np.sin(angles)])
        labels = tuple(f"E{i + 1:02d}" for i in range(n))
        spacing = circumference_mm / n
        return cls("ring", positions, labels, spacing_mm=spacing, coordinates="cross_section")

    @classmethod
    def grid(
        cls,
        rows: int,
        cols: int,
        spacing_mm: float = 8.0,
        omit: tuple[tuple[int, int], ...] = (),
    ) -> ElectrodeLayout:
        """A rows x cols HD grid, row-major, labels ``R01C01``; ``omit`` drops (row, col) positions (0-based)."""
        if rows < 1 or cols < 1 or spacing_mm <= 0:
            raise ValueError(f"a grid needs positive rows, cols and spacing, not {rows}x{cols} at {spacing_mm} mm")
        skipped = {(int(r), int(c)) for r, c in omit}
        index = [(r, c) for r in range(rows) for c in range(cols) if (r, c) not in skipped]
        positions = np.array([(c * spacing_mm, r * spacing_mm) for r, c in index], dtype=np.float64)
        labels = tuple(f"R{r + 1:02d}C{c + 1:02d}" for r, c in index)
        return cls(
            "grid", positions, labels, rows=rows, cols=cols, spacing_mm=float(spacing_mm), grid_index=tuple(index)
        )

    @classmethod
    def needle(cls, position_mm: tuple[float, float] = (0.0, 0.0)) -> ElectrodeLayout:
        """One concentric needle electrode: a single channel with its tip at ``position_mm`` in the muscle's
        cross-section (origin: its centre). Moving the tip with the same seed samples other units of the same
        subject, as an examiner does between sites."""
        x, y = (float(v) for v in position_mm)
        if not (math.isfinite(x) and math.isfinite(y)):
            raise ValueError(f"needle position must be finite, not {position_mm}")
        return cls("needle", np.array([[x, y]]), ("needle",))

    @classmethod
    def from_name(cls, name: str) -> ElectrodeLayout:
        """``ring<N>`` (e.g. ring8), ``grid<R>x<C>`` (e.g. grid8x8), ``grid13x5`` or ``needle``.

        ``grid13x5`` is the OT Bioelettronica GR08MM1305 grid: 13 x 5 positions at 8 mm with the first corner
        empty, i.e. 64 channels, matching real recordings from that grid."""
        text = name.strip().lower()
        if text == "needle":
            return cls.needle()
        if text == "grid13x5":
            return cls.grid(13, 5, 8.0, omit=((0, 0),))
        try:
            if text.startswith("ring"):
                return cls.ring(int(text[4:]))
            if text.startswith("grid"):
                rows, cols = (int(part) for part in text[4:].split("x"))
                return cls.grid(rows, cols)
        except ValueError:
            pass
        raise ValueError(f"unknown electrode layout {name!r}: use ring8, grid8x8, grid13x5, needle, ringN or gridRxC")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (lists and scalars only)."""
        return {
            "kind": self.kind,
            "coordinates": self.coordinates,
            "positions_mm": [[float(x), float(y)] for x, y in self.positions_mm],
            "labels": list(self.labels),
            "rows": self.rows,
            "cols": self.cols,
            "spacing_mm": self.spacing_mm,
            "grid_index": [[r, c] for r, c in self.grid_index],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ElectrodeLayout:
        """Inverse of ``to_dict``; raises ValueError on a malformed description."""
        try:
            return cls(
                kind=str(data["kind"]),
                positions_mm=np.asarray(data["positions_mm"], dtype=np.float64),
                labels=tuple(data["labels"]),
                rows=None if data.get("rows") is None else int(data["rows"]),
                cols=None if data.get("cols") is None else int(data["cols"]),
                spacing_mm=None if data.get("spacing_mm") is None else float(data["spacing_mm"]),
                coordinates=str(data.get("coordinates", "skin")),
                grid_index=tuple(tuple(pair) for pair in data.get("grid_index", ())),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed electrode layout description: {error}") from error

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ElectrodeLayout):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash((self.kind, self.labels))
