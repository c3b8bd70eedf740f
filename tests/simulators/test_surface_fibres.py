"""The fibre-level surface model (simulators.surface): the layered volume conductor against the analytic half-space,
the fat layer's attenuation, and a small fibre-level grid that is deterministic, chunk-invariant and anti-aliased.
About 5 s CPU in all (two small grids built)."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
from scipy import signal

from simulators import surface
from simulators.emg import EmgSimulator, SimulationConfig
from simulators.surface import SIGMA_MUSCLE_AXIAL as SIGMA_AXIAL
from simulators.surface import SIGMA_MUSCLE_RADIAL as SIGMA_RADIAL

CONFIG = {"layout": "grid3x2", "profile": "hold", "mvc_percent": 30.0, "tissue": "fibres", "artifacts": (), "seed": 2}


def _field(depth_mm: float, fat_mm: float, skin_mm: float) -> tuple[np.ndarray, int, int]:
    n_x, n_z, step = 256, 1024, surface.GRID_MM * 1e-3
    kx = 2.0 * math.pi * np.fft.fftfreq(n_x, step)[:, None]
    kz = 2.0 * math.pi * np.fft.rfftfreq(n_z, step)[None, :]
    spectrum = surface.layered_transfer(kx, kz, depth_mm, fat_mm, skin_mm)
    return np.fft.fftshift(np.fft.irfft2(spectrum, s=(n_x, n_z))) / step**2, n_x // 2, n_z // 2


def test_without_fat_and_skin_the_conductor_is_the_anisotropic_half_space():
    field, cx, cz = _field(4.0, 0.0, 0.0)

    def analytic(x_mm: float, z_mm: float) -> float:  # twice the infinite medium's (mirror source)
        rho2 = (x_mm * 1e-3) ** 2 + 16e-6
        axial2 = (z_mm * 1e-3) ** 2
        return 2.0 / (4.0 * math.pi * math.sqrt(SIGMA_RADIAL * SIGMA_AXIAL * rho2 + SIGMA_RADIAL**2 * axial2))

    # the k = 0 term is left out (a constant over the skin, which a fibre's zero net current cancels): compare
    # differences between points
    step = surface.GRID_MM
    for x, z in ((5.0, 0.0), (0.0, 10.0), (4.0, 6.0)):
        numeric = field[cx, cz] - field[cx + int(x / step), cz + int(z / step)]
        assert numeric == pytest.approx(analytic(0.0, 0.0) - analytic(x, z), rel=0.02)


def test_fat_attenuates_and_widens_the_surface_potential():
    thin, cx, cz = _field(3.0, 1.0, 1.0)
    thick, _, _ = _field(3.0, 6.0, 1.0)
    peak_thin = thin[cx, cz] - thin[cx, 0]
    peak_thick = thick[cx, cz] - thick[cx, 0]
    assert peak_thick < 0.8 * peak_thin

    def half_width(field: np.ndarray) -> int:
        profile = field[cx, :] - field[cx, 0]
        return int((profile > 0.5 * profile.max()).sum())

    assert half_width(thick) > half_width(thin)


@pytest.fixture(scope="module")
def grid_sim() -> EmgSimulator:
    return EmgSimulator(SimulationConfig(**CONFIG))


def test_fibre_surface_stream_is_chunk_invariant_and_deterministic(grid_sim):
    chunked_sim = copy.deepcopy(grid_sim)
    whole = grid_sim.read(1536)
    parts = np.concatenate([chunked_sim.read(n) for n in (1, 63, 700, 512, 260)])
    np.testing.assert_array_equal(whole, parts)
    again = EmgSimulator(SimulationConfig(**CONFIG)).read(1536)
    np.testing.assert_array_equal(whole, again)
    assert np.isfinite(whole).all() and whole.std() > 1.0
    assert grid_sim.ground_truth()["drive"] > 0
    assert float(np.min(grid_sim.surface_energy_kept)) > 0.99  # the SVD's 6 time courses keep the templates


def test_fibre_surface_templates_are_anti_aliased_and_propagate(grid_sim):
    # the time courses carry nothing above the recording's Nyquist frequency (anti-alias FIR at 0.45 fs)
    templates = grid_sim.shapes.templates
    freqs, power = signal.periodogram(templates, fs=grid_sim.shapes.fs, axis=1)
    above = power[:, freqs > grid_sim.fs / 2].sum()
    assert above < 1e-3 * power.sum()  # measured ~1e-4 (the FIR is -28 dB at Nyquist, -60 dB by 0.6 fs)
    # rows along the fibres see a unit's potential at different times (propagation is in the templates)
    unit = int(np.argmax(np.abs(templates).max(axis=1))) // surface.RANK
    rows = slice(unit * surface.RANK, (unit + 1) * surface.RANK)
    per_channel = grid_sim.gains[rows].T @ templates[rows]  # (C, T) the unit's MUAP at each channel
    peaks = np.argmax(np.abs(per_channel), axis=1)
    assert np.ptp(peaks) > 0


def test_legacy_surface_unchanged_by_default():
    simulator = EmgSimulator(SimulationConfig(layout="grid3x2", profile="hold", artifacts=(), seed=2))
    assert simulator.tissue is None and simulator._unit_of is None


def test_a_recording_names_the_surface_model_version(grid_sim):
    from simulators.files import record

    recording = record(copy.deepcopy(grid_sim), 0.1)
    assert recording.config["surface_model_version"] == surface.SURFACE_MODEL_VERSION


def test_true_spectrum_matches_the_generated_surface_signal(grid_sim):
    simulator = copy.deepcopy(grid_sim)
    data = simulator.generate(3.0).astype(np.float64)
    freqs, psd = signal.welch(data - data.mean(axis=0), fs=simulator.fs, nperseg=1024, axis=0)
    total = psd.sum(axis=1)
    measured = float((freqs * total).sum() / total.sum())
    assert simulator.ground_truth()["true_mnf_hz"] == pytest.approx(measured, rel=0.1)  # one-off: 60.0 vs 59.2


def test_the_needle_and_the_surface_model_share_the_muscles_conductivities():
    from simulators import fibres

    # one muscle, one tissue: Farina & Merletti 2001's 0.1 S/m across and 0.5 S/m along the fibres (docs/simulator.md)
    assert (surface.SIGMA_MUSCLE_RADIAL, surface.SIGMA_MUSCLE_AXIAL) == (fibres.SIGMA_RADIAL, fibres.SIGMA_AXIAL)
    assert (fibres.SIGMA_RADIAL, fibres.SIGMA_AXIAL) == (0.1, 0.5)
