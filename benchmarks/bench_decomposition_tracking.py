"""Motor units found again across sessions (dsp.decomposition_tracking), where the right answer is known.

    .venv/bin/python -m benchmarks.bench_decomposition_tracking [--seeds 0 1 2] [--starts 32]

- real: the HD-EMG file cut into two "sessions" (5-15 s and 16-26 s of its plateau), each decomposed on its own.
  Each unit's identity is the reference unit (the file's decomposition, columns 64-68) it agrees with at RoA >= 50 %
  on its own session, if any. Then (1) the first session's set, saved and loaded, applied directly to the second
  session: per unit, found again or not (MUAP similarity), and its RoA against its reference unit there;
  (2) the second session decomposed afresh and matched to the first: by discharges of the saved filters, then by
  MUAP maps (``find_again``), and by MUAP maps alone (``match_by_muap``); per pair, whether both units are the same
  reference unit.
- simulated: a 9 x 8 grid (8 mm) simulated for 2 x ``--seconds`` of one 20 % MVC hold; session A reads rows 0-7 over
  the first half, session B rows 1-8 over the second half: the same muscle and units with the grid one electrode
  (8 mm) further along the fibres, other discharge instants (``--rows-moved 2``: a 10 x 8 grid, session B rows
  2-9). Each unit's identity is the simulated unit whose true discharges it follows best (sensitivity and precision
  >= 90 %); pairs are right when both are the same true unit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_decomposition import FS, MAX_LAG, TOLERANCE, load_reference_file
from benchmarks.common import emit

REAL_SESSIONS = ((5.0, 15.0), (16.0, 26.0))
IDENTITY_ROA = 0.5  # a unit "is" a reference unit when it agrees with it at least this well on its own session


def reference_cells() -> np.ndarray:
    """(64, 2) grid (row, col) of each EMG column of the OTB file in its own column order (13 x 5, corner empty)."""
    from monitor.recordings.otb import grid13x5_channel_number

    cells = np.zeros((64, 2), dtype=np.int64)
    for row in range(13):
        for col in range(5):
            number = grid13x5_channel_number(row, col)
            if number is not None:
                cells[number - 1] = (row, col)
    return cells


def identities(trains: list[np.ndarray], reference: list[np.ndarray]) -> list[int | None]:
    """For each train, the reference train it agrees with at RoA >= IDENTITY_ROA, else None."""
    from dsp.decomposition import agreement

    out: list[int | None] = []
    for train in trains:
        scores = [agreement(train, other, TOLERANCE, MAX_LAG).rate_of_agreement for other in reference]
        best = int(np.argmax(scores)) if scores else -1
        out.append(best if best >= 0 and scores[best] >= IDENTITY_ROA else None)
    return out


def _session(data: np.ndarray, cells: np.ndarray, reference: list[np.ndarray], starts: int) -> dict[str, Any]:
    from dsp.decomposition import DecompositionSettings, decompose
    from dsp.decomposition_tracking import unit_set

    cpu = time.process_time()
    result = decompose(data, FS, DecompositionSettings(starts=starts, max_iterations=20))
    return {"set": unit_set(result, data, cells), "data": data, "cpu_s": round(time.process_time() - cpu, 1),
            "identity": identities([unit.discharges for unit in result.units], reference)}  # fmt: skip


def real_sessions(starts: int = 32) -> tuple[dict[str, Any], dict[str, Any], list[np.ndarray]]:
    """The two sessions of the real file (each: its UnitSet, raw data, CPU, per-unit reference identity) and the
    reference trains of the second session (sample indices in it)."""
    grid, reference, _ = load_reference_file()
    cells = reference_cells()
    sessions = []
    for first_s, last_s in REAL_SESSIONS:
        lo, hi = int(first_s * FS), int(last_s * FS)
        inside = [train[(train >= lo) & (train < hi)] - lo for train in reference]
        sessions.append((_session(grid[lo:hi], cells, inside, starts), inside))
    return sessions[0][0], sessions[1][0], sessions[1][1]


def shifted_sessions(seed: int, seconds: float = 8.0, starts: int = 16,
                     rows_moved: int = 1) -> tuple[dict[str, Any], dict[str, Any]]:  # fmt: skip
    """Two simulated sessions of one muscle, the 8 x 8 grid ``rows_moved`` electrodes (8 mm each) along the columns
    in the second."""
    from simulators.electrodes import ElectrodeLayout
    from simulators.emg import EmgSimulator, SimulationConfig

    config = SimulationConfig(layout=ElectrodeLayout.grid(8 + rows_moved, 8, 8.0), fs=FS, profile="hold",
                              mvc_percent=20.0, seed=seed, record_spikes=True, fatigue_rate=0.0)  # fmt: skip
    simulator = EmgSimulator(config)
    data = simulator.generate(2 * seconds).astype(np.float64)
    units = np.concatenate([block[0] for block in simulator.spike_log])
    samples = np.ceil(np.concatenate([block[1] for block in simulator.spike_log]) * FS - 1e-9).astype(np.int64)
    n = int(seconds * FS)
    cells = np.array([(row, col) for row in range(8) for col in range(8)], dtype=np.int64)
    sessions = []
    for first_row, lo in ((0, 0), (rows_moved, n)):
        channels = [(row + first_row) * 8 + col for row in range(8) for col in range(8)]
        truth = {int(u): samples[(units == u) & (samples >= lo) & (samples < lo + n)] - lo for u in np.unique(units)}
        truth = {u: train for u, train in truth.items() if train.size}
        session = _session(data[lo : lo + n][:, channels], cells, [], starts)
        session["identity"] = true_identities([unit.discharges for unit in session["set"].decomposition.units], truth)
        sessions.append(session)
    return sessions[0], sessions[1]


def true_identities(trains: list[np.ndarray], truth: dict[int, np.ndarray]) -> list[int | None]:
    """For each train, the simulated unit it follows at sensitivity and precision >= 90 %, else None."""
    from benchmarks.bench_decomposition import score_against_truth

    rows = score_against_truth(trains, truth)
    return [row["true_unit"] if row["sensitivity"] >= 0.9 and row["precision"] >= 0.9 else None for row in rows]


def pairs(matches: list[Any], first: dict[str, Any], second: dict[str, Any]) -> list[dict[str, Any]]:
    """Each match with both units' identities and whether they agree (None: one of them has none)."""
    rows = []
    for match in matches:
        a, b = first["identity"][match.saved], second["identity"][match.found]
        rows.append({"saved": match.saved, "found": match.found, "similarity": match.similarity,
                     "shift": list(match.shift), "evidence": match.evidence, "identity": [a, b],
                     "right": None if a is None or b is None else a == b})  # fmt: skip
    return rows


def real(starts: int) -> dict[str, Any]:
    from dsp.decomposition import agreement
    from dsp.decomposition_tracking import find_again, load_units, match_by_muap, reapply, save_units

    first, second, reference = real_sessions(starts)
    with tempfile.TemporaryDirectory() as folder:
        loaded = load_units(save_units(Path(folder) / "units.npz", first["set"]))
    direct = []
    for row in reapply(loaded, second["data"]):
        identity = first["identity"][row.unit]
        roa = None
        if identity is not None:
            roa = round(agreement(row.discharges, reference[identity], TOLERANCE, MAX_LAG).rate_of_agreement, 4)
        direct.append({"unit": row.unit, "reference_unit": identity, "discharges": int(row.discharges.size),
                       "mean_rate_hz": row.mean_rate_hz, "similarity": row.similarity,
                       "found_again": row.found_again, "roa_against_reference": roa})  # fmt: skip
    cells = first["set"].cells
    return {
        "sessions_s": [list(span) for span in REAL_SESSIONS], "starts": starts,
        "units": [len(first["identity"]), len(second["identity"])],
        "identity": [first["identity"], second["identity"]], "cpu_s": [first["cpu_s"], second["cpu_s"]],
        "applied_directly": direct,
        "found_again": pairs(find_again(first["set"], second["set"], second["data"]), first, second),
        "muap_only": pairs(match_by_muap(first["set"].templates, second["set"].templates, cells, cells, FS),
                           first, second),
    }  # fmt: skip


def simulated(seeds: list[int], seconds: float, starts: int, rows_moved: int = 1) -> dict[str, Any]:
    from dsp.decomposition_tracking import find_again, reapply

    out = {}
    for seed in seeds:
        first, second = shifted_sessions(seed, seconds, starts, rows_moved)
        common = set(first["identity"]) & set(second["identity"]) - {None}
        matches = pairs(find_again(first["set"], second["set"], second["data"]), first, second)
        out[f"seed {seed}"] = {
            "units": [len(first["identity"]), len(second["identity"])],
            "identity": [first["identity"], second["identity"]], "true_units_in_both": len(common),
            "matches": matches, "right": sum(1 for m in matches if m["right"]),
            "wrong": sum(1 for m in matches if m["right"] is False),
            "applied_directly_found_again": sum(row.found_again for row in reapply(first["set"], second["data"])),
        }  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sections", nargs="+", default=["real", "simulated"], choices=("real", "simulated"))
    parser.add_argument("--starts", type=int, default=32, help="fixed-point starts of the real sessions")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seconds", type=float, default=8.0, help="each simulated session's length")
    parser.add_argument("--simulated-starts", type=int, default=16)
    parser.add_argument("--rows-moved", type=int, default=1, help="electrodes the simulated grid moves")
    args = parser.parse_args()
    results: dict[str, Any] = {}
    if "real" in args.sections:
        results["real"] = real(args.starts)
    if "simulated" in args.sections:
        results["simulated"] = simulated(args.seeds, args.seconds, args.simulated_starts, args.rows_moved)
    emit("decomposition_tracking", results)


if __name__ == "__main__":
    main()
