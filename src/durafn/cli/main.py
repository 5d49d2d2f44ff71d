"""``durafn``: run workers and manage instances from the shell."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta

import click

from durafn.loader import AppNotFound, load_app
from durafn.store import STORE_ENV_VAR, open_store
from durafn.worker.worker import Worker, WorkerOptions


@click.group()
@click.version_option(package_name="durafn")
def main() -> None:
    """durafn: durable functions for Python, self-hosted."""


@main.command()
@click.argument("app")
@click.option(
    "--store",
    "store_url",
    envvar=STORE_ENV_VAR,
    default=None,
    help="Store URL (default: $DURAFN_STORE or sqlite:///durafn.db).",
)
@click.option(
    "--activities",
    "max_activities",
    default=16,
    show_default=True,
    help="How many activities may run at once.",
)
@click.option(
    "--orchestrations",
    "max_orchestrations",
    default=4,
    show_default=True,
    help="How many orchestration episodes may run at once.",
)
@click.option(
    "--lease",
    "lease_seconds",
    default=30.0,
    show_default=True,
    help="Seconds a claim on work lasts without renewal.",
)
@click.option("--log-level", default="INFO", show_default=True)
def worker(
    app: str,
    store_url: str | None,
    max_activities: int,
    max_orchestrations: int,
    lease_seconds: float,
    log_level: str,
) -> None:
    """Run a worker for APP (module:attribute or path/to/file.py) until stopped.

    Several workers may share one store; stop one with Ctrl-C or SIGTERM and it finishes its
    in-flight work first.
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        loaded = load_app(app)
    except AppNotFound as exc:
        raise click.UsageError(str(exc)) from exc
    options = WorkerOptions(
        max_concurrent_activities=max_activities,
        max_concurrent_orchestrations=max_orchestrations,
        lease=timedelta(seconds=lease_seconds),
    )
    asyncio.run(_serve(loaded, store_url, options))


async def _serve(app: object, store_url: str | None, options: WorkerOptions) -> None:
    from durafn.app import App

    assert isinstance(app, App)
    store = open_store(store_url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    worker = Worker(app, store, options=options)
    click.echo(
        f"durafn worker {worker.worker_id} serving {len(app.orchestrator_names)} "
        f"orchestrator(s) and {len(app.activity_names)} activity(ies) from "
        f"{store_url or 'the default store'}",
        err=True,
    )
    try:
        await worker.run(stop)
    finally:
        await store.close()


if __name__ == "__main__":
    main()
