"""`neurofusion simulate` and `neurofusion demo` expose the simulator's tissue, severity and fatigue models: the
flags reach SimulationConfig, bad combinations are one-line errors, and a written file records them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import build_parser, main
from monitor.commands import simulate
from monitor.commands.demo import check_simulator_arguments, simulator_arguments
from monitor.errors import UserError
from simulators.emg import SimulationConfig
from simulators.tissue import SEVERITIES


def simulate_config(*arguments: str) -> SimulationConfig:
    return simulate.build_config(build_parser().parse_args(["simulate", *arguments]))


def demo_config(*arguments: str) -> SimulationConfig:
    """The config of the amplifier `neurofusion demo ARGUMENTS` would start."""
    demo = build_parser().parse_args(["demo", *arguments])
    return simulate.build_config(build_parser().parse_args(simulator_arguments(demo, "nf-test")))


def test_the_cli_constants_are_the_simulators_own() -> None:
    assert simulate.SEVERITIES == SEVERITIES
    defaults = SimulationConfig()
    assert (defaults.severity, defaults.fatigue_rate) == (simulate.DEFAULT_SEVERITY, simulate.DEFAULT_FATIGUE_RATE)


def test_defaults_are_the_legacy_models_on_surface_electrodes() -> None:
    for config in (simulate_config(), demo_config(), simulate_config("--layout", "grid8x8")):
        assert (config.tissue, config.severity, config.fatigue_model) == ("legacy", "moderate", "legacy")
    assert simulate_config().fatigue_rate == SimulationConfig().fatigue_rate


def test_a_needle_defaults_to_the_fibre_model_which_the_real_patients_model_reads() -> None:
    """A needle's MUPs come from the fibre model, the one checked against real needle recordings (docs/simulator.md);
    --tissue legacy still chooses the old one."""
    for config in (simulate_config("--layout", "needle"), demo_config("--needle"), demo_config("--layout", "needle")):
        assert (config.tissue, config.severity) == ("fibres", "moderate")
    assert simulate_config("--layout", "needle", "--tissue", "legacy").tissue == "legacy"
    assert demo_config("--needle", "--severity", "mild").severity == "mild"  # no --tissue needed on a needle


@pytest.mark.parametrize("layout", ["needle", "ring8", "grid8x8"])
def test_the_flags_reach_the_config_from_simulate_and_demo(layout: str) -> None:
    flags = ("--layout", layout, "--tissue", "fibres", "--condition", "neuropathy", "--severity", "severe",
             "--fatigue-model", "endurance")  # fmt: skip
    for config in (simulate_config(*flags), demo_config(*flags)):
        assert (config.tissue, config.severity, config.fatigue_model) == ("fibres", "severe", "endurance")
        assert config.electrode_layout().kind == ("needle" if layout == "needle" else layout[:4])


def test_help_says_where_fibres_work() -> None:
    import argparse

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in ("simulate", "demo"):
        helps = {a.dest: a.help for a in commands[command]._actions}
        assert "needle, ring or grid" in helps["tissue"]
        assert {"severity", "fatigue_model"} <= helps.keys()


@pytest.mark.parametrize(
    "arguments",
    [
        ["--severity", "mild"],  # legacy tissue (the surface default): one severity per condition
        ["--fatigue-model", "endurance", "--fatigue-rate", "0.3"],  # the rate follows the force
        ["--tissue", "fibres", "--layout", "needle", "--fs", "1000"],  # the simulator's own check
    ],
)
def test_bad_combinations_are_one_line_errors(arguments: list[str]) -> None:
    with pytest.raises(UserError) as error:
        simulate_config(*arguments)
    assert "\n" not in str(error.value)
    if "--fatigue-rate" in arguments:
        return  # the demo has no --fatigue-rate
    demo = build_parser().parse_args(["demo", *arguments])
    with pytest.raises(UserError):  # refused before the amplifier's process starts
        check_simulator_arguments(demo, "nf-test")


def test_simulate_to_a_file_records_the_models(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fibres.npz"
    code = main([
        "simulate", "--out", str(out), "--duration", "0.5", "--layout", "needle", "--tissue", "fibres",
        "--condition", "myopathy", "--severity", "mild", "--fatigue-model", "endurance", "--profile", "hold",
        "--mvc", "10", "--artifacts", "none",
    ])  # fmt: skip
    assert code == 0
    with np.load(out, allow_pickle=False) as npz:
        config = json.loads(str(npz["config_json"]))
    assert (config["tissue"], config["severity"], config["fatigue_model"]) == ("fibres", "mild", "endurance")
    assert config["condition"] == "myopathy"
    assert "endurance_fatigue_version" in config

    assert main(["simulate", "--out", str(out), "--duration", "0.5", "--severity", "mild"]) != 0
    assert capsys.readouterr().err.strip().count("\n") == 0  # one line, no traceback
