"""How the CLI shows things: Rich tables and panels for people, JSON documents for programs.

Every JSON shape comes from :mod:`durafn.http.status_json`, so ``durafn instances ... --json``
prints exactly what the management API answers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import click
from rich import box
from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from durafn.core.status import FailureDetails, OrchestrationStatus, RuntimeStatus
from durafn.http.status_json import to_plain_json

STATUS_STYLES: dict[RuntimeStatus, str] = {
    RuntimeStatus.PENDING: "yellow",
    RuntimeStatus.RUNNING: "cyan",
    RuntimeStatus.COMPLETED: "green",
    RuntimeStatus.CONTINUED_AS_NEW: "blue",
    RuntimeStatus.FAILED: "bold red",
    RuntimeStatus.CANCELED: "magenta",
    RuntimeStatus.TERMINATED: "red",
    RuntimeStatus.SUSPENDED: "yellow",
}

PREVIEW_WIDTH = 40

Row = TypeVar("Row")


def stdout_console() -> Console:
    return Console(highlight=False)


def echo_json(document: Any) -> None:
    """Print one JSON document on stdout (plain text: no colours, whatever the terminal)."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def note(message: str) -> None:
    """A line for the person at the terminal, on stderr so it never mixes with the data."""
    click.echo(message, err=True)


# ------------------------------------------------------------------------------ small pieces


def status_text(status: RuntimeStatus) -> Text:
    return Text(status.value, style=STATUS_STYLES.get(status, ""))


def format_time(moment: datetime | None) -> str:
    """A UTC time to the second, as people read it in a table."""
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def format_duration(delta: timedelta) -> str:
    """``0.42s``, ``12.3s``, ``4m 05s``, ``3h 02m``, ``2d 07h``."""
    seconds = max(0.0, delta.total_seconds())
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours:02d}h"


def duration_of(status: OrchestrationStatus) -> str:
    """How long a finished instance ran (created to last update); empty while it runs."""
    if not status.is_finished:
        return ""
    return format_duration(status.last_updated_time - status.created_time)


def compact_json(value: Any) -> str:
    return json.dumps(to_plain_json(value), ensure_ascii=False, separators=(",", ":"))


def preview(value: Any, width: int = PREVIEW_WIDTH) -> str:
    """A value as one line of JSON, cut to ``width`` characters (``""`` for ``None``)."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else compact_json(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def pretty_json(value: Any) -> str:
    return json.dumps(to_plain_json(value), ensure_ascii=False, indent=2)


# ------------------------------------------------------------------------------ instance lists


@dataclass(frozen=True)
class Column(Generic[Row]):
    header: str
    cell: Callable[[Row], str | Text]
    justify: JustifyMethod = "left"


MIN_LAST_COLUMN = 12


def print_table(
    console: Console,
    columns: Sequence[Column[Row]],
    rows: Sequence[Row],
    optional: Sequence[str] = (),
    title: str | None = None,
) -> None:
    """Print a table whose lines fit the terminal: the last column is cut short with an ellipsis
    first, then ``optional`` columns are left out in order. Ids are never cut (they are there
    to be copied); a pipe or a file gets every column, whole."""
    unbounded = console.options.update_width(1_000_000)

    def width(table: Table) -> int:
        return console.measure(table, options=unbounded).maximum

    left_out: frozenset[str] = frozenset()
    table = _table(columns, rows, left_out, None, title)
    for drop in (None, *optional) if console.is_terminal else ():
        if drop is not None:
            left_out |= {drop}
            table = _table(columns, rows, left_out, None, title)
        if width(table) <= console.width:
            break
        last = [c.header for c in columns if c.header not in left_out][-1]
        room = console.width - width(_table(columns, rows, left_out | {last}, None, title)) - 3
        if room >= MIN_LAST_COLUMN:
            table = _table(columns, rows, left_out, room, title)
            break
    # Past the edge of a terminal its own wrapping takes over.
    console.width = max(console.width, width(table))
    console.print(table, crop=False)


def _table(
    columns: Sequence[Column[Row]],
    rows: Sequence[Row],
    left_out: frozenset[str],
    last_width: int | None,
    title: str | None,
) -> Table:
    shown = [column for column in columns if column.header not in left_out]
    table = Table(
        title=title, title_justify="left", header_style="bold", box=box.SIMPLE_HEAD, show_edge=False
    )
    for column in shown:
        table.add_column(
            column.header,
            justify=column.justify,
            no_wrap=True,
            overflow="ellipsis",
            max_width=last_width if column is shown[-1] else None,
        )
    for row in rows:
        table.add_row(*(column.cell(row) for column in shown))
    return table


INSTANCE_COLUMNS: list[Column[OrchestrationStatus]] = [
    Column("instance id", lambda s: Text(s.instance_id)),
    Column("name", lambda s: Text(s.name)),
    Column("status", lambda s: status_text(s.runtime_status)),
    Column("created (UTC)", lambda s: format_time(s.created_time)),
    Column("last updated (UTC)", lambda s: format_time(s.last_updated_time)),
    Column("duration", duration_of, justify="right"),
    Column("custom status", lambda s: Text(preview(s.custom_status))),
]
# Left out, in this order, while the table is wider than the terminal.
INSTANCE_OPTIONAL_COLUMNS = ("custom status", "last updated (UTC)", "duration")


def print_instances(console: Console, statuses: Sequence[OrchestrationStatus]) -> None:
    """One row per instance: id, name, coloured status, times, duration, custom status."""
    print_table(console, INSTANCE_COLUMNS, statuses, INSTANCE_OPTIONAL_COLUMNS)


# ------------------------------------------------------------------------------ one instance


def status_view(status: OrchestrationStatus, *, show_input: bool = True) -> RenderableType:
    """A panel with everything known about the instance; its failure below, stack and all."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    grid.add_row("name", Text(status.name))
    grid.add_row("status", status_text(status.runtime_status))
    grid.add_row("created", format_time(status.created_time) + " UTC")
    grid.add_row("last updated", format_time(status.last_updated_time) + " UTC")
    if status.is_finished:
        grid.add_row("duration", duration_of(status))
    if status.scheduled_start_time is not None:
        grid.add_row("scheduled start", format_time(status.scheduled_start_time) + " UTC")
    if status.parent_instance_id is not None:
        grid.add_row("parent", Text(status.parent_instance_id))
    if show_input:
        grid.add_row("input", Text(pretty_json(status.input)))
    grid.add_row("custom status", Text(pretty_json(status.custom_status)))
    if status.failure_details is None:
        grid.add_row("output", Text(pretty_json(status.output)))
    else:
        failure = status.failure_details
        grid.add_row("failure", Text(f"{failure.error_type}: {failure.message}", style="red"))
    parts: list[RenderableType] = [
        Panel(grid, title=Text(f"instance {status.instance_id}"), title_align="left")
    ]
    if status.failure_details is not None:
        parts.append(failure_view(status.failure_details))
    return Group(*parts)


def failure_view(failure: FailureDetails) -> RenderableType:
    """The stack traces of a failure and of each failure that caused it."""
    lines = Text()
    node: FailureDetails | None = failure
    first = True
    while node is not None:
        if not first:
            lines.append("\ncaused by ", style="bold")
        lines.append(f"{node.error_type}: {node.message}\n", style="red")
        if node.stack_trace:
            lines.append(node.stack_trace.rstrip("\n") + "\n", style="dim")
        node = node.inner
        first = False
    lines.rstrip()
    return Panel(lines, title="failure", title_align="left", border_style="red")


_ID_FIELDS = ("EventId", "TaskScheduledId", "TimerId", "InstanceId")
# Short fields first, so a cut line still shows them.
_DETAIL_FIELDS = ("OrchestrationStatus", "Reason", "FireAt", "Input", "Result")
HistoryRow = tuple[int, dict[str, Any]]
HISTORY_COLUMNS: list[Column[HistoryRow]] = [
    Column("#", lambda r: str(r[0]), justify="right"),
    Column("event", lambda r: _event_kind(r[1])),
    Column("time (UTC)", lambda r: _event_time(r[1].get("Timestamp"))),
    Column("name", lambda r: Text(str(_step_name(r[1])))),
    Column("ids", lambda r: Text(" ".join(f"{k}={r[1][k]}" for k in _ID_FIELDS if k in r[1]))),
    Column("details", lambda r: Text(_event_details(r[1]))),
]
HISTORY_OPTIONAL_COLUMNS = ("details", "ids")


def print_history(console: Console, events: list[dict[str, Any]]) -> None:
    """History events, as :func:`~durafn.http.status_json.history_to_json` shows them."""
    rows = list(enumerate(events, start=1))
    print_table(console, HISTORY_COLUMNS, rows, HISTORY_OPTIONAL_COLUMNS, title="history")


def _step_name(event: dict[str, Any]) -> str:
    operation = event.get("Operation")
    if operation is not None:  # an entity operation: the entity and the operation
        return f"{event.get('InstanceId', '')} {operation}"
    return str(event.get("FunctionName") or event.get("Name") or "")


def _event_kind(event: dict[str, Any]) -> Text:
    kind = str(event["EventType"])
    failed = kind.endswith("Failed") or kind == "ExecutionTerminated"
    return Text(kind, style="red" if failed else "")


def _event_time(stamp: str | None) -> str:
    return format_time(datetime.fromisoformat(stamp)) if stamp else ""


def _event_details(event: dict[str, Any]) -> str:
    details = [
        f"{key}={_event_time(event[key]) if key == 'FireAt' else preview(event[key])}"
        for key in _DETAIL_FIELDS
        if key in event
    ]
    failure = event.get("FailureDetails")
    if failure is not None:
        details.insert(0, f"{failure['ErrorType']}: {failure['ErrorMessage']}")
    return preview(" ".join(details), PREVIEW_WIDTH + 20)
