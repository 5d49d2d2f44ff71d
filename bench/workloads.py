"""The performance workloads: what each one measures, and at which sizes.

A workload is declared here once (sizes, metrics, time limit); each runner implements it as one
function. A workload that a runner does not implement shows as "not yet" for durafn and
"n/a" for a peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True)
class Workload:
    id: str
    title: str
    full: dict[str, Any]
    quick: dict[str, Any]
    metrics: tuple[Metric, ...]
    # Seconds one repeat may take (full run; a quick run gets a quarter, at least 60 s).
    time_limit: float
    # Long workloads run once even when --repeats asks for more.
    repeated: bool = True
    # Why durafn does not run it yet (shown while its runner has no function for it).
    pending: str = "the durafn runner does not implement it yet"

    def params(self, quick: bool) -> dict[str, Any]:
        return self.quick if quick else self.full

    def limit(self, quick: bool) -> float:
        return max(60.0, self.time_limit / 4) if quick else self.time_limit

    def describe(self, quick: bool) -> str:
        sizes = ", ".join(f"{key}={value:,}" for key, value in self.params(quick).items())
        return f"{self.id}: {self.title} ({sizes})"


def _throughput(key: str, label: str) -> Metric:
    return Metric(key, label, higher_is_better=True)


def _time(key: str, label: str) -> Metric:
    return Metric(key, label, higher_is_better=False)


WORKLOADS: tuple[Workload, ...] = (
    Workload(
        "A",
        "one orchestration of sequential activities, several in series",
        full={"steps": 100, "series": 5},
        quick={"steps": 20, "series": 2},
        metrics=(_throughput("steps_per_s", "steps/s"),),
        time_limit=120,
    ),
    Workload(
        "B",
        "orchestrations of sequential activities, all started at once",
        full={"instances": 200, "steps": 10},
        quick={"instances": 20, "steps": 5},
        metrics=(
            _throughput("steps_per_s", "steps/s"),
            _throughput("instances_per_s", "instances/s"),
        ),
        time_limit=120,
    ),
    Workload(
        "C1",
        "one orchestration starting sub-orchestrations of one activity each, joined",
        full={"count": 1000},
        quick={"count": 50},
        metrics=(_throughput("sub_orchestrations_per_s", "sub-orchestrations/s"),),
        time_limit=120,
    ),
    Workload(
        "C2",
        "one orchestration fanning out activities with task_all",
        full={"count": 1000},
        quick={"count": 100},
        metrics=(_throughput("activities_per_s", "activities/s"),),
        time_limit=120,
    ),
    Workload(
        "D",
        "one orchestration of sequential steps: per-step time, first 100 vs last 100",
        full={"steps": 10_000},
        quick={"steps": 300},
        # A chain still running at the limit is measured over the steps it reached (noted).
        metrics=(
            _time("first100_ms_per_step", "first-100 ms/step"),
            _time("last100_ms_per_step", "last-100 ms/step"),
            _time("last_over_first", "last/first"),
        ),
        time_limit=120,
        repeated=False,
    ),
    Workload(
        "E",
        "hello_cities (three activities) start-to-completed latency",
        full={"runs": 200},
        quick={"runs": 20},
        metrics=(
            _time("client_p50_ms", "client p50 ms"),
            _time("client_p99_ms", "client p99 ms"),
            _time("http_p50_ms", "HTTP p50 ms"),
            _time("http_p99_ms", "HTTP p99 ms"),
        ),
        time_limit=120,
        repeated=False,  # 200 samples already; p50 is a median
    ),
    Workload(
        "F",
        "one orchestration fanning out activities: wall time, worker peak RSS",
        full={"count": 100_000},
        quick={"count": 2_000},
        metrics=(
            _time("wall_s", "wall s"),
            _time("worker_peak_rss_mib", "worker peak RSS MiB"),
        ),
        time_limit=300,
        repeated=False,
    ),
    Workload(
        "G",
        "signals to entities from 64 concurrent senders: to one entity, then spread over "
        "many (Durable Functions on Azure Storage publishes 64 operations/s on one entity)",
        full={"signals": 10_000, "entities": 100},
        quick={"signals": 400, "entities": 10},
        metrics=(
            _throughput("signals_per_s", "one entity, signals/s"),
            _throughput("spread_signals_per_s", "spread, signals/s"),
        ),
        time_limit=180,
        repeated=False,
    ),
)

BY_ID = {workload.id: workload for workload in WORKLOADS}
