"""``durafn``: run workers and manage instances from the shell."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import timedelta
from pathlib import Path

import click

from durafn import loops
from durafn.app import App
from durafn.cli.common import store_option
from durafn.cli.db import db
from durafn.cli.entities import entities
from durafn.cli.instances import instances
from durafn.cli.keys import keys
from durafn.cli.new import new
from durafn.cli.processes import WorkerProcesses
from durafn.http.messages import DEFAULT_MAX_BODY_BYTES
from durafn.loader import AppNotFound, load_app
from durafn.store import open_store
from durafn.worker.worker import Worker, WorkerOptions


@click.group()
@click.version_option(package_name="durafn", prog_name="durafn")
@click.pass_context
def main(ctx: click.Context) -> None:
    """durafn: durable functions for Python, self-hosted."""
    if ctx.invoked_subcommand in _WITHOUT_EVENT_LOOP:
        return
    try:
        loops.loop_factory()  # a bad DURAFN_EVENT_LOOP is reported before anything starts
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None


# Commands that run no event loop, and so work whatever DURAFN_EVENT_LOOP says.
_WITHOUT_EVENT_LOOP = frozenset({"new", "keys"})


@main.command()
@click.argument("app")
@store_option
@click.option(
    "--orchestrations-only",
    is_flag=True,
    help="Run orchestration episodes only (scale activity workers separately).",
)
@click.option("--activities-only", is_flag=True, help="Run activities only.")
@click.option(
    "--max-activities",
    default=WorkerOptions.max_concurrent_activities,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many activities may run at once.",
)
@click.option(
    "--max-orchestrations",
    default=WorkerOptions.max_concurrent_orchestrations,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many orchestration episodes may run at once.",
)
@click.option(
    "--in-place-activities",
    default=WorkerOptions.in_place_activities,
    show_default=True,
    type=click.IntRange(min=0),
    help="How many activities of one instance the worker may run itself, holding the "
    "instance (0: every activity goes through the store's queue).",
)
@click.option(
    "--start-ahead/--no-start-ahead",
    default=WorkerOptions.start_ahead,
    show_default=True,
    help="Start a chain's next activity run in place while the commit scheduling it waits "
    "for the disk (--no-start-ahead: only once that commit has ended; the activity then "
    "never runs ahead of a commit that fails).",
)
@click.option(
    "--lease",
    "lease_seconds",
    default=30.0,
    show_default=True,
    help="Seconds a claim on work lasts without renewal.",
)
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Worker processes to run: this one and N - 1 more with the same options, each on a "
    "core of its own.",
)
@click.option("--log-level", default="INFO", show_default=True)
def worker(
    app: str,
    store_url: str | None,
    orchestrations_only: bool,
    activities_only: bool,
    max_activities: int,
    max_orchestrations: int,
    in_place_activities: int,
    start_ahead: bool,
    lease_seconds: float,
    processes: int,
    log_level: str,
) -> None:
    """Run a worker for APP (module:attribute or path/to/file.py) until stopped.

    Several workers may share one store; stop one with Ctrl-C or SIGTERM and it finishes its
    in-flight work first (with --processes, the others it started stop with it).
    """
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if orchestrations_only and activities_only:
        raise click.UsageError("--orchestrations-only and --activities-only exclude each other")
    loaded = _load(app)
    options = WorkerOptions(
        orchestrations=not activities_only,
        activities=not orchestrations_only,
        max_concurrent_activities=max_activities,
        max_concurrent_orchestrations=max_orchestrations,
        in_place_activities=in_place_activities,
        start_ahead=start_ahead,
        lease=timedelta(seconds=lease_seconds),
    )
    # The other processes get the same options (not --processes: they start no more).
    arguments = [
        app,
        *(["--store", store_url] if store_url else []),
        *(["--orchestrations-only"] if orchestrations_only else []),
        *(["--activities-only"] if activities_only else []),
        *("--max-activities", str(max_activities)),
        *("--max-orchestrations", str(max_orchestrations)),
        *("--in-place-activities", str(in_place_activities)),
        "--start-ahead" if start_ahead else "--no-start-ahead",
        *("--lease", str(lease_seconds)),
        *("--log-level", log_level),
    ]
    helpers = WorkerProcesses(processes - 1, arguments)
    failed = loops.run(_serve(loaded, store_url, options, helpers))
    if failed:
        raise click.ClickException(f"worker processes exited with {failed}")


async def _serve(
    app: App, store_url: str | None, options: WorkerOptions, helpers: WorkerProcesses
) -> list[int]:
    """Serve until SIGINT or SIGTERM; returns the exit codes of the helper processes that
    did not stop cleanly."""
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
    helpers.start()
    watching = asyncio.create_task(helpers.watch())
    stopping = asyncio.create_task(stop.wait())
    # The helpers stop as this process begins to: they finish their in-flight work meanwhile.
    stopping.add_done_callback(lambda _: helpers.terminate())
    try:
        await worker.run(stop)
    finally:
        watching.cancel()
        stopping.cancel()
        helpers.terminate()
        failed = await asyncio.to_thread(helpers.wait)
        await store.close()
    return failed


DEFAULT_APP_FILES = ("function_app.py", "app.py")


def _load(spec: str | None) -> App:
    if spec is None:
        found = [name for name in DEFAULT_APP_FILES if Path(name).is_file()]
        if not found:
            raise click.UsageError(
                f"no APP given and no {' or '.join(DEFAULT_APP_FILES)} here; "
                "pass module:attribute or path/to/file.py"
            )
        spec = found[0]
    try:
        return load_app(spec)
    except AppNotFound as exc:
        raise click.UsageError(str(exc)) from exc


@main.command()
@click.argument("app", required=False)
@store_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; off loopback, keys are required.",
)
@click.option("--port", default=7071, show_default=True, help="Port to listen on.")
@click.option(
    "--require-keys/--no-require-keys",
    default=None,
    help="Force keys on or off (default: required only off loopback).",
)
@click.option(
    "--max-body-bytes",
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Largest request body accepted; larger ones get 413.",
)
@click.option("--log-level", default="WARNING", show_default=True)
def start(
    app: str | None,
    store_url: str | None,
    host: str,
    port: int,
    require_keys: bool | None,
    max_body_bytes: int,
    log_level: str,
) -> None:
    """Serve APP: its HTTP functions under /api, the management API and the workers.

    APP is module:attribute or path/to/file.py (default: function_app.py or app.py here).
    Stop with Ctrl-C or SIGTERM: in-flight work finishes or is released first.
    """
    from durafn.host.keys import HostKeys, KeysFileError
    from durafn.host.server import HostOptions, serve

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    loaded = _load(app)
    options = HostOptions(
        host=host, port=port, require_keys=require_keys, max_body_bytes=max_body_bytes
    )
    if options.keys_required:
        try:
            HostKeys.load_or_create()
        except KeysFileError as exc:
            raise click.ClickException(str(exc)) from exc

    async def run() -> None:
        store = open_store(store_url)
        try:
            await serve(loaded, store, options, announce=lambda line: click.echo(line))
        finally:
            await store.close()

    loops.run(run())


@main.command()
@store_option
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; off loopback, the management key is required.",
)
@click.option("--port", default=7072, show_default=True, help="Port to listen on.")
@click.option("--read-only", is_flag=True, help="Show everything, refuse every action (403).")
@click.option(
    "--require-keys/--no-require-keys",
    default=None,
    help="Force keys on or off (default: required only off loopback).",
)
def dashboard(
    store_url: str | None, host: str, port: int, read_only: bool, require_keys: bool | None
) -> None:
    """Serve the dashboard alone over a store (no workers, no HTTP functions).

    `durafn start` serves the same dashboard at / next to the app (see docs/dashboard.md).
    """
    from durafn.dashboard.server import serve_dashboard
    from durafn.host.keys import KeysFileError

    async def run() -> None:
        store = open_store(store_url)
        try:
            await serve_dashboard(
                store,
                host,
                port,
                read_only=read_only,
                require_keys=require_keys,
                announce=lambda line: click.echo(line),
            )
        finally:
            await store.close()

    try:
        loops.run(run())
    except KeysFileError as exc:
        raise click.ClickException(str(exc)) from exc


main.add_command(db)
main.add_command(entities)
main.add_command(instances)
main.add_command(keys)
main.add_command(new)


if __name__ == "__main__":
    main()
