"""From the runs of a bench to its table: medians over repeats, ratios, targets, footnotes."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field, replace
from typing import Any

from bench.systems import BY_NAME, RATIOS, System
from bench.targets import TARGETS, Medians, Verdict, check, format_number
from bench.workloads import Metric, Workload


@dataclass
class Results:
    """Everything one bench produced, filled in as runs finish."""

    systems: list[System]
    workloads: list[Workload]
    durafn_ref: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    # (system, workload) -> the cell text where it has no numbers (not yet, n/a, skipped, ...)
    unmeasured: dict[tuple[str, str], str] = field(default_factory=dict)
    # (system, workload) -> the reason behind that cell text, for the footnotes
    reasons: dict[tuple[str, str], str] = field(default_factory=dict)
    # (system, "W.prefix") -> why metrics of W starting with prefix have no equivalent
    not_applicable: dict[tuple[str, str], str] = field(default_factory=dict)

    def medians(self) -> Medians:
        samples: dict[str, dict[str, dict[str, list[float]]]] = {}
        for run in self.runs:
            if not run.get("ok"):
                continue
            per_metric = samples.setdefault(run["system"], {}).setdefault(run["workload"], {})
            for key, value in run["metrics"].items():
                per_metric.setdefault(key, []).append(value)
        return {
            system: {
                workload: {key: statistics.median(values) for key, values in metrics.items()}
                for workload, metrics in workloads.items()
            }
            for system, workloads in samples.items()
        }

    def why_empty(self, system: str, workload: str) -> str:
        reason = self.unmeasured.get((system, workload))
        if reason is not None:
            return reason
        runs = [r for r in self.runs if r["system"] == system and r["workload"] == workload]
        if any(
            note.startswith("stopped at the time limit")
            for r in runs
            for note in r.get("notes", [])
        ):
            return "not completed"
        if runs and all(not r.get("ok") for r in runs):
            return "timeout" if str(runs[0].get("error", "")).startswith("timeout") else "failed"
        return "—"

    def metric_not_applicable(self, system: str, workload: str, metric: Metric) -> str | None:
        for (name, key), reason in self.not_applicable.items():
            head, _, prefix = key.partition(".")
            if name == system and head == workload and metric.key.startswith(f"{prefix}_"):
                return reason
        return None

    def verdicts(self) -> list[Verdict]:
        medians = self.medians()
        measured = {s.name for s in self.systems}
        unmeasured = {(s, w.id): self.why_empty(s, w.id) for s in BY_NAME for w in self.workloads}
        for system in BY_NAME:
            if system not in measured:
                for workload in self.workloads:
                    unmeasured[(system, workload.id)] = "not in this run"
        chosen = {w.id for w in self.workloads}
        verdicts = []
        for target in TARGETS:
            if target.workload not in chosen:
                continue
            verdict = check(target, medians, unmeasured)
            partial = [
                note
                for run in self.runs
                if run["system"] == target.system and run["workload"] == target.workload
                for note in run.get("notes", [])
                if note.startswith("stopped at the time limit")
            ]
            if partial:
                verdict = replace(verdict, verdict=f"{verdict.verdict} ({partial[0]})")
            verdicts.append(verdict)
        return verdicts


def ratio_columns(systems: list[System]) -> list[tuple[str, str]]:
    names = {s.name for s in systems}
    return [(ours, peer) for ours, peer in RATIOS if ours in names and peer in names]


def _ratio_header(ours: str, peer: str) -> str:
    prefix = "PG " if ours.endswith("postgres") else ""
    return f"{prefix}x{BY_NAME[peer].label}"


def main_table(results: Results) -> str:
    medians = results.medians()
    ratios = ratio_columns(results.systems)
    header = ["workload", "metric"] + [s.label for s in results.systems]
    header += [_ratio_header(ours, peer) for ours, peer in ratios]
    rows = [header, ["---"] * 2 + ["---:"] * (len(header) - 2)]
    for workload in results.workloads:
        for metric in workload.metrics:
            row = [workload.id, metric.label]
            values: dict[str, float] = {}
            for system in results.systems:
                value = medians.get(system.name, {}).get(workload.id, {}).get(metric.key)
                if value is not None:
                    values[system.name] = value
                    row.append(format_number(value))
                elif results.metric_not_applicable(system.name, workload.id, metric):
                    row.append("n/a")
                else:
                    row.append(results.why_empty(system.name, workload.id))
            for ours, peer in ratios:
                if ours in values and peer in values and values[ours] and values[peer]:
                    ratio = (
                        values[ours] / values[peer]
                        if metric.higher_is_better
                        else values[peer] / values[ours]
                    )
                    row.append(f"{ratio:.2f}x")
                else:
                    row.append("")
            rows.append(row)
    return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)


def targets_table(verdicts: list[Verdict]) -> str:
    rows = ["| workload | store | target | measured | verdict |", "|---|---|---|---:|---|"]
    for verdict in verdicts:
        target = verdict.target
        rows.append(
            f"| {target.workload} | {target.where} | {target.text} | {verdict.measured} "
            f"| {verdict.verdict} |"
        )
    return "\n".join(rows)


def footnotes(results: Results) -> list[str]:
    """What the empty cells stand for, the runs' notes and their failures; one line per
    reason, naming every system and workload it applies to."""
    chosen = {w.id for w in results.workloads}
    grouped: dict[tuple[str, str], list[str]] = {}

    def add(kind: str, reason: str, where: str) -> None:
        places = grouped.setdefault((kind, reason), [])
        if where not in places:
            places.append(where)

    for (system, key), reason in results.not_applicable.items():
        if key.partition(".")[0] in chosen:
            add("n/a", reason, f"{BY_NAME[system].label} {key}")
    for (system, workload), cell in results.unmeasured.items():
        add(
            cell, results.reasons.get((system, workload), ""), f"{BY_NAME[system].label} {workload}"
        )
    for run in results.runs:
        where = f"{BY_NAME[run['system']].label} {run['workload']}"
        for note in run.get("notes", []):
            add("note", note, where)
        if not run.get("ok"):
            add("failed", str(run.get("error")), f"{where} #{run['repeat']}")
    return [
        f"{kind} ({', '.join(places)}): {reason}" if reason else f"{kind}: {', '.join(places)}"
        for (kind, reason), places in grouped.items()
    ]
