"""``durafn db status|upgrade``: the store's schema version, and migrations applied by hand.

Workers and hosts migrate the schema on first use; operators who prefer to apply migrations
themselves (before a deploy, with their own credentials) use these commands.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

import click

from durafn import loops
from durafn.cli.common import store_option
from durafn.core.errors import StoreError
from durafn.store import default_store_url, postgres_target


@click.group()
def db() -> None:
    """Inspect or upgrade the store's schema."""


@db.command()
@store_option
def status(store_url: str | None) -> None:
    """Print the schema version of the store and the version this durafn expects."""
    current, expected = _run(store_url, upgrade=False)
    state = (
        "up to date"
        if current == expected
        else ("not created yet" if current == 0 else "needs `durafn db upgrade`")
    )
    click.echo(f"schema version {current}, this durafn expects {expected}: {state}")


@db.command()
@store_option
def upgrade(store_url: str | None) -> None:
    """Apply the migrations the store is missing (safe to run while workers start)."""
    before, after = _run(store_url, upgrade=True)
    if before == after:
        click.echo(f"schema version {after}: nothing to do")
    else:
        click.echo(f"schema upgraded from version {before} to {after}")


def _run(store_url: str | None, *, upgrade: bool) -> tuple[int, int]:
    url = store_url or default_store_url()
    scheme = urlsplit(url).scheme
    try:
        if scheme in {"postgresql", "postgres"}:
            return loops.run(_postgres(url, upgrade))
        if scheme == "sqlite":
            return _sqlite(url, upgrade)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from exc
    raise click.ClickException(f"{url!r} has no schema to manage (sqlite:// or postgresql://)")


async def _postgres(url: str, upgrade: bool) -> tuple[int, int]:
    from durafn.store import postgres_schema

    target = postgres_target(url)
    if upgrade:
        return await postgres_schema.upgrade(target.conninfo, target.schema)
    current = await postgres_schema.current_version(target.conninfo, target.schema)
    return current, postgres_schema.SCHEMA_VERSION


def _sqlite(url: str, upgrade: bool) -> tuple[int, int]:
    from durafn.store.sqlite_schema import SCHEMA_VERSION, current_version, migrate

    raw = unquote(urlsplit(url).path)
    path = Path(raw[1:] if raw.startswith("/") else raw)
    if not upgrade and not path.exists():
        return 0, SCHEMA_VERSION
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=60)
        try:
            before = current_version(conn)
            if upgrade:
                conn.execute("PRAGMA journal_mode=WAL")
                migrate(conn)
            return (before, current_version(conn)) if upgrade else (before, SCHEMA_VERSION)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise StoreError(f"SQLite error on {path}: {exc}") from exc
