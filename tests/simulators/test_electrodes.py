"""Electrode layouts: geometry, labels and the JSON round trip that the stream description and model cards use."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simulators.electrodes import ElectrodeLayout


def test_ring8_sits_on_a_26cm_forearm_with_equal_neighbour_chords():
    layout = ElectrodeLayout.from_name("ring8")
    assert layout.n_channels == 8 and layout.kind == "ring" and layout.coordinates == "cross_section"
    radii = np.hypot(*layout.positions_mm.T)
    np.testing.assert_allclose(radii, 260.0 / (2 * math.pi))
    chords = np.linalg.norm(layout.positions_mm - np.roll(layout.positions_mm, 1, axis=0), axis=1)
    np.testing.assert_allclose(chords, 2 * radii[0] * math.sin(math.pi / 8))


def test_grid8x8_labels_and_spacing():
    layout = ElectrodeLayout.from_name("grid8x8")
    assert layout.n_channels == 64 and (layout.rows, layout.cols) == (8, 8)
    assert layout.labels[0] == "R01C01" and layout.labels[9] == "R02C02" and layout.labels[-1] == "R08C08"
    np.testing.assert_allclose(layout.positions_mm[9], [8.0, 8.0])
    np.testing.assert_allclose(layout.positions_mm[-1], [56.0, 56.0])


def test_grid13x5_matches_the_64_channel_otb_grid():
    layout = ElectrodeLayout.from_name("grid13x5")
    assert layout.n_channels == 64 and "R01C01" not in layout.labels and layout.labels[0] == "R01C02"
    assert ElectrodeLayout.grid(13, 5).n_channels == 65


def test_needle_is_one_channel():
    layout = ElectrodeLayout.from_name("needle")
    assert layout.n_channels == 1 and layout.kind == "needle"


@pytest.mark.parametrize("name", ["ring8", "grid8x8", "grid13x5", "needle", "ring16"])
def test_json_round_trip(name):
    layout = ElectrodeLayout.from_name(name)
    restored = ElectrodeLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert restored == layout
    np.testing.assert_array_equal(restored.positions_mm, layout.positions_mm)


@pytest.mark.parametrize("name", ["ring0", "grid8", "gridAxB", "hexagon"])
def test_unknown_names_raise_a_clear_error(name):
    with pytest.raises(ValueError, match="layout"):
        ElectrodeLayout.from_name(name)


def test_malformed_dict_raises_value_error():
    with pytest.raises(ValueError):
        ElectrodeLayout.from_dict({"kind": "grid"})
    with pytest.raises(ValueError):
        ElectrodeLayout.from_dict({"kind": "grid", "positions_mm": [[0, 0]], "labels": ["a", "b"]})
