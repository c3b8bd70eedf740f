"""How the reinnervation's maturity and the adopted fibres' end-plates shape a reinnervated unit's MUAP.

    nice .venv/bin/python -m benchmarks.bench_sim_reinnervation --seeds 3

For healthy and severe-neuropathy subjects (fibre-level needle model), and severe neuropathy at maturity 0 (early:
slow, scattered sprouts, satellites) and 1 (chronic), and at maturity 1 with every adopted end-plate at its
parent's: the true MUAP templates (no noise, no decomposition) of every unit with a fibre within 0.7 mm of the
core's centre, measured by ``dsp.mup_measures.measure_mup``; median over units, mean over ``--seeds`` subjects.
Also, per condition and severity (``fibre_density``): the single-fibre fibre density (for each fibre within 0.3 mm of
the core's centre, the fibres of its unit within 0.3 mm of it, itself included; mean over those fibres) and how much
the territories of those units grew (95th percentile of their fibres' distance from the unit's centre over that of a
uniform disc of the radius before disease), mean over ``--seeds`` subjects.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from benchmarks.common import emit

FS = 16384.0


def near_unit_medians(condition: str, severity: str, seed: int, **change: float) -> np.ndarray:
    from dsp.mup_measures import measure_mup
    from simulators.conditions import draw_subject
    from simulators.electrodes import ElectrodeLayout
    from simulators.fibres import CANNULA_RADIUS_MM, CORE_LENGTH_MM, grow_fibres, needle_templates
    from simulators.motor_units import build_pool
    from simulators.muap import SampledShapes, true_muap
    from simulators.tissue import draw_tissue

    layout = ElectrodeLayout.needle()
    tissue = replace(draw_tissue(condition, severity, np.random.default_rng([seed, 3])), **change)
    units = max(3, int(round(tissue.units_before_loss * (1.0 - tissue.unit_loss))))
    rng = np.random.default_rng([seed, 1])
    pool = build_pool(layout, replace(draw_subject("healthy", rng), n_units=units), rng)
    fibres = grow_fibres(pool, tissue, layout.positions_mm[0], np.random.default_rng([seed, 9]))
    templates, template_fs = needle_templates(fibres, pool.n_units, FS)
    shapes = SampledShapes.from_templates(templates, template_fs)
    centre = np.array([-0.5 * CORE_LENGTH_MM, 0.5 * CANNULA_RADIUS_MM])
    near = np.unique(fibres.unit[np.hypot(*(fibres.xy_mm - centre).T) < 0.7])
    gains = np.ones((pool.n_units, 1))
    measures = [measure_mup(true_muap(shapes, gains, int(u), FS), FS) for u in near]
    return np.median([[m.amplitude_uv, m.duration_ms, m.phases] for m in measures], axis=0)


def fibre_density(condition: str, severity: str, seed: int) -> tuple[float, float]:
    """(single-fibre fibre density at the core, territory radius over its value before disease) of one subject."""
    from simulators.conditions import draw_subject
    from simulators.electrodes import ElectrodeLayout
    from simulators.fibres import CANNULA_RADIUS_MM, CORE_LENGTH_MM, grow_fibres, territory_radius_mm
    from simulators.motor_units import build_pool
    from simulators.tissue import draw_tissue

    tissue = draw_tissue(condition, severity, np.random.default_rng([seed, 3]))
    units = max(3, int(round(tissue.units_before_loss * (1.0 - tissue.unit_loss))))
    rng = np.random.default_rng([seed, 1])
    pool = build_pool(ElectrodeLayout.needle(), replace(draw_subject("healthy", rng), n_units=units), rng)
    fibres = grow_fibres(pool, tissue, np.zeros(2), np.random.default_rng([seed, 9]), reach_mm=None)
    centre = np.array([-0.5 * CORE_LENGTH_MM, 0.5 * CANNULA_RADIUS_MM])
    near = np.flatnonzero(np.hypot(*(fibres.xy_mm - centre).T) < 0.3)
    counts = [np.sum(np.hypot(*(fibres.xy_mm[fibres.unit == fibres.unit[f]] - fibres.xy_mm[f]).T) < 0.3) for f in near]
    before = territory_radius_mm(pool)
    growth = [
        np.percentile(np.hypot(*(fibres.xy_mm[fibres.unit == u] - pool.position_mm[u, :2]).T), 95)
        / (before[u] * np.sqrt(0.95))
        for u in np.unique(fibres.unit[near])
    ]
    return float(np.mean(counts)), float(np.mean(growth))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    cases = {
        "healthy": ("healthy", "moderate", {}),
        "neuropathy_severe": ("neuropathy", "severe", {}),
        "neuropathy_severe_early": ("neuropathy", "severe", {"maturity": 0.0}),
        "neuropathy_severe_chronic": ("neuropathy", "severe", {"maturity": 1.0}),
        "neuropathy_severe_chronic_endplates_at_parent": (
            "neuropathy", "severe", {"maturity": 1.0, "adopted_endplate_sd_mm": 0.0}
        ),
    }
    out = {}
    for name, (condition, severity, change) in cases.items():
        values = np.mean([near_unit_medians(condition, severity, s, **change) for s in range(args.seeds)], axis=0)
        out[name] = {"amplitude_uv": round(float(values[0]), 1), "duration_ms": round(float(values[1]), 2),
                     "phases": round(float(values[2]), 2)}
    density = {}
    for condition, severity in (("healthy", "moderate"), *(("neuropathy", s) for s in ("mild", "moderate", "severe"))):
        values = np.mean([fibre_density(condition, severity, s) for s in range(args.seeds)], axis=0)
        name = condition if condition == "healthy" else f"{condition}/{severity}"
        density[name] = {"fibre_density": round(float(values[0]), 2), "territory_growth": round(float(values[1]), 3)}
    emit("sim_reinnervation", {"seeds": args.seeds, "groups": out, "fibre_density": density})


if __name__ == "__main__":
    main()
