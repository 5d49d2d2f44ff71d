"""``durafn instances``: list, inspect, start and steer instances from the shell.

Every command opens a :class:`~durafn.Client` on the store and makes the same client calls the
management API makes; no app and no running host are needed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar

import click

from durafn.cli import render
from durafn.cli.common import (
    STATUS,
    STATUS_NAMES,
    CliError,
    WaitTimedOut,
    common_options,
    parse_json,
    parse_time,
    session,
)
from durafn.client.client import Client
from durafn.core.errors import InstanceNotFound
from durafn.core.status import OrchestrationStatus, RuntimeStatus
from durafn.http.status_json import status_to_json

F = TypeVar("F", bound=Callable[..., Any])


def created_range(command: F) -> F:
    """``--from`` / ``--to``: the creation-time range of the instances a command touches."""
    command = click.option(
        "--to",
        "created_to",
        callback=parse_time,
        metavar="ISO-TIME",
        help="Created at or before this time.",
    )(command)
    return click.option(
        "--from",
        "created_from",
        callback=parse_time,
        metavar="ISO-TIME",
        help="Created at or after this time.",
    )(command)


@click.group()
def instances() -> None:
    """List, inspect, start and steer orchestration instances in a store.

    The commands talk to the store directly: a running host is not needed, and a worker
    applies raised events, terminations, suspensions and resumptions when it runs.
    """


# ------------------------------------------------------------------------------ list


@instances.command("list")
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    metavar="STATUS",
    help=f"Only instances with this runtime status ({STATUS_NAMES}); repeat for several.",
)
@click.option("--name", help="Only instances of this orchestrator.")
@click.option("--prefix", help="Only instance ids starting with this text.")
@created_range
@click.option(
    "--top", type=click.IntRange(1, 1000), default=100, show_default=True, help="Page size."
)
@click.option(
    "--continuation", "token", metavar="TOKEN", help="Continue after the page that printed TOKEN."
)
@click.option("--all", "all_pages", is_flag=True, help="Page through every matching instance.")
@click.option("--no-input", is_flag=True, help="Leave the inputs out of the JSON document.")
@common_options
def list_instances(
    statuses: tuple[str, ...],
    name: str | None,
    prefix: str | None,
    created_from: datetime | None,
    created_to: datetime | None,
    top: int,
    token: str | None,
    all_pages: bool,
    no_input: bool,
    store_url: str | None,
    as_json: bool,
) -> None:
    """List instances, newest first, one page at a time.

    When more instances match, the token of the next page is printed (on stderr; in the
    JSON document as "continuationToken"): pass it to --continuation, or use --all.
    """
    found: list[OrchestrationStatus] = []
    with session(store_url) as client:
        while True:
            page = client.get_status_by(
                runtime_status=list(statuses) or None,
                created_time_from=created_from,
                created_time_to=created_to,
                name=name,
                instance_id_prefix=prefix,
                page_size=top,
                continuation_token=token,
                show_input=as_json and not no_input,  # the table has no room for inputs
            )
            found.extend(page.instances)
            token = page.continuation_token
            if not all_pages or token is None:
                break
    if as_json:
        render.echo_json(
            {"instances": [status_to_json(s) for s in found], "continuationToken": token}
        )
        return
    if found:
        render.print_instances(render.stdout_console(), found)
    else:
        render.note("No instances match.")
    if token is not None:
        render.note(f"More instances: add --continuation {token} (or use --all).")


# ------------------------------------------------------------------------------ show


@instances.command()
@click.argument("instance_id")
@click.option("--history", is_flag=True, help="Also show the history of the current execution.")
@click.option(
    "--no-input", is_flag=True, help="Leave out the instance's input (and the history's inputs)."
)
@common_options
def show(
    instance_id: str, history: bool, no_input: bool, store_url: str | None, as_json: bool
) -> None:
    """Show the status of INSTANCE_ID: input, output, custom status and any failure."""
    with session(store_url) as client:
        status = client.get_status(
            instance_id, show_history=history, show_history_output=history, show_input=not no_input
        )
    if status is None:
        raise CliError(str(InstanceNotFound(instance_id)))
    document = status_to_json(status, show_history_input=not no_input)
    if as_json:
        render.echo_json(document)
        return
    console = render.stdout_console()
    console.print(render.status_view(status, show_input=not no_input))
    if history:
        render.print_history(console, document.get("historyEvents", []))


# ------------------------------------------------------------------------------ start


@instances.command("start")
@click.argument("name")
@click.option(
    "--input",
    "input_value",
    callback=parse_json,
    metavar="JSON",
    help="The orchestrator's input, as JSON.",
)
@click.option(
    "--id", "instance_id", metavar="ID", help="The instance id (default: a new random one)."
)
@click.option(
    "--start-at", callback=parse_time, metavar="ISO-TIME", help="Start no earlier than this time."
)
@common_options
def start_instance(
    name: str,
    input_value: Any,
    instance_id: str | None,
    start_at: datetime | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Start an instance of the orchestrator NAME and print its instance id.

    The name is not checked here (no app is loaded): a worker fails the instance if its app
    has no such orchestrator.
    """
    with session(store_url) as client:
        started = client.start_new(name, input_value, instance_id=instance_id, start_at=start_at)
    if as_json:
        render.echo_json({"instanceId": started})
    else:
        click.echo(started)


# ------------------------------------------------------------------------------ steering


def _sent(as_json: bool, instance_id: str, action: str, what: str, **details: Any) -> None:
    if as_json:
        extra = {k: v for k, v in details.items() if v is not None}
        render.echo_json({"instanceId": instance_id, "action": action, **extra})
    else:
        render.note(f"{what} queued for instance {instance_id!r}; a worker applies it.")


@instances.command("raise")
@click.argument("instance_id")
@click.argument("event_name")
@click.option("--data", callback=parse_json, metavar="JSON", help="The event's data, as JSON.")
@common_options
def raise_event(
    instance_id: str, event_name: str, data: Any, store_url: str | None, as_json: bool
) -> None:
    """Send the external event EVENT_NAME to INSTANCE_ID."""
    with session(store_url) as client:
        client.raise_event(instance_id, event_name, data)
    _sent(as_json, instance_id, "raiseEvent", f"Event {event_name!r}", eventName=event_name)


def _steering_command(
    action: str, method: Callable[[Client, str, str | None], None], what: str, summary: str
) -> click.Command:
    @click.argument("instance_id")
    @click.option("--reason", help="Why; recorded in the history.")
    @common_options
    def command(instance_id: str, reason: str | None, store_url: str | None, as_json: bool) -> None:
        with session(store_url) as client:
            method(client, instance_id, reason)
        _sent(as_json, instance_id, action, what, reason=reason)

    command.__doc__ = summary
    return instances.command(action)(command)


terminate = _steering_command(
    "terminate",
    Client.terminate,
    "Termination",
    "Stop INSTANCE_ID; it ends as Terminated with the reason as its output.",
)
suspend = _steering_command(
    "suspend",
    Client.suspend,
    "Suspension",
    "Pause INSTANCE_ID: it keeps its messages but runs no code until resumed.",
)
resume = _steering_command(
    "resume", Client.resume, "Resumption", "Resume the suspended INSTANCE_ID."
)


# ------------------------------------------------------------------------------ purge


@instances.command()
@click.argument("instance_id", required=False)
@click.option(
    "--status",
    "statuses",
    type=STATUS,
    multiple=True,
    metavar="STATUS",
    help="Purge finished instances with this status (Completed, Failed, Canceled, Terminated); "
    "repeat for several.",
)
@created_range
@click.option("--yes", "-y", is_flag=True, help="Do not ask before a bulk purge.")
@common_options
def purge(
    instance_id: str | None,
    statuses: tuple[str, ...],
    created_from: datetime | None,
    created_to: datetime | None,
    yes: bool,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Delete finished instances and their history: INSTANCE_ID, or every one matching filters.

    A bulk purge (--status, --from, --to) only touches finished instances (Completed, Failed,
    Canceled, Terminated) and asks first unless --yes is given.
    """
    has_filter = bool(statuses) or created_from is not None or created_to is not None
    if instance_id is not None and has_filter:
        raise click.UsageError("give either an INSTANCE_ID or filters, not both")
    if instance_id is None and not has_filter:
        raise click.UsageError(
            "give an INSTANCE_ID, or at least one of --status, --from, --to for a bulk purge"
        )
    with session(store_url) as client:
        if instance_id is not None:
            deleted = client.purge_instance_history(instance_id)
            if deleted == 0:
                raise CliError(str(InstanceNotFound(instance_id)))
        else:
            finished = _finished_statuses(statuses)
            if not yes:
                count = _count(client, finished, created_from, created_to)
                if count:
                    click.confirm(
                        f"Delete {count} finished instance(s) and their history?",
                        abort=True,
                        err=True,
                    )
            deleted = client.purge_instance_history_by(
                created_time_from=created_from,
                created_time_to=created_to,
                runtime_status=finished,
            )
    if as_json:
        render.echo_json({"instancesDeleted": deleted})
    else:
        click.echo(f"{deleted} instance(s) deleted")


def _finished_statuses(statuses: tuple[str, ...]) -> list[RuntimeStatus]:
    asked = [RuntimeStatus(s) for s in statuses] or list(RuntimeStatus)
    finished = [s for s in asked if s.is_terminal]
    skipped = [s.value for s in asked if not s.is_terminal and statuses]
    if skipped:
        render.note(f"Only finished instances are purged; ignoring {', '.join(skipped)}.")
    return finished


def _count(
    client: Client,
    statuses: list[RuntimeStatus],
    created_from: datetime | None,
    created_to: datetime | None,
) -> int:
    count, token = 0, None
    while True:
        page = client.get_status_by(
            runtime_status=statuses,
            created_time_from=created_from,
            created_time_to=created_to,
            page_size=1000,
            continuation_token=token,
        )
        count += len(page.instances)
        token = page.continuation_token
        if token is None:
            return count


# ------------------------------------------------------------------------------ wait


@instances.command()
@click.argument("instance_id")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    help="Give up after this many seconds (exit code 124). Default: wait forever.",
)
@common_options
def wait(instance_id: str, timeout: float | None, store_url: str | None, as_json: bool) -> None:
    """Wait until INSTANCE_ID finishes and print its final status.

    Exit code 0 when it completed, 1 when it failed, was terminated or canceled (or for an
    error), 124 when --timeout passed first, 130 when interrupted with Ctrl-C.
    """
    with session(store_url) as client:
        render.note(f"Waiting for instance {instance_id!r} to finish...")
        try:
            status = client.wait_for_completion(instance_id, timeout=timeout)
        except TimeoutError as exc:
            raise WaitTimedOut(str(exc)) from None
    if as_json:
        render.echo_json(status_to_json(status))
    else:
        render.stdout_console().print(render.status_view(status))
    if status.runtime_status is not RuntimeStatus.COMPLETED:
        raise click.exceptions.Exit(1)
