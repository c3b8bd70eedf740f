"""The terminal dashboard for servers and terminals, and JSON lines of every decision."""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

import numpy as np
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from dsp.fatigue import NOT_ASSESSED
from monitor.acquisition import channel_count_text, dropped_figure, signal_status
from monitor.number_text import dash_number
from monitor.outlets import emg_mean
from monitor.pipeline import SPONTANEOUS_LABEL, MonitorPipeline, MuscleState

# DecisionRecord's latency parts, in the order a sample meets them; they sum to its latency_s
LATENCY_PARTS = ("acquisition", "dsp", "worker", "transport", "publication")
#: rich style of each SignalStatus state; red for anything else
SIGNAL_STYLES = {"streaming": "green", "waiting": "yellow", "confirming": "yellow"}


def decision_line(
    record: Any, features: dict[str, np.ndarray] | None, usable: np.ndarray | None, emg_channels: np.ndarray | None,
    fatigue: Any = None,
) -> str:
    """One JSON object per decision: what a lab keeps and what scripts parse. With the tracker's latest report
    (``fatigue``, a dsp.fatigue.FatigueReport) it carries ``fatigue_state`` and, where that is "not assessed",
    ``fatigue_reason``: a script never reads "fresh" where nothing was assessed."""
    # rounded in float64: the history's float32 0.95, rounded as float32, prints as 0.949999988079071
    probabilities = np.round(np.asarray(record.probabilities, dtype=np.float64), 4).tolist()
    payload = {
        "timestamp": record.last_timestamp,
        "sequence": record.sequence,
        "label": record.label,
        "muscle": record.muscle.value,  # "contracting" where the label is a condition
        "probabilities": dict(zip(record.classes, probabilities, strict=True)),
        "model_id": record.model_id,
        "latency_ms": round(record.latency_s * 1000.0, 3),
        "worker_ms": round(record.worker_s * 1000.0, 3),
    }
    for part in LATENCY_PARTS:
        value = getattr(record, f"{part}_s")
        if value is not None and part != "worker":  # worker_ms is always there, above
            payload[f"{part}_ms"] = round(value * 1000.0, 3)
    if features is not None:
        # six significant digits, not decimals: FInsm5 is ~1e-13 (a ratio of spectral moments in s^-4) and three
        # decimals wrote it as 0.0
        payload["fatigue"] = {name: float(f"{emg_mean(v, usable, emg_channels):.6g}") for name, v in features.items()}
    if fatigue is not None:
        payload["fatigue_state"] = str(fatigue.state)
        if fatigue.state == NOT_ASSESSED:
            payload["fatigue_reason"] = str(getattr(fatigue, "reason", ""))
    if usable is not None:
        payload["masked_channels"] = np.flatnonzero(~usable).tolist()
    return json.dumps(payload)


def fins_change_text(change_pct: float | None) -> str:
    """FInsm5 as the window's fatigue readout gives it (monitor/gui/fatigue.py: "FInsm5 change +12 %"): its change
    from the contraction's steady baseline in whole percent, "—" where there is none (at rest, not assessed).
    Its absolute value (~1e-15 in SI units: "7.47e-15") depends on units and electrode and means nothing at the
    bedside (Dimitrov et al. 2006, Med Sci Sports Exerc 38:1971, read the index by its relative rise)."""
    return dash_number(change_pct, "+.0f", " %")


def breakdown_ms(latencies: dict[str, np.ndarray]) -> dict[str, float]:
    """Median ms of each latency part over {"<part>_s": seconds, NaN where a decision lacks it}, parts none has left
    out."""
    medians = {}
    for part in LATENCY_PARTS:
        known = latencies[f"{part}_s"][~np.isnan(latencies[f"{part}_s"])]
        if len(known):
            medians[part] = float(np.median(known)) * 1000.0
    return medians


class HeadlessDashboard:
    def __init__(self, pipeline: MonitorPipeline, jsonl: IO[str] | None = None, console: Console | None = None):
        self.pipeline = pipeline
        self.jsonl = jsonl
        self.console = console or Console(stderr=jsonl is sys.stdout)
        self._written = 0  # decisions written so far (MonitorState.decisions_published counts them all)

    def summary(self) -> dict[str, Any]:
        state = self.pipeline.state
        acquisition = self.pipeline.acquisition
        engine = self.pipeline.engine
        signal = signal_status(acquisition)
        with state.lock:
            last = state.decisions.latest()
            newest = state.features.latest()
            features = newest[1] if newest is not None else None
            usable = state.usable
            n_decisions = len(state.decisions)
            recent = state.decisions.recent_columns(200, (f"{part}_s" for part in LATENCY_PARTS))
        client = self.pipeline.client
        return {
            "stream": state.stream_name,
            "fs": state.fs,
            "channels": state.n_channels,
            "channels_text": channel_count_text(state.n_channels, getattr(state, "emg_channels", None)),
            # streaming / waiting / lost / confirming (a returned stream's samples held) / refused
            "signal": signal.state,
            "signal_phrase": signal.phrase,
            "samples": acquisition.buffer.total_written,
            # every sample lost, those pushed out of the hold before the rate was confirmed among them
            "dropped_samples": engine.reader.dropped + signal.unconfirmed_dropped,
            "unconfirmed_dropped": signal.unconfirmed_dropped,
            "dropped_text": dropped_figure(engine.reader.dropped, signal),
            "held_samples": signal.held_samples,
            "windows": state.windows_seen,
            "decisions": n_decisions,
            "worker": getattr(client, "state", "none") if client is not None else "none",
            "model_status": state.model_status,  # why no condition model runs, e.g. none fits this layout
            "label": last.label if last else None,
            "muscle": last.muscle.value if last else None,
            "probabilities": dict(zip(last.classes, last.probabilities.tolist(), strict=True)) if last else {},
            "features": {k: emg_mean(v, usable, state.emg_channels) for k, v in features.items()} if features else {},
            "masked_channels": np.flatnonzero(~usable).tolist() if usable is not None else [],
            "latency": state.latency_percentiles(),
            # per-stage ms per window, CPU % and memory of this process (dsp.resources.StageProfiler)
            "resources": engine.profiler.report() if getattr(engine, "profiler", None) is not None else None,
            "fatigue": state.fatigue,
            "breakdown_ms": breakdown_ms(recent),
        }

    def render(self) -> Table:
        s = self.summary()
        title = f"NeuroFusion Monitor — {s['stream']} ({s['channels_text']} @ {s['fs']:g} Hz)"
        table = Table(title=title, expand=False)
        table.add_column("", style="bold")
        table.add_column("")
        signal_style = SIGNAL_STYLES.get(s["signal"], "red")
        signal = f"[{signal_style}]{escape(s['signal_phrase'])}[/]"
        table.add_row("signal", f"{signal}  samples {s['samples']}  {s['dropped_text']}")
        worker = s["model_status"] or s["worker"]
        table.add_row("worker", f"{escape(worker)}  windows {s['windows']}  decisions {s['decisions']}")
        label = s["label"] or "—"
        withheld = s["muscle"] not in (None, MuscleState.CONTRACTING.value)
        if withheld:
            # the model's bars at rest or before the rest level is known would read as a diagnosis ("myopathy 95 %")
            why = "the rest level is not known yet"
            if label == SPONTANEOUS_LABEL:
                why = "spontaneous potentials at rest, or a very weak contraction"
            elif s["muscle"] == MuscleState.RELAXED.value:
                why = "no contraction"
            table.add_row("condition", f"[bold]{label}[/]  (no condition: {why})")
        else:
            table.add_row("condition", f"[bold]{label}[/]")
        for name, p in {} if withheld else s["probabilities"].items():
            bar = "█" * int(round(p * 30))
            table.add_row(f"  {name}", f"{bar:<30} {p:6.1%}")
        f = s["features"]
        report = s["fatigue"]
        if f:
            nan = float("nan")
            fins_change = None if report is None else emg_mean(report.fins_change_pct, None,
                                                               self.pipeline.state.emg_channels)  # fmt: skip
            table.add_row(
                "fatigue",
                f"MNF {f.get('MNF', nan):6.1f} Hz  MDF {f.get('MDF', nan):6.1f} Hz  "
                f"FInsm5 change {fins_change_text(fins_change)}  RMS {f.get('RMS', nan):.1f} µV",
            )
        if report is not None:
            emg = self.pipeline.state.emg_channels
            slope = emg_mean(report.mdf_slope_hz_per_min, None, emg)
            change = emg_mean(report.mdf_change_pct, None, emg)
            learning = " (learning rest level)" if report.learning else ""
            if not np.isnan(slope):
                trend = f"MDF {slope:+.1f} Hz/min  {change:+.1f} %"
            elif report.active[emg].any():
                trend = "contracting (a trend needs a few seconds of it)"
            else:
                trend = "at rest"
            # "not assessed" says why (no contraction, no steady baseline, another force): never a bare "fresh"
            why = f" ({escape(report.reason)})" if report.state == NOT_ASSESSED and report.reason else ""
            table.add_row("trend", f"[bold]{report.state}[/]{why}{learning}  {trend}")
        latency = s["latency"]
        if latency:
            table.add_row("latency", f"p50 {latency['p50_ms']:.1f} ms  p95 {latency['p95_ms']:.1f} ms  "
                          f"p99 {latency['p99_ms']:.1f} ms")
            parts = "  ".join(f"{name} {value:.1f}" for name, value in s["breakdown_ms"].items())
            table.add_row("  median ms", parts)
        resources = s["resources"]
        if resources is not None:
            stages = "  ".join(f"{name} {figures['ms_per_window_mean']:.2f}" for name, figures in sorted(
                resources["stages"].items(), key=lambda item: -item[1]["ms_per_window_mean"]))  # fmt: skip
            table.add_row("resources", f"CPU {resources['cpu_percent']:.0f} %  RSS {resources['rss_mb']:.0f} MB")
            if stages:
                table.add_row("  ms / window", stages)
        decomposition = getattr(self.pipeline, "decomposition", None)
        if decomposition is not None:  # `monitor --decompose`: the core's motor units (monitor/decomposition_service)
            from monitor.decomposition_service import summary_line

            table.add_row("motor units", escape(summary_line(decomposition)))
        if s["masked_channels"]:
            quality = self.pipeline.state.quality
            labels = self.pipeline.state.channel_labels
            reasons = quality.reasons if quality is not None else ("",) * len(labels)
            table.add_row(
                "masked",
                ", ".join(f"{labels[i]} ({reasons[i] or 'NaN'})" for i in s["masked_channels"]),
            )
        return table

    def _write_new_decisions(self) -> None:
        if self.jsonl is None:
            return
        state = self.pipeline.state
        with state.lock:
            # the ring holds a bounded history in arrival order; what is new is its last (published - written)
            fresh = state.decisions.recent(state.decisions_published - self._written)
            self._written = state.decisions_published
            newest = state.features.latest()
            features = newest[1] if newest is not None else None
            usable = state.usable
            fatigue = getattr(state, "fatigue", None)
        for record in fresh:
            self.jsonl.write(decision_line(record, features, usable, state.emg_channels, fatigue) + "\n")
        if fresh:
            self.jsonl.flush()

    def _running(self, stop: Any, deadline: float | None) -> bool:
        if self.pipeline.acquisition.incompatible:
            return False
        return not stop.is_set() and (deadline is None or time.monotonic() < deadline)

    def run(self, duration_s: float | None, stop: Any) -> None:
        deadline = None if duration_s is None else time.monotonic() + duration_s
        interactive = self.console.is_terminal
        if interactive:
            with Live(self.render(), console=self.console, refresh_per_second=4) as live:
                while self._running(stop, deadline):
                    self._write_new_decisions()
                    live.update(self.render())
                    stop.wait(0.25)
        else:
            next_print = 0.0
            while self._running(stop, deadline):
                self._write_new_decisions()
                if time.monotonic() >= next_print:
                    self.console.print(self.render())
                    next_print = time.monotonic() + 5.0
                stop.wait(0.25)
        self._write_new_decisions()
        self.console.print(self.render())
