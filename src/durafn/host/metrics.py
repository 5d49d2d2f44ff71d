"""``GET /metrics``: the task hub's backlog and the host worker's counters for Prometheus.

The backlog is read from the store at each scrape (one small query), so every host of a task
hub reports the same backlog; the counters are this process's own. ``durafn_recommended_workers``
is the number :meth:`~durafn.store.base.Backlog.recommended_workers` gives for this host's
worker concurrency, the figure an autoscaler would act on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    Metric,
)
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from durafn.host.requests import require_key, state_of
from durafn.worker.worker import WorkerOptions


class _Scrape:
    """A collector holding the families of one scrape (they are read before rendering)."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


async def metrics(request: Request) -> Response:
    require_key(request, "system")
    state = state_of(request)
    client = state.client
    hub = client.store.task_hub
    backlog = await client.store.backlog(client.clock.now())
    worker = state.worker
    options = worker.options if worker is not None else WorkerOptions()

    def gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
        family = GaugeMetricFamily(name, doc, labels=["task_hub"])
        family.add_metric([hub], value)
        return family

    families: list[Metric] = [
        gauge(
            "durafn_backlog_orchestrations",
            "Instances with a visible message (waiting for an episode or in one).",
            backlog.orchestrations,
        ),
        gauge(
            "durafn_backlog_activities",
            "Visible activity tasks (waiting or running).",
            backlog.activities,
        ),
        gauge(
            "durafn_backlog_scheduled",
            "Messages visible later: timers, delayed starts, retries.",
            backlog.scheduled,
        ),
        gauge(
            "durafn_recommended_workers",
            "Workers needed to serve the backlog at once, at this host's worker concurrency.",
            backlog.recommended_workers(
                options.max_concurrent_orchestrations, options.max_concurrent_activities
            ),
        ),
    ]
    if worker is not None:
        counters = [
            ("durafn_worker_episodes", "Orchestration episodes committed.", worker.episodes),
            ("durafn_worker_activities", "Activity executions delivered.", worker.activities_run),
            (
                "durafn_worker_activities_in_place",
                "Activity executions run in place by the worker holding their instance.",
                worker.activities_in_place,
            ),
            (
                "durafn_worker_steps_on_threads",
                "Episodes committed by an activity's thread going on with its instance.",
                worker.steps_on_threads,
            ),
            (
                "durafn_worker_lease_renewals",
                "Orchestration leases renewed during slow episodes.",
                worker.leases.renewals,
            ),
        ]
        for name, doc, value in counters:
            family = CounterMetricFamily(name, doc, labels=["task_hub", "worker"])
            family.add_metric([hub, worker.worker_id], value)
            families.append(family)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Scrape(families))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def metrics_routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"])]
