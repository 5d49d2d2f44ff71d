"""``durafn entities``: list, read, signal and clean entities from the shell.

Like ``durafn instances``, every command opens a :class:`~durafn.Client` on the store and makes
the client calls the management API makes; no app and no running host are needed.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import click
from rich.text import Text

from durafn.cli import render
from durafn.cli.common import CliError, common_options, parse_json, parse_time, session
from durafn.client.entities import EntityMetadata
from durafn.core.entities import EntityId


@click.group()
def entities() -> None:
    """List, read, signal and clean durable entities in a store.

    An entity is addressed by its name (case-insensitive) and its key. Signals are queued in
    the store; a worker applies them when it runs.
    """


ENTITY_COLUMNS: list[render.Column[EntityMetadata]] = [
    render.Column("name", lambda e: Text(e.entity_id.name)),
    render.Column("key", lambda e: Text(e.entity_id.key)),
    render.Column("last operation (UTC)", lambda e: render.format_time(e.last_modified_time)),
    render.Column("locked by", lambda e: Text(e.locked_by or "")),
    render.Column("queued", lambda e: str(e.backlog_queue_size), justify="right"),
    render.Column(
        "state",
        lambda e: Text(render.preview(e.state) if e.entity_exists else "(none)"),
    ),
]
ENTITY_OPTIONAL_COLUMNS = ("state", "queued", "locked by")


def _entity_json(entity: EntityMetadata) -> dict[str, Any]:
    document: dict[str, Any] = {
        "entityId": {"name": entity.entity_id.name, "key": entity.entity_id.key},
        "lastOperationTime": entity.last_modified_time.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "exists": entity.entity_exists,
        "state": entity.state,
        "backlogQueueSize": entity.backlog_queue_size,
    }
    if entity.locked_by is not None:
        document["lockedBy"] = entity.locked_by
    return document


@entities.command("list")
@click.option("--name", help="Only entities of this name.")
@click.option(
    "--top", type=click.IntRange(1, 1000), default=100, show_default=True, help="Page size."
)
@click.option(
    "--continuation", "token", metavar="TOKEN", help="Continue after the page that printed TOKEN."
)
@click.option("--all", "all_pages", is_flag=True, help="Page through every matching entity.")
@click.option("--deleted", is_flag=True, help="Also list entities without a state.")
@common_options
def list_entities(
    name: str | None,
    top: int,
    token: str | None,
    all_pages: bool,
    deleted: bool,
    store_url: str | None,
    as_json: bool,
) -> None:
    """List entities, newest first, with their state, lock and queued operations."""
    found: list[EntityMetadata] = []
    with session(store_url) as client:
        while True:
            page = client.get_entities(
                name=name, page_size=top, continuation_token=token, include_deleted=deleted
            )
            found.extend(page.entities)
            token = page.continuation_token
            if not all_pages or token is None:
                break
    if as_json:
        render.echo_json({"entities": [_entity_json(e) for e in found], "continuationToken": token})
        return
    if found:
        render.print_table(render.stdout_console(), ENTITY_COLUMNS, found, ENTITY_OPTIONAL_COLUMNS)
    else:
        render.note("No entities match.")
    if token is not None:
        render.note(f"More entities: add --continuation {token} (or use --all).")


@entities.command()
@click.argument("name")
@click.argument("key")
@common_options
def show(name: str, key: str, store_url: str | None, as_json: bool) -> None:
    """Print the state of entity NAME KEY (exit code 1 when it has none)."""
    with session(store_url) as client:
        entity = EntityId(name, key)
        state = client.read_entity_state(entity)
    if not state.entity_exists:
        raise CliError(f"entity {entity.name}/{entity.key} has no state (never set, or deleted)")
    if as_json:
        render.echo_json(state.entity_state)
    else:
        click.echo(render.pretty_json(state.entity_state))


@entities.command()
@click.argument("name")
@click.argument("key")
@click.argument("operation")
@click.option("--input", "data", callback=parse_json, metavar="JSON", help="The operation's input.")
@click.option("--at", callback=parse_time, metavar="ISO-TIME", help="Deliver it at this time.")
@click.option("--delay", type=float, metavar="SECONDS", help="Deliver it after this delay.")
@common_options
def signal(
    name: str,
    key: str,
    operation: str,
    data: Any,
    at: datetime | None,
    delay: float | None,
    store_url: str | None,
    as_json: bool,
) -> None:
    """Signal OPERATION to entity NAME KEY (one-way); the entity is created if needed."""
    if at is not None and delay is not None:
        raise click.UsageError("give --at or --delay, not both")
    when: datetime | timedelta | None = at
    if delay is not None:
        when = timedelta(seconds=delay)
    with session(store_url) as client:
        entity = EntityId(name, key)
        client.signal_entity(entity, operation, data, scheduled_time=when)
    if as_json:
        render.echo_json({"entityId": {"name": entity.name, "key": entity.key}, "op": operation})
    else:
        render.note(f"Signal {operation!r} queued for entity {entity.name}/{entity.key}.")


@entities.command()
@common_options
def clean(store_url: str | None, as_json: bool) -> None:
    """Remove entities without state and release locks whose orchestrations are gone."""
    with session(store_url) as client:
        result = client.clean_entity_storage()
    if as_json:
        render.echo_json(
            {
                "emptyEntitiesRemoved": result.empty_entities_removed,
                "orphanedLocksReleased": result.orphaned_locks_released,
            }
        )
    else:
        render.note(
            f"Removed {result.empty_entities_removed} empty entities; released "
            f"{result.orphaned_locks_released} orphaned locks."
        )
