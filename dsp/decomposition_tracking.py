"""Motor units found again: a calibrated unit set saved to a file, applied to a later session, and matched by the
shape of each unit's motor-unit action potential (MUAP) over the grid.

A unit's MUAP map is the spike-triggered average of the band-passed EMG around its discharges (+-25 ms, every
electrode): the same unit gives the same map in another session as long as the grid sits over the same fibres. Two
maps are compared as in Martinez-Valdes et al. 2017 (J Physiol 595:1479, "Tracking motor units longitudinally
across experimental sessions with high-density surface electromyography") and openhdemg's ``tracking`` (Valli et al.
2024): the normalised two-dimensional cross-correlation of the single-differential MUAPs (electrodes x time), here
maximised over a time lag and over grid shifts (a grid put back some millimetres off between sessions): every shift
the grids allow by default, as openhdemg's "full" correlation, or up to ``max_shift`` electrodes each way, with one
shift for all units since the grid moves as a whole; pairs at or above 0.8 (openhdemg's default threshold) are the
same unit, one to one by the Hungarian assignment. Single differentials (the difference of neighbours along the
grid's columns, the fibres' direction on the grids used here) remove the spatially smooth, shared part of surface
MUAPs: monopolar maps of different units on the real 13 x 5 grid correlated up to 0.9 (docs/decomposition.md).

The saved file is a plain ``.npz`` (no pickled objects; ``load_units`` refuses anything else in one line): the
separation filters, their bias, scale and threshold, the band-pass, the extension, the settings, each unit's SIL,
discharge count, MUAP map and id, and the grid cell of every channel.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from dsp.decomposition import Decomposition, DecompositionSettings, MotorUnit, bandpass

FORMAT = "neurofusion-motor-units"
VERSION = 1
MUAP_HALF_S = 0.025  # +- around each discharge for the spike-triggered average (as the report's MUAP maps)
MATCH_THRESHOLD = 0.8  # normalised 2-D cross-correlation at or above which two MUAPs are one unit (openhdemg)
#: a pair found by its discharges must also have MUAPs at least this alike: a filter saved on a grid that has since
#: moved can follow another unit (seen on the simulator: 0.55 for such a pair, 0.78-0.97 for right ones)
DISCHARGE_MATCH_FLOOR = 0.7
#: electrodes the grid may have moved between sessions, in each direction; None: every shift the grids allow, as
#: openhdemg's ``tracking`` (a "full" 2-D cross-correlation). One shift for all units (the grid moves as a whole)
MAX_SHIFT: int | None = None
#: a shift at which a MUAP map keeps less than this share of its energy on the electrodes compared is not counted
#: (the common part would be the map's edge: a few small electrodes that can correlate well by chance)
MIN_SHARED_ENERGY = 0.5
#: a pair found by its discharges has its MUAPs compared within this many electrodes: the saved filters fire with a
#: unit only while the grid sits where it did (they do not fit a moved grid)
DISCHARGE_MATCH_SHIFT = 1
COMPARED_HALF_S = 0.0125  # +- around the MUAP's peak energy that is compared (the rest of the average is noise)
MAX_LAG_S = 0.002  # time lag allowed between two MUAPs once each is centred on its own peak


@dataclass
class UnitSet:
    """A calibrated unit set with what identifies its units in another session."""

    decomposition: Decomposition
    templates: np.ndarray  # (U, C, T) monopolar MUAP of each unit on each channel (µV, band-passed)
    cells: np.ndarray  # (C, 2) grid (row, col) of each channel
    unit_ids: np.ndarray  # (U,) the units' numbers (kept when a unit is found again)


@dataclass(frozen=True)
class Match:
    saved: int  # unit index in the saved set
    found: int  # unit index in the new set
    similarity: float  # normalised 2-D cross-correlation of their MUAPs
    shift: tuple[int, int]  # (rows, cols): the saved map's electrode (r + rows, c + cols) faces the new one's (r, c)
    evidence: str = "muap"  # "discharges": the saved filter, run over the new data, fires with the new unit


# ----- grid geometry --------------------------------------------------------------------------------------------------
def grid_cells(layout: dict[str, Any] | None, n_channels: int) -> np.ndarray:
    """(C, 2) grid (row, col) of each channel from a layout description (``ElectrodeLayout.to_dict``); channels in
    reading order on one row when there is no grid (maps are then compared without a spatial shift but one)."""
    if layout and layout.get("grid_index") and len(layout["grid_index"]) == n_channels:
        return np.asarray(layout["grid_index"], dtype=np.int64).reshape(n_channels, 2)
    return np.column_stack([np.zeros(n_channels, np.int64), np.arange(n_channels, dtype=np.int64)])


def _on_grid(templates: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(U, rows, cols, T) with NaN where the grid has no electrode."""
    rows, cols = int(cells[:, 0].max()) + 1, int(cells[:, 1].max()) + 1
    grid = np.full((templates.shape[0], rows, cols, templates.shape[2]), np.nan)
    grid[:, cells[:, 0], cells[:, 1], :] = templates
    return grid


def single_differential(templates: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """(U, rows - 1, cols, T): neighbours' difference along the columns (NaN where either electrode is missing); a
    single-row layout (no grid) is differenced along its channels instead."""
    grid = _on_grid(templates, cells)
    if grid.shape[1] == 1:
        return (grid[:, :, 1:] - grid[:, :, :-1]).transpose(0, 2, 1, 3)  # (U, C - 1, 1, T)
    return grid[:, 1:] - grid[:, :-1]


def comparable_maps(templates: np.ndarray, cells: np.ndarray, fs: float) -> np.ndarray:
    """(U, rows - 1, cols, T') single-differential maps, each cut to +-COMPARED_HALF_S around the instant of its
    largest energy over the grid. Two decompositions find one unit's discharges at different lags of its source (up
    to the extension, ~8 ms), so the averages are centred on the MUAP itself; comparing at free lags of +-10 ms
    instead made maps of different units correlate as well as those of one unit (0.9 on the real file)."""
    from scipy.ndimage import uniform_filter1d

    differential = single_differential(templates, cells)
    if differential.shape[0] == 0:
        return differential
    half = int(round(COMPARED_HALF_S * fs))
    length = differential.shape[3]
    energy = uniform_filter1d(np.nansum(differential * differential, axis=(1, 2)), max(1, int(0.004 * fs)), axis=1)
    out = np.empty(differential.shape[:3] + (min(length, 2 * half + 1),))
    for unit in range(differential.shape[0]):
        centre = int(np.clip(np.argmax(energy[unit]), half, length - half - 1)) if length > 2 * half else length // 2
        first = max(0, centre - half)
        out[unit] = differential[unit, :, :, first : first + out.shape[3]]
    return out


# ----- MUAP maps and their similarity ---------------------------------------------------------------------------------
def muap_templates(filtered: np.ndarray, trains: list[np.ndarray], fs: float) -> np.ndarray:
    """(U, C, T) spike-triggered average of ``filtered`` ((N, C), band-passed) over +-MUAP_HALF_S around each train's
    discharges (sample indices); zeros for a unit without a discharge inside the data."""
    half = int(round(MUAP_HALF_S * fs))
    out = np.zeros((len(trains), filtered.shape[1], 2 * half + 1), dtype=np.float32)
    for unit, train in enumerate(trains):
        train = np.asarray(train, dtype=np.int64)
        inside = train[(train >= half) & (train < filtered.shape[0] - half)]
        if inside.size:
            out[unit] = filtered[inside[:, None] + np.arange(-half, half + 1)[None, :]].mean(axis=0).T
    return out


def shifted_similarities(a: np.ndarray, b: np.ndarray, max_lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalised 2-D cross-correlation of two differential MUAP maps ((rows, cols, T), NaN: no electrode) at every
    grid shift, each the largest over time lags within +-max_lag samples: (rows_a + rows_b - 1, cols_a + cols_b - 1)
    values and the share of its energy each map keeps in the electrodes compared (the smaller of the two), both
    indexed [dr + rows_b - 1, dc + cols_b - 1] where b's electrode (r, c) faces a's (r + dr, c + dc).

    A value is the sum of the products over the electrodes both maps have, over the root of the product of each
    map's energy on those electrodes (a correlation coefficient of the common part; -inf where nothing is common).
    Three FFT correlations of the whole maps give every shift at once (openhdemg's ``norm_twod_xcorr`` in "full"
    mode does the same over channels x time, normalised by the whole maps' energy instead)."""
    from scipy.signal import fftconvolve

    has_a, has_b = np.isfinite(a).all(axis=2), np.isfinite(b).all(axis=2)
    x, y = np.where(has_a[..., None], a, 0.0), np.where(has_b[..., None], b, 0.0)
    centre = b.shape[2] - 1  # zero lag
    products = fftconvolve(x, y[::-1, ::-1, ::-1], mode="full")[:, :, centre - max_lag : centre + max_lag + 1]
    energy_a, energy_b = (x * x).sum(axis=2), (y * y).sum(axis=2)
    # each map's energy on the electrodes the other has at that shift (FFT round-off can leave tiny negatives)
    common_a = np.clip(fftconvolve(energy_a, has_b[::-1, ::-1].astype(float), mode="full"), 0.0, None)
    common_b = np.clip(fftconvolve(has_a.astype(float), energy_b[::-1, ::-1], mode="full"), 0.0, None)
    total_a, total_b = float(energy_a.sum()), float(energy_b.sum())
    common = np.sqrt(common_a * common_b)
    values = np.full(common.shape, -np.inf)
    inside = common > 1e-9 * math.sqrt(total_a * total_b)  # round-off where no electrode is common
    values[inside] = products.max(axis=2)[inside] / common[inside]
    shared = np.minimum(common_a / total_a, common_b / total_b) if total_a > 0 and total_b > 0 else common * 0.0
    return values, shared


def similarity(a: np.ndarray, b: np.ndarray, max_shift: int | None, max_lag: int,
               min_shared: float = MIN_SHARED_ENERGY) -> tuple[float, tuple[int, int]]:  # fmt: skip
    """The largest normalised 2-D cross-correlation of two differential MUAP maps (``shifted_similarities``) over
    grid shifts within +-max_shift electrodes each way (None: every shift the grids allow) at which each map keeps
    at least ``min_shared`` of its energy in the electrodes compared (a shift that moves most of a MUAP off the grid
    would otherwise compare a few small electrodes), and that shift (rows, cols)."""
    if float(np.nansum(a * a)) * float(np.nansum(b * b)) == 0.0:
        return 0.0, (0, 0)
    values, shared = shifted_similarities(a, b, max_lag)
    rows, cols = b.shape[0], b.shape[1]
    if max_shift is not None:  # only shifts within the window (a map smaller than the window keeps all of its)
        window = np.zeros(values.shape, dtype=bool)
        window[max(0, rows - 1 - max_shift) : rows + max_shift, max(0, cols - 1 - max_shift) : cols + max_shift] = True
        values = np.where(window, values, -np.inf)
    values = np.where(shared >= min_shared, values, -np.inf)
    if not np.isfinite(values).any():
        return 0.0, (0, 0)
    best = np.unravel_index(int(np.argmax(values)), values.shape)
    return float(values[best]), (int(best[0]) - (rows - 1), int(best[1]) - (cols - 1))


def similarity_matrix(saved: np.ndarray, found: np.ndarray, max_shift: int | None = MAX_SHIFT,
                      max_lag: int = 0) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(S, F) similarities and (S, F, 2) shifts of two sets of differential maps ((U, rows, cols, T))."""
    values = np.zeros((saved.shape[0], found.shape[0]))
    shifts = np.zeros((saved.shape[0], found.shape[0], 2), dtype=np.int64)
    for i, a in enumerate(saved):
        for j, b in enumerate(found):
            values[i, j], shifts[i, j] = similarity(a, b, max_shift, max_lag)
    return values, shifts


def match_at_one_shift(saved: np.ndarray, found: np.ndarray, max_lag: int, threshold: float = MATCH_THRESHOLD,
                       max_shift: int | None = MAX_SHIFT) -> list[Match]:  # fmt: skip
    """Pairs of two sets of differential maps ((U, rows, cols, T), the same grid) found again at one grid shift for
    all of them: the grid moves as a whole between sessions, so every unit's map moves by the same electrodes. For
    each shift within +-max_shift (None: every one), the one-to-one (Hungarian) assignment of the similarities at
    that shift; the shift that pairs the most units at or above ``threshold`` (then the largest sum, then the
    smallest shift) is the grid's move. A shift chosen per pair instead let look-alike units pair at other shifts:
    on the simulated grid moved one or two electrodes, 3 wrong pairs in 6 session pairs with a +-2 search and 6
    with +-3, none with one shift (docs/decomposition.md)."""
    from scipy.optimize import linear_sum_assignment

    if saved.shape[0] == 0 or found.shape[0] == 0:
        return []
    rows, cols = found.shape[1], found.shape[2]
    cube = np.full((saved.shape[0], found.shape[0], saved.shape[1] + rows - 1, saved.shape[2] + cols - 1), -np.inf)
    for i, a in enumerate(saved):
        for j, b in enumerate(found):
            values, shared = shifted_similarities(a, b, max_lag)
            cube[i, j] = np.where(shared >= MIN_SHARED_ENERGY, values, -np.inf)
    reach = 1 << 30 if max_shift is None else max_shift
    best: tuple[tuple[int, float, int], tuple[int, int], list[Match]] | None = None
    for dr in range(-min(reach, rows - 1), min(reach, saved.shape[1] - 1) + 1):
        for dc in range(-min(reach, cols - 1), min(reach, saved.shape[2] - 1) + 1):
            values = cube[:, :, dr + rows - 1, dc + cols - 1]
            values = np.where(np.isfinite(values), values, 0.0)
            assigned = linear_sum_assignment(-values)
            kept = [Match(int(r), int(c), round(float(values[r, c]), 4), (dr, dc))
                    for r, c in zip(*assigned, strict=True) if values[r, c] >= threshold]  # fmt: skip
            score = (len(kept), sum(match.similarity for match in kept), -(abs(dr) + abs(dc)))
            if best is None or score > best[0]:
                best = (score, (dr, dc), kept)
    return [] if best is None else best[2]


def match_by_muap(saved: np.ndarray, found: np.ndarray, cells_saved: np.ndarray, cells_found: np.ndarray, fs: float,
                  threshold: float = MATCH_THRESHOLD, max_shift: int | None = MAX_SHIFT) -> list[Match]:  # fmt: skip
    """Saved units found again among ``found`` ((U, C, T) monopolar templates each): pairs whose single-differential
    MUAPs correlate at or above ``threshold`` at the grid's one shift (``match_at_one_shift``), one to one."""
    if saved.shape[0] == 0 or found.shape[0] == 0:
        return []
    return match_at_one_shift(comparable_maps(saved, cells_saved, fs), comparable_maps(found, cells_found, fs),
                              int(round(MAX_LAG_S * fs)), threshold, max_shift)  # fmt: skip


def find_again(saved: UnitSet, found: UnitSet, data: np.ndarray, threshold: float = MATCH_THRESHOLD,
               max_shift: int | None = MAX_SHIFT) -> list[Match]:  # fmt: skip
    """Units of ``saved`` among those of ``found`` (a decomposition of ``data``, (N, C) raw µV), one to one.

    First by their discharges: the saved filters run over ``data`` and a new unit that shares more than 30 % of its
    discharges with one of them (the duplicate rule, ``dsp.decomposition.match_units``) and whose MUAP correlates
    with the saved one at least ``DISCHARGE_MATCH_FLOOR`` is that unit; this holds while the grid has not moved.
    Then, among the units left, by MUAP maps at one shift for the whole grid (``match_at_one_shift``), which also
    holds for a grid put back up to ``max_shift`` electrodes off (None: any shift). Both sets must have the same
    channels in the same cells when the discharges are compared (else only the maps are)."""
    from dsp.decomposition import detect, match_units

    old_units, new_units = saved.decomposition.units, found.decomposition.units
    if not old_units or not new_units:
        return []
    fs = found.decomposition.fs
    maps_saved = comparable_maps(saved.templates, saved.cells, fs)
    maps_found = comparable_maps(found.templates, found.cells, fs)
    matches: list[Match] = []
    same_channels = (saved.decomposition.n_channels == found.decomposition.n_channels
                     and np.array_equal(saved.cells, found.cells) and saved.decomposition.fs == fs)  # fmt: skip
    if same_channels:
        trains = detect(saved.decomposition, data)
        pairs = match_units(trains, [unit.discharges for unit in new_units], fs, found.decomposition.settings)
        mapped = np.abs(saved.templates).reshape(len(old_units), -1).sum(axis=1) > 0  # a set installed without data
        for new, old in sorted(pairs.items()):
            value, shift = similarity(maps_saved[old], maps_found[new], DISCHARGE_MATCH_SHIFT,
                                      int(round(MAX_LAG_S * fs)))  # fmt: skip
            if value >= DISCHARGE_MATCH_FLOOR or not mapped[old]:
                matches.append(Match(old, new, round(value, 4), shift, "discharges"))
    left_saved = [i for i in range(len(old_units)) if i not in {m.saved for m in matches}]
    left_found = [j for j in range(len(new_units)) if j not in {m.found for m in matches}]
    if left_saved and left_found:
        for match in match_at_one_shift(maps_saved[left_saved], maps_found[left_found], int(round(MAX_LAG_S * fs)),
                                        threshold, max_shift):  # fmt: skip
            matches.append(Match(left_saved[match.saved], left_found[match.found], match.similarity, match.shift))
    return sorted(matches, key=lambda match: match.saved)


def unit_set(decomposition: Decomposition, data: np.ndarray, cells: np.ndarray,
             unit_ids: np.ndarray | None = None) -> UnitSet:  # fmt: skip
    """A ``UnitSet`` of ``decomposition`` calibrated on ``data`` ((N, C) raw µV): MUAP maps from its discharges."""
    filtered = bandpass(decomposition.sos, data)
    templates = muap_templates(filtered, [unit.discharges for unit in decomposition.units], decomposition.fs)
    ids = np.arange(len(decomposition.units)) if unit_ids is None else np.asarray(unit_ids, dtype=np.int64)
    return UnitSet(decomposition, templates, np.asarray(cells, dtype=np.int64), ids)


# ----- applying a saved set directly ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reapplied:
    """A saved unit run over a new session with its saved filter and threshold."""

    unit: int
    unit_id: int
    discharges: np.ndarray  # sample indices in the new data
    mean_rate_hz: float | None  # over intervals shorter than 0.4 s (a pause is not part of the rate)
    similarity: float  # its MUAP in the new data against the saved MUAP
    found_again: bool  # enough discharges and the same MUAP


def reapply(saved: UnitSet, data: np.ndarray, threshold: float = MATCH_THRESHOLD) -> list[Reapplied]:
    """Each saved unit's filter over ``data`` ((N, C) raw µV, the saved channels): its discharges, rate and whether it
    is the same unit (at least ``min_discharges`` and a MUAP that correlates >= ``threshold`` with the saved one;
    a filter that now follows another unit or noise gives another MUAP)."""
    from dsp.decomposition import detect

    decomposition = saved.decomposition
    trains = detect(decomposition, data)
    templates = muap_templates(bandpass(decomposition.sos, data), trains, decomposition.fs)
    before = comparable_maps(saved.templates, saved.cells, decomposition.fs)
    after = comparable_maps(templates, saved.cells, decomposition.fs)
    lag = int(round(MAX_LAG_S * decomposition.fs))
    out = []
    for index, train in enumerate(trains):
        value = similarity(before[index], after[index], 0, lag)[0] if train.size else 0.0
        intervals = np.diff(train) / decomposition.fs
        steady = intervals[intervals < 0.4]
        rate = round(float(1.0 / steady.mean()), 2) if steady.size else None
        enough = train.size >= decomposition.settings.min_discharges
        out.append(Reapplied(index, int(saved.unit_ids[index]), train, rate, round(value, 4),
                             bool(enough and value >= threshold)))  # fmt: skip
    return out


# ----- the file -----------------------------------------------------------------------------------------------------
def save_units(path: str | Path, saved: UnitSet, note: str = "") -> Path:
    """Writes ``saved`` as a plain .npz (no pickled objects)."""
    decomposition = saved.decomposition
    units = decomposition.units
    meta = {"format": FORMAT, "version": VERSION, "fs": decomposition.fs, "n_channels": decomposition.n_channels,
            "extension": decomposition.extension, "settings": dataclasses.asdict(decomposition.settings),
            "note": note}  # fmt: skip
    path = Path(path)
    with path.open("wb") as handle:  # np.savez would append .npz to a name without it
        np.savez(
            handle,
            meta=np.array(json.dumps(meta)),
            sos=np.asarray(decomposition.sos, dtype=np.float64),
            filters=decomposition.filters.astype(np.float64),
            bias=np.array([unit.bias for unit in units], dtype=np.float64),
            scale=np.array([unit.scale for unit in units], dtype=np.float64),
            threshold=np.array([unit.threshold for unit in units], dtype=np.float64),
            sil=np.array([unit.sil for unit in units], dtype=np.float64),
            n_discharges=np.array([unit.n_discharges for unit in units], dtype=np.int64),
            templates=np.asarray(saved.templates, dtype=np.float32),
            cells=np.asarray(saved.cells, dtype=np.int64),
            unit_ids=np.asarray(saved.unit_ids, dtype=np.int64),
        )
    return path


_ARRAYS = {"meta": 0, "sos": 2, "filters": 3, "bias": 1, "scale": 1, "threshold": 1, "sil": 1, "n_discharges": 1,
           "templates": 3, "cells": 2, "unit_ids": 1}  # fmt: skip


def load_units(path: str | Path) -> UnitSet:
    """The unit set saved by ``save_units``; ValueError (one line) for anything else or anything inconsistent."""
    import zipfile

    path = Path(path)
    if path.is_file() and not zipfile.is_zipfile(path):
        raise ValueError(f"{path}: not a saved motor-unit set (not an .npz archive)")
    try:
        with np.load(path, allow_pickle=False) as archive:
            missing = [name for name in _ARRAYS if name not in archive.files]
            if missing:
                raise ValueError(f"{path}: not a saved motor-unit set (missing {', '.join(missing)})")
            arrays = {name: archive[name] for name in _ARRAYS}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, EOFError, ValueError) as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not text.startswith(str(path)):
            text = f"{path}: not a saved motor-unit set ({text})"
        raise ValueError(text) from None
    for name, ndim in _ARRAYS.items():
        if arrays[name].ndim != ndim:
            raise ValueError(f"{path}: '{name}' has {arrays[name].ndim} dimensions, expected {ndim}")
    try:
        meta = json.loads(str(arrays["meta"]))
        fs, n_channels, extension = float(meta["fs"]), int(meta["n_channels"]), int(meta["extension"])
        settings_fields = {f.name for f in dataclasses.fields(DecompositionSettings)}
        settings = DecompositionSettings(**{k: v for k, v in dict(meta["settings"]).items() if k in settings_fields})
        settings.validate()
        if meta.get("format") != FORMAT or int(meta.get("version", -1)) != VERSION:
            raise ValueError(f"format {meta.get('format')!r} version {meta.get('version')!r}")
    except (ValueError, TypeError, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: malformed description ({str(error).splitlines()[0]})") from None
    filters = arrays["filters"]
    n_units = filters.shape[0]
    shapes_ok = (
        fs > 0 and n_channels > 0 and extension > 0 and filters.shape[1:] == (n_channels, extension)
        and all(arrays[name].shape == (n_units,) for name in ("bias", "scale", "threshold", "sil", "n_discharges",
                                                              "unit_ids"))
        and arrays["templates"].shape[:2] == (n_units, n_channels) and arrays["cells"].shape == (n_channels, 2)
        and arrays["sos"].shape[1:] == (6,) and arrays["sos"].shape[0] >= 1
    )  # fmt: skip
    if not shapes_ok:
        raise ValueError(f"{path}: array shapes do not fit {n_channels} channels, extension {extension} and "
                         f"{n_units} units")  # fmt: skip
    numeric = ("sos", "filters", "bias", "scale", "threshold", "sil", "templates")
    if not all(np.issubdtype(arrays[name].dtype, np.floating) and np.isfinite(arrays[name]).all() for name in numeric):
        raise ValueError(f"{path}: non-numeric or non-finite values in the filters or maps")
    cells = arrays["cells"]
    if not np.issubdtype(cells.dtype, np.integer) or (cells < 0).any() or len({tuple(c) for c in cells}) < n_channels:
        raise ValueError(f"{path}: the channels' grid cells are not distinct non-negative integers")
    if (arrays["scale"] <= 0).any():
        raise ValueError(f"{path}: a unit's scale is not positive")
    units = [MotorUnit(arrays["filters"][u], float(arrays["bias"][u]), float(arrays["scale"][u]),
                       float(arrays["threshold"][u]), float(arrays["sil"][u]), np.zeros(0, np.int64))
             for u in range(n_units)]  # fmt: skip
    decomposition = Decomposition(fs, n_channels, extension, settings, units, arrays["sos"].astype(np.float64))
    return UnitSet(decomposition, arrays["templates"].astype(np.float32), arrays["cells"].astype(np.int64),
                   arrays["unit_ids"].astype(np.int64))  # fmt: skip
