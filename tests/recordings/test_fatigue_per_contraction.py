"""`neurofusion analyze`: fatigue figures per contraction, and a recording with no rest analysed as one contraction,
checked against an independent computation (scipy filters + Welch median frequency per window + np.polyfit)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.cli import main

PERIOD_S = 12.0  # rest 0-12 s, contraction 12-24 s, rest 24-36 s, contraction 36-48 s


@pytest.fixture(scope="module")
def two_contractions(tmp_path_factory) -> Path:
    """A simulated subject contracting twice at 50 %MVC, fatiguing fast (conduction velocity -0.9 of its fresh
    value per minute at 50 %MVC), as an NPZ file written by the simulator's own writer."""
    from simulators.emg import EmgSimulator, SimulationConfig
    from simulators.files import record, write

    config = SimulationConfig(profile="intermittent", period_s=PERIOD_S, mvc_percent=50.0, fatigue_rate=0.9, seed=5)
    return write(record(EmgSimulator(config), 4 * PERIOD_S), tmp_path_factory.mktemp("fatigue") / "two.npz")


@pytest.fixture(scope="module")
def report(two_contractions, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report")
    assert main(["analyze", str(two_contractions), "--no-model", "--out", str(out), "--quiet"]) == 0
    return out


def test_each_contraction_gets_its_own_figures_and_a_falling_median_frequency(report):
    fatigue = json.loads((report / "summary.json").read_text())["fatigue"]
    contractions = fatigue["contractions"]
    assert fatigue["contraction_source"] == "activity" and "note" not in fatigue
    assert len(contractions) == 2
    for contraction, onset in zip(contractions, (PERIOD_S, 3 * PERIOD_S), strict=True):
        # inside the commanded contraction, less the half second at either edge where force and rest mix
        assert onset < contraction["start_s"] < onset + 1.0
        assert onset + PERIOD_S - 1.0 < contraction["end_s"] <= onset + PERIOD_S
        assert contraction["mdf_slope_hz_per_min"] < 0 and contraction["mdf_slope_ci_pct_per_min"][1] < 0
        assert contraction["mnf_slope_hz_per_min"] < 0 and contraction["mdf_change_pct"] < -5.0
        assert contraction["fins_change_pct"] > 0  # FInsm5 rises with fatigue (Dimitrov 2006)
        assert contraction["state"] in ("fatiguing", "fatigued")
    # the headline figures are the longest contraction's, not a line through both (and the rest between)
    longest = contractions[fatigue["longest_contraction"]]
    assert fatigue["mdf_slope_hz_per_min"] == longest["mdf_slope_hz_per_min"]
    text = (report / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| 1 |") or line.startswith("| 2 |")]
    assert len(rows) == 2 and all(contraction["state"] in row for contraction, row in zip(contractions, rows,
                                                                                           strict=True))
    assert (report / "fatigue.png").read_bytes()[:4] == b"\x89PNG"


def independent_mdf_slope(data: np.ndarray, fs: float, window_ends: np.ndarray, window: int) -> float:
    """Hz/min: the monitor's filters rebuilt from scipy (4th-order Butterworth 20-450 Hz, 50 Hz notches, causal
    from the slice's first sample), one rectangular Welch segment per window, MDF where the cumulative power
    reaches half (interpolated), median over channels, a least-squares line over the window centres."""
    from scipy.signal import butter, iirnotch, sosfilt, tf2sos, welch

    sos = np.vstack([butter(4, [20, 450], btype="bandpass", fs=fs, output="sos")]
                    + [tf2sos(*iirnotch(f0, 30, fs)) for f0 in range(50, 450, 50)])  # fmt: skip
    filtered = sosfilt(sos, data, axis=0)
    medians = []
    for end in window_ends:
        frequencies, power = welch(filtered[end - window : end], fs=fs, window="boxcar", nperseg=window,
                                   detrend=False, axis=0)  # fmt: skip
        cumulative = np.cumsum(power, axis=0)
        medians.append(np.median([np.interp(cumulative[-1, c] / 2, cumulative[:, c], frequencies)
                                  for c in range(data.shape[1])]))  # fmt: skip
    centres_min = (window_ends - window / 2) / fs / 60.0
    return float(np.polyfit(centres_min, medians, 1)[0])


def test_a_slice_from_inside_a_hold_is_one_contraction_with_the_independent_slope(two_contractions, tmp_path):
    from monitor.recordings import open_recording

    start, end = 3 * PERIOD_S + 1.5, 4 * PERIOD_S - 0.5  # inside the second hold: no rest at all
    out = tmp_path / "whole"
    assert main(["analyze", str(two_contractions), "--no-model", "--start", str(start), "--end", str(end),
                 "--whole-contraction", "--out", str(out), "--quiet"]) == 0  # fmt: skip
    fatigue = json.loads((out / "summary.json").read_text())["fatigue"]
    [contraction] = fatigue["contractions"]
    assert fatigue["contraction_source"] == "whole recording"
    assert contraction["duration_s"] == pytest.approx(end - start, abs=0.1)  # its windows cover it all
    part = open_recording(two_contractions).slice_seconds(start, end)
    with (out / "windows.csv").open() as handle:
        ends = np.array([int(line.split(",")[1]) for line in list(handle)[1:]])
    window = int(round(0.2 * part.fs))
    # the live rule's line (dsp.fatigue.line_windows, as stretch_change_pct): windows ending settle_s or more after
    # the first one (a steady hold: every later window is at the baseline's force)
    from dsp.fatigue import FatigueSettings

    settled = ends - ends[0] >= FatigueSettings().settle_s * part.fs
    expected = independent_mdf_slope(part.data, part.fs, ends[settled], window)
    assert expected < -20.0  # the simulated fall is steep: the comparison is not between two noise figures
    assert contraction["mdf_slope_hz_per_min"] == pytest.approx(expected, rel=0.01)
    assert "whole analysed part taken as one contraction" in (out / "report.md").read_text()


def test_without_the_option_a_recording_with_no_rest_says_so_and_how_to_analyse_it(two_contractions, tmp_path):
    out = tmp_path / "no-rest"
    assert main(["analyze", str(two_contractions), "--no-model", "--start", str(3 * PERIOD_S + 1.5),
                 "--out", str(out), "--quiet"]) == 0  # fmt: skip
    note = json.loads((out / "summary.json").read_text())["fatigue"]["note"]
    assert note.startswith("no rest found") and "--whole-contraction" in note
    assert "--whole-contraction" in (out / "report.md").read_text()


def test_given_contraction_spans_and_their_refusals(two_contractions, tmp_path, capsys):
    out = tmp_path / "given"
    assert main(["analyze", str(two_contractions), "--no-model", "--contraction", "13-23", "--contraction",
                 "37-47", "--out", str(out), "--quiet", "--no-figures"]) == 0  # fmt: skip
    fatigue = json.loads((out / "summary.json").read_text())["fatigue"]
    assert fatigue["contraction_source"] == "given spans"
    assert [(round(c["start_s"]), round(c["end_s"])) for c in fatigue["contractions"]] == [(13, 23), (37, 47)]
    for bad, message in ((["--contraction", "9"], "expected START-END"), (["--contraction", "5-2"], "START < END"),
                         (["--contraction", "1-2", "--whole-contraction"], "give one of them")):
        assert main(["analyze", str(two_contractions), "--no-model", *bad, "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err


def test_the_report_figure_uses_the_live_badges_colours():
    from monitor.gui.fatigue import STATE_COLOURS as LIVE
    from monitor.recordings.fatigue_report import STATE_COLOURS

    assert STATE_COLOURS == LIVE


def test_on_real_myo_gestures_each_gesture_is_one_contraction():
    """Participant 12345, session 1, radial deviation: six 5 s gestures between 5 s rests (real EMG, 200 Hz)."""
    from monitor.recordings import open_recording
    from monitor.recordings.analysis import analyze_recording

    path = Path(__file__).resolve().parents[3] / "shared" / "data" / "myo-gestures" / "12345-1" / "3.txt"
    recording = open_recording(path, preset="myo")
    onsets = np.flatnonzero(np.diff((recording.labels > 0).astype(int)) == 1) / recording.fs
    contractions = analyze_recording(recording).contractions
    assert len(contractions) == len(onsets) == 6
    for contraction, onset in zip(contractions, onsets, strict=True):
        # found from the signal alone: after the cue (the muscle answers late), inside the 5 s gesture
        assert onset < contraction.start_s < onset + 1.5 and contraction.end_s < onset + 5.5
        assert contraction.duration_s > 3.0 and contraction.state is None  # under 10 s: too short to judge


def test_the_fatigue_figure_draws_each_contractions_trend_line_and_state(two_contractions, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot
    from matplotlib.colors import to_rgb

    from monitor.recordings import open_recording
    from monitor.recordings.analysis import analyze_recording
    from monitor.recordings.fatigue_report import STATE_COLOURS, TREND_COLOUR, fatigue_figure

    class KeepFigure:  # pyplot, except that the figure is kept for inspection instead of closed
        figure = None

        def __getattr__(self, name):
            return getattr(pyplot, name)

        def close(self, figure):
            self.figure = figure

    analysis = analyze_recording(open_recording(two_contractions))
    keeper = KeepFigure()
    fatigue_figure(analysis, tmp_path / "fatigue.png", keeper)
    spectral, _, strip = keeper.figure.axes
    trends = [line for line in spectral.lines if line.get_linestyle() == "--"]
    assert len(trends) == len(analysis.contractions) == 2
    for line, contraction in zip(trends, analysis.contractions, strict=True):
        assert to_rgb(line.get_color()) == pytest.approx(TREND_COLOUR)
        x, y = line.get_data()
        assert x.tolist() == [contraction.start_s, contraction.end_s]
        assert y[1] - y[0] == pytest.approx(contraction.mdf_slope_hz_per_min * contraction.duration_s / 60.0)
    # each contraction shaded in its state's colour, and the live states along the bottom
    shades = [patch.get_facecolor()[:3] for patch in spectral.patches]
    expected = [tuple(c / 255 for c in STATE_COLOURS[contraction.state]) for contraction in analysis.contractions]
    assert [pytest.approx(colour) for colour in expected] == shades
    assert len(strip.images) == 1
    pyplot.close(keeper.figure)
