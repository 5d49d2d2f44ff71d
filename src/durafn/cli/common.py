"""What every management command of the CLI shares: options, parsers, errors, the client.

Client errors become one line on stderr: exit code 1 for a refused operation (unknown or
finished instance, busy id, store failure), 2 for bad input, as Click's usage errors.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any, TypeVar

import click

from durafn.client.client import Client
from durafn.core.errors import DurafnError
from durafn.core.status import RuntimeStatus
from durafn.store import STORE_ENV_VAR

F = TypeVar("F", bound=Callable[..., Any])


class CliError(click.ClickException):
    """A one-line ``Error: ...`` on stderr and exit code 1, never a traceback."""


class BadInput(CliError):
    """Input the client refused (a malformed id, token or payload): exit code 2, as Click's."""

    exit_code = 2


class WaitTimedOut(CliError):
    """``wait --timeout`` passed before the instance finished: exit code 124, as timeout(1)."""

    exit_code = 124


class Interrupted(click.ClickException):
    """Ctrl-C: exit code 130, as shells report SIGINT."""

    exit_code = 130

    def __init__(self) -> None:
        super().__init__("interrupted (Ctrl-C)")

    def show(self, file: IO[Any] | None = None) -> None:
        super().show(file)
        # The interrupted call may still hold the store's thread, which interpreter exit would
        # wait for: say why, then leave at once.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(self.exit_code)


def parse_time(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """An ISO 8601 time (``2026-01-02``, ``2026-01-02T03:04:05Z``); without a zone, UTC."""
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 time, e.g. 2026-01-02T03:04:05Z", ctx, param
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def parse_json(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A JSON document given on the command line (``'{"a": 1}'``, ``42``, ``'"text"'``)."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        hint = " (a string needs JSON quotes: '\"text\"')" if value[:1].isalpha() else ""
        raise click.BadParameter(f"{value!r} is not valid JSON: {exc}{hint}", ctx, param) from None


STATUS = click.Choice([s.value for s in RuntimeStatus], case_sensitive=False)
STATUS_NAMES = ", ".join(s.value for s in RuntimeStatus)


store_option = click.option(
    "--store",
    "store_url",
    envvar=STORE_ENV_VAR,
    default=None,
    metavar="URL",
    help="Store URL (default: $DURAFN_STORE or sqlite:///durafn.db).",
)
"""``--store URL`` (or ``$DURAFN_STORE``), as every command that opens a store takes it."""


def common_options(command: F) -> F:
    """``--store`` and ``--json``, taken by every instance command."""
    command = click.option(
        "--json",
        "as_json",
        is_flag=True,
        help="Print machine-readable JSON (the management API's shapes) on stdout.",
    )(command)
    return store_option(command)


@contextmanager
def session(store_url: str | None) -> Iterator[Client]:
    """A client on the store, closed afterwards; its errors turned into :class:`CliError`."""
    with client_errors():
        client = Client(store_url)
    interrupted = False
    try:
        with client_errors():
            yield client
    except KeyboardInterrupt:
        # The interrupted call is still pending on the client's loop thread; closing the
        # store under it would only add noise. The process is about to end: leave both be.
        interrupted = True
        raise Interrupted() from None
    finally:
        if not interrupted:
            client.close()


@contextmanager
def client_errors() -> Iterator[None]:
    try:
        yield
    except (ValueError, TypeError) as exc:  # bad input: a malformed id, token or payload
        raise BadInput(str(exc)) from None
    except DurafnError as exc:  # a refused operation, or the store failing
        raise CliError(str(exc)) from None
