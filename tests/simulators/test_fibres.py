"""The fibre-level needle model: single-fibre potentials from the line source, motor units summed over their fibres,
disease as tissue changes, and the simulator streaming it deterministically in any chunking."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from dsp.mup_measures import measure_mup
from simulators import fibres as fibre_model
from simulators.electrodes import ElectrodeLayout
from simulators.emg import EmgSimulator, SimulationConfig
from simulators.fibres import Fibres, conduction_velocity, needle_templates
from simulators.muap import true_muap

FS = 10_000.0


def one_fibre(y_mm: float, diameter_um: float = 55.0, endplate_mm: float = -10.0, lengths=(50.0, 50.0)) -> Fibres:
    return Fibres(
        unit=np.array([0]), xy_mm=np.array([[-0.3, y_mm]]), endplate_mm=np.array([endplate_mm]),
        half_length_mm=np.array([lengths]), diameter_um=np.array([diameter_um]), delay_s=np.array([1e-3]),
        counts=np.array([1]), area_mm2=np.array([0.0]), healthy_area_mm2=np.array([0.0]),
    )


def potential(fibre: Fibres) -> tuple[np.ndarray, float]:
    templates, fs = needle_templates(fibre, 1, 16384.0)
    return templates[0], fs


def test_single_fibre_potential_is_triphasic_and_falls_with_distance_and_grows_with_diameter():
    near, fs = potential(one_fibre(0.3))
    # positive as the front approaches, negative as it passes, positive as it leaves (the line source's tripole)
    first, trough, last = np.argmax(near[: np.argmin(near)]), np.argmin(near), np.argmin(near) + np.argmax(
        near[np.argmin(near) :]
    )
    assert near[first] > 0.2 * -near[trough] and near[last] > 0.05 * -near[trough] and first < trough < last
    # the trough when the source's inward-current peak (λ* behind the front) passes the needle: 1 ms neuromuscular
    # delay + (10 mm + λ*) at v(55 µm) = 3.7 m/s
    lam = np.linspace(0.0, 10.0, 10_001)
    behind = float(lam[np.argmin(fibre_model.source_second_derivative(lam))])
    velocity = float(conduction_velocity(np.array([55.0]))[0])
    assert trough / fs == pytest.approx(1e-3 + (10.0 + behind) * 1e-3 / velocity, abs=0.15e-3)
    sizes = [np.ptp(potential(one_fibre(y))[0]) for y in (0.3, 0.6, 1.2, 2.4)]
    assert all(a > 1.5 * b for a, b in zip(sizes, sizes[1:], strict=False))  # steep fall-off within ~1 mm
    assert 100.0 < sizes[0] < 5000.0  # µV: single-fibre potentials at a concentric needle
    thick, _ = potential(one_fibre(0.6, diameter_um=80.0))
    assert np.ptp(thick) > 1.8 * sizes[1]  # current ∝ a², and a faster, shorter source
    assert np.argmin(thick) < np.argmin(potential(one_fibre(0.6))[0])  # thicker fibres conduct faster


def test_fibre_currents_sum_to_zero_so_a_uniform_field_sees_nothing(monkeypatch):
    """With the end-plate and tendon point sources the net membrane current is zero at every instant: a needle
    whose weighting is the same everywhere along the fibre records nothing (without them it would not)."""
    monkeypatch.setattr(fibre_model, "needle_weighting", lambda xy, z: np.full((xy.shape[0], z.size), 1e4))
    fibre = one_fibre(0.5, endplate_mm=-2.0, lengths=(8.0, 8.0))
    flat, _ = potential(fibre)
    monkeypatch.setattr(fibre_model, "source_first_derivative", lambda lam: np.zeros_like(lam))
    without_ends, _ = potential(fibre)
    assert np.abs(without_ends).max() > 1000.0  # µV: the cut current alone would be a large artefact
    assert np.abs(flat).max() < 0.01 * np.abs(without_ends).max()


@pytest.mark.parametrize("fs", [4000.0, 10_000.0, 16_384.0, 32_768.0])
def test_templates_are_anti_aliased_at_every_needle_rate(fs):
    fs_template = max(fibre_model.TEMPLATE_MIN_FS, 4.0 * fs)
    _, response = signal.freqz(fibre_model.anti_alias_taps(fs, fs_template), worN=[0.3 * fs, 0.5 * fs, 0.6 * fs],
                               fs=fs_template)
    gain_db = 20.0 * np.log10(np.abs(response))
    assert gain_db[0] > -0.5 and gain_db[1] < -25.0 and gain_db[2] < -55.0


@pytest.fixture(scope="module")
def subjects() -> dict[str, EmgSimulator]:
    cases = {"healthy": ("healthy", "moderate"), "myopathy": ("myopathy", "severe"),
             "neuropathy": ("neuropathy", "severe")}
    return {
        name: EmgSimulator(
            SimulationConfig(layout="needle", fs=FS, condition=condition, severity=severity, profile="hold",
                             mvc_percent=10, tissue="fibres", seed=2, fatigue_rate=0.0, artifacts=())
        )
        for name, (condition, severity) in cases.items()
    }


def near_unit_measures(simulator: EmgSimulator) -> dict[str, float]:
    """Mean amplitude and duration of the true MUAPs of units with a fibre within 0.5 mm of the core's centre."""
    fibres = simulator.fibres
    distance = np.hypot(*(fibres.xy_mm - np.asarray(fibre_model.CORE_CENTRE_XY_MM)).T)
    units = np.unique(fibres.unit[(distance < 0.5) & (fibres.unit < simulator.n_motor_units)])
    measures = [measure_mup(true_muap(simulator.shapes, simulator.gains, int(u), FS), FS) for u in units]
    return {
        "amplitude": float(np.mean([m.amplitude_uv for m in measures])),
        "duration": float(np.mean([m.duration_ms for m in measures])),
    }


def test_disease_changes_the_tissue_and_the_muaps_follow(subjects):
    healthy, myopathy, neuropathy = (subjects[n] for n in ("healthy", "myopathy", "neuropathy"))
    # neuropathy: units lost, survivors carry the orphaned fibres; myopathy: units kept, fibres lost and varied
    assert neuropathy.n_motor_units < 0.4 * healthy.n_motor_units
    counts = {name: sim.fibres.counts[: sim.n_motor_units].mean() for name, sim in subjects.items()}
    assert counts["neuropathy"] > 2.0 * counts["healthy"]
    assert myopathy.n_motor_units >= 100 and counts["myopathy"] < 0.8 * counts["healthy"]
    assert np.std(myopathy.fibres.diameter_um) > 1.6 * np.std(healthy.fibres.diameter_um)
    figures = {name: near_unit_measures(sim) for name, sim in subjects.items()}
    assert figures["myopathy"]["amplitude"] < figures["healthy"]["amplitude"] < figures["neuropathy"]["amplitude"]
    assert figures["myopathy"]["duration"] < figures["healthy"]["duration"] < figures["neuropathy"]["duration"]
    assert 5.0 < figures["healthy"]["duration"] < 15.0  # ms, concentric-needle MUPs of a healthy limb muscle


def test_denervated_fibres_fibrillate_at_rest_and_healthy_rest_is_silent():
    def rest(condition: str) -> EmgSimulator:
        return EmgSimulator(SimulationConfig(layout="needle", fs=FS, condition=condition, severity="severe",
                                             profile="rest", tissue="fibres", seed=1, artifacts=(),
                                             record_spikes=True))

    healthy = rest("healthy")
    assert healthy.pool.n_units == healthy.n_motor_units and not np.any(healthy.generate(2.0))
    neuropathy = rest("neuropathy")
    data = neuropathy.generate(4.0)[:, 0]
    sources = np.arange(neuropathy.n_motor_units, neuropathy.pool.n_units)
    assert sources.size >= 2 and np.abs(data).max() > 20.0
    units = np.concatenate([u for u, _ in neuropathy.spike_log])
    times = np.concatenate([t for _, t in neuropathy.spike_log])
    assert set(np.unique(units)) <= set(sources)  # at rest only the denervated fibres fire
    for source in np.unique(units):
        intervals = np.diff(times[units == source])
        rate = neuropathy.pool.min_rate_hz[source]
        assert 0.5 <= rate <= 15.0
        if intervals.size > 2:
            assert np.std(intervals) / np.mean(intervals) < 0.1  # regular, as fibrillations fire
        spike = true_muap(neuropathy.shapes, neuropathy.gains, int(source), FS)
        above = np.flatnonzero(np.abs(spike) > 0.1 * np.abs(spike).max())
        assert 10.0 < np.ptp(spike) < 1000.0 and (above[-1] - above[0]) / FS < 8e-3  # brief single-fibre spikes


def test_force_is_matched_so_myopathy_recruits_more_units_and_neuropathy_fewer_firing_faster(subjects):
    from simulators.force import twitch_gain

    assert twitch_gain(np.array([0.1, 0.4]))[0] == 1.0 and twitch_gain(np.array([0.8, 1.6])).max() < 1.0
    active, rates, strength = {}, {}, {}
    for name, sim in subjects.items():
        drive = sim.excitation(np.array([0.10]))  # 10 % of a healthy muscle's MVC
        firing = sim.pool.firing_rate(np.full(sim.n_motor_units, drive[0]), slice(0, sim.n_motor_units))
        active[name], rates[name] = int((firing > 0).sum()), float(firing[firing > 0].mean())
        strength[name] = sim.force.max_force
        # within a few %: a few large (reinnervated) units make force in steps, one unit's recruitment a step
        assert sim.force.force_at(float(drive[0])) / sim.force.reference == pytest.approx(0.10, rel=0.05)
        truth = sim.ground_truth()
        assert truth["drive"] == pytest.approx(float(drive[0]), abs=1e-4)
        assert truth["severity"] == ("none" if name == "healthy" else "severe")
    assert 0.8 < strength["healthy"] < 1.25 and strength["myopathy"] < 0.7 * strength["healthy"]
    assert active["myopathy"] > 1.3 * active["healthy"] > 1.3 * active["neuropathy"]
    assert rates["neuropathy"] > rates["healthy"]


def test_near_fibres_jitter_and_block_from_discharge_to_discharge_and_sum_back_to_the_unit(subjects):
    from simulators.jitter import LEAD_S

    sim = subjects["neuropathy"]
    jitter = sim._jitter
    assert jitter.parents.size > 0 and 60e-6 <= jitter.sd_s <= 120e-6 and 0.05 <= jitter.blocking <= 0.10
    # the unit's template = what is left + its children put back at their own time
    render, lead = sim._render_shapes, int(round(LEAD_S * sim.shapes.fs))
    unit = int(jitter.parents[0])
    rebuilt = render.templates[unit].copy()
    for k in np.flatnonzero(jitter.parents == unit):
        child = render.templates[jitter.first_child + k]
        rebuilt[lead:] += child[: rebuilt.size - lead]
    full = sim.shapes.templates[unit]
    n = min(full.size, rebuilt.size)
    assert np.abs(rebuilt[:n] - full[:n]).max() < 0.01 * np.abs(full).max()
    units = np.repeat(jitter.parents[:1], 20_000)
    expanded, times = jitter.expand(units, np.zeros(units.size), np.random.default_rng(0))
    children = times[expanded >= jitter.first_child] - LEAD_S
    per_spike = int((jitter.parents == jitter.parents[0]).sum())
    assert np.std(children) == pytest.approx(jitter.sd_s, rel=0.05)
    assert 1.0 - children.size / (units.size * per_spike) == pytest.approx(jitter.blocking, abs=0.01)


def test_fibre_model_is_deterministic_and_chunk_invariant(subjects):
    config = subjects["neuropathy"].config
    whole = EmgSimulator(config).generate(1.0)
    reader = EmgSimulator(config)
    sizes = [7, 333, 1, 2048, 10_000]
    parts, done = [], 0
    for size in sizes:
        size = min(size, whole.shape[0] - done)
        parts.append(reader.read(size))
        done += size
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    assert np.abs(whole).max() > 100.0


def test_needle_noise_floor_is_fixed_and_does_not_follow_the_muscle(subjects):
    # the electrode's and amplifier's floor, measured on the real recordings, is the same in every diagnosis
    expected = fibre_model.NEEDLE_NOISE_UV_PER_RT_HZ * np.sqrt(FS / 2.0)
    for simulator in subjects.values():  # healthy, severe myopathy, severe neuropathy: one floor
        assert simulator.noise_rms_uv == pytest.approx(expected)


def test_true_spectrum_matches_the_generated_needle_signal(subjects):
    simulator = EmgSimulator(subjects["healthy"].config)
    data = simulator.generate(4.0)[:, 0].astype(np.float64)
    freqs, psd = signal.welch(data, fs=FS, nperseg=2048)
    measured = float((freqs * psd).sum() / psd.sum())
    assert simulator.ground_truth()["true_mnf_hz"] == pytest.approx(measured, rel=0.15)


@pytest.mark.parametrize(
    "change, message",
    [({"layout": ElectrodeLayout("custom", np.zeros((1, 2)), ("A",))}, "needs a needle, ring or grid layout"),
     ({"severity": "terminal"}, "unknown severity"),
     ({"tissue": "gel"}, "unknown tissue model")],
)
def test_fibre_settings_are_checked(change, message):
    settings = {"layout": "needle", "fs": FS, "tissue": "fibres", **change}
    with pytest.raises(ValueError, match=message):
        EmgSimulator(SimulationConfig(**settings))


def test_cli_options_reach_the_config_and_a_surface_layout_is_accepted():
    import argparse

    from monitor.commands.simulate import build_config, register
    from monitor.errors import UserError

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["simulate", "--layout", "needle", "--tissue", "fibres", "--severity", "severe"])
    config = build_config(args)
    assert (config.tissue, config.severity) == ("fibres", "severe")
    # since the fibre-level surface model (simulators.surface) a ring or grid takes the fibre model too
    config = build_config(parser.parse_args(["simulate", "--layout", "ring8", "--tissue", "fibres"]))
    assert (config.tissue, config.layout) == ("fibres", "ring8")
    with pytest.raises(UserError, match="contraction level"):
        build_config(parser.parse_args(["simulate", "--layout", "ring8", "--tissue", "fibres", "--mvc", "120"]))


def test_reinnervation_packs_adopted_fibres_next_to_their_parents_in_a_territory_that_hardly_grows():
    """Collateral sprouts reach the denervated junctions next to the unit's own fibres: fibre density rises, the
    territory stays (Stålberg & Dioszeghy 1991); until fibre model .6 the groups were moved outwards with a grown
    territory, which diluted the density the needle sees."""
    from dataclasses import replace

    from simulators.conditions import draw_subject
    from simulators.fibres import grow_fibres, territory_radius_mm
    from simulators.motor_units import build_pool
    from simulators.tissue import draw_tissue

    layout = ElectrodeLayout.needle()

    def density_and_spread(condition: str) -> tuple[float, float]:
        tissue = draw_tissue(condition, "severe", np.random.default_rng([0, 3]))
        units = max(3, int(round(tissue.units_before_loss * (1.0 - tissue.unit_loss))))
        rng = np.random.default_rng([0, 1])
        pool = build_pool(layout, replace(draw_subject("healthy", rng), n_units=units), rng)
        fibres = grow_fibres(pool, tissue, np.zeros(2), np.random.default_rng(5), reach_mm=None)
        densities, spreads = [], []
        for unit in range(0, units, max(1, units // 8)):
            xy = fibres.xy_mm[fibres.unit == unit]
            sample = xy[:: max(1, len(xy) // 40)]
            distance = np.hypot(*(sample[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
            densities.append(np.mean((distance < 0.3).sum(axis=1)))
            radius = territory_radius_mm(pool)[unit]
            spreads.append(np.percentile(np.hypot(*(xy - pool.position_mm[unit, :2]).T), 95) / radius)
        return float(np.mean(densities)), float(np.mean(spreads))

    healthy, neuropathy = density_and_spread("healthy"), density_and_spread("neuropathy")
    assert neuropathy[0] > 3.0 * healthy[0]  # fibre density: the adopted fibres sit around their parents
    assert neuropathy[1] < 1.05 * healthy[1]  # the territory grows only at its edge


def test_core_is_its_elliptical_face_in_the_bevel_plane_averaged_over_its_area():
    """The core's face (0.15 mm wire cut at 15°: 0.15 x 0.58 mm, ~0.07 mm²) lies in the bevel plane; a fibre in
    front of it is seen at its true distance and the face averages over its area (brute force: a dense grid of the
    ellipse), also for a fibre touching it."""
    assert np.pi / 4.0 * fibre_model.CORE_WIDTH_MM * fibre_model.CORE_LENGTH_MM == pytest.approx(0.068, abs=0.002)
    half_major, half_minor = 0.5 * fibre_model.CORE_LENGTH_MM, 0.5 * fibre_model.CORE_WIDTH_MM
    s, t = np.meshgrid(np.linspace(-1, 1, 401) * half_major, np.linspace(-1, 1, 121) * half_minor, indexing="ij")
    on_face = (s / half_major) ** 2 + (t / half_minor) ** 2 <= 1.0
    s, t = s[on_face], t[on_face]
    z = np.array([-0.4, -0.1, 0.0, 0.05, 0.3])
    ratio = fibre_model.SIGMA_RADIAL / fibre_model.SIGMA_AXIAL
    area = np.pi * half_major * half_minor * 1e-6
    for along, off_face in ((0.0, 0.03), (0.1, 0.1), (-0.2, 0.3), (0.5, 0.05)):
        exact = fibre_model._face_integral(np.array([along]), np.array([off_face]), z, half_major, half_minor)[0] / area
        rho2 = (s - along) ** 2 + off_face**2
        brute = np.array([np.mean(1.0 / np.sqrt(rho2 + ratio * (zz - t) ** 2)) for zz in z]) * 1e3
        assert exact * np.sqrt(fibre_model.SIGMA_RADIAL * fibre_model.SIGMA_AXIAL) == pytest.approx(brute, rel=0.03)
    # the face is where the bevel plane crosses the axis: nearer the face, larger, but finite at the metal
    centre, normal = np.asarray(fibre_model.CORE_CENTRE_XY_MM), fibre_model._FACE_NORMAL
    peaks = [fibre_model.needle_weighting((centre + h * normal)[None], z).max() for h in (0.01, 0.05, 0.2, 0.8)]
    assert all(a > b for a, b in zip(peaks, peaks[1:], strict=False)) and np.isfinite(peaks[0])


def test_fibres_lie_outside_the_needle_and_against_its_bevel(subjects):
    """No fibre passes through the needle (cannula cut by the bevel plane); fibres in front of the bevel lie
    against its face, near the core, as they do around a real concentric needle."""
    centre, normal = np.asarray(fibre_model.CORE_CENTRE_XY_MM), fibre_model._FACE_NORMAL
    points = np.array([centre + 0.05 * normal, centre - 0.05 * normal, centre + [-3.0, 0.0], centre + [0.0, 0.5]])
    assert fibre_model.inside_needle(points).tolist() == [False, True, True, False]
    for simulator in subjects.values():
        fibres = simulator.fibres
        assert not fibre_model.inside_needle(fibres.xy_mm, 0.5e-3 * fibres.diameter_um - 1e-9).any()
    off_face = (subjects["healthy"].fibres.xy_mm - centre) @ normal
    along = (subjects["healthy"].fibres.xy_mm - centre) @ fibre_model._FACE_ALONG
    assert np.any((off_face < 0.1) & (np.abs(along) < 0.5 * fibre_model.CORE_LENGTH_MM))
