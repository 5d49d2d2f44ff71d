"""The performance targets, checked against the medians of a run."""

from __future__ import annotations

from dataclasses import dataclass

from bench.workloads import BY_ID


@dataclass(frozen=True)
class Target:
    workload: str
    where: str  # "SQLite", "PostgreSQL"
    text: str  # as the target is worded
    system: str
    metric: str
    threshold: float
    # "at least": the metric (or the ratio against ``peer``) must reach the threshold;
    # "at most": it must not exceed it.
    at_least: bool = True
    peer: str | None = None


TARGETS: tuple[Target, ...] = (
    Target("A", "SQLite", "≥ 3,000 steps/s", "durafn-sqlite", "steps_per_s", 3000),
    Target("A", "SQLite", "≥ 4x DBOS WAL", "durafn-sqlite", "steps_per_s", 4, peer="dbos-wal"),
    Target("A", "SQLite", "≥ 5x Restate", "durafn-sqlite", "steps_per_s", 5, peer="restate"),
    Target("A", "PostgreSQL", "≥ 1,000 steps/s", "durafn-postgres", "steps_per_s", 1000),
    Target(
        "A",
        "PostgreSQL",
        "≥ 4x DBOS PG",
        "durafn-postgres",
        "steps_per_s",
        4,
        peer="dbos-postgres",
    ),
    Target("B", "SQLite", "≥ 8,000 steps/s", "durafn-sqlite", "steps_per_s", 8000),
    Target("B", "SQLite", "≥ 10x Restate", "durafn-sqlite", "steps_per_s", 10, peer="restate"),
    Target("B", "PostgreSQL", "≥ 3,000 steps/s", "durafn-postgres", "steps_per_s", 3000),
    Target(
        "C1", "SQLite", "≥ 2,000 sub-orch./s", "durafn-sqlite", "sub_orchestrations_per_s", 2000
    ),
    Target(
        "C1",
        "SQLite",
        "≥ 5x Restate",
        "durafn-sqlite",
        "sub_orchestrations_per_s",
        5,
        peer="restate",
    ),
    Target("C2", "SQLite", "≥ 10,000 activities/s", "durafn-sqlite", "activities_per_s", 10000),
    Target(
        "D",
        "SQLite",
        "last-100 ≤ 1.5 x first-100",
        "durafn-sqlite",
        "last_over_first",
        1.5,
        at_least=False,
    ),
    Target(
        "D",
        "PostgreSQL",
        "last-100 ≤ 1.5 x first-100",
        "durafn-postgres",
        "last_over_first",
        1.5,
        at_least=False,
    ),
    Target("E", "SQLite", "client p50 ≤ 5 ms", "durafn-sqlite", "client_p50_ms", 5, at_least=False),
    Target("F", "SQLite", "completes", "durafn-sqlite", "wall_s", float("inf"), at_least=False),
    Target(
        "F",
        "SQLite",
        "worker peak RSS ≤ 1 GiB",
        "durafn-sqlite",
        "worker_peak_rss_mib",
        1024,
        at_least=False,
    ),
)


@dataclass(frozen=True)
class Verdict:
    target: Target
    measured: str
    verdict: str  # "met", "not met (...)", or why it was not measured


Medians = dict[str, dict[str, dict[str, float]]]  # system -> workload -> metric -> median


def check(target: Target, medians: Medians, unmeasured: dict[tuple[str, str], str]) -> Verdict:
    """The verdict of one target; ``unmeasured[(system, workload)]`` says why a cell is empty."""
    value = medians.get(target.system, {}).get(target.workload, {}).get(target.metric)
    if value is None:
        why = unmeasured.get((target.system, target.workload), "not run")
        return Verdict(target, "—", why)
    metric = next(m for m in BY_ID[target.workload].metrics if m.key == target.metric)
    if target.peer is not None:
        other = medians.get(target.peer, {}).get(target.workload, {}).get(target.metric)
        if other is None:
            why = unmeasured.get((target.peer, target.workload), "not run")
            return Verdict(target, "—", f"{target.peer}: {why}")
        value = value / other if metric.higher_is_better else other / value
        measured = f"{value:.2f}x"
    else:
        measured = f"{format_number(value)} {metric.label}"
    if (value >= target.threshold) if target.at_least else (value <= target.threshold):
        return Verdict(target, measured, "met")
    factor = target.threshold / value if target.at_least else value / target.threshold
    return Verdict(target, measured, f"not met ({factor:.1f}x away)")


def format_number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
