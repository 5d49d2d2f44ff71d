"""Storage backends behind one contract (:class:`durafn.store.base.Store`), chosen by URL."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from durafn.core.errors import StoreError
from durafn.store.base import Store

DEFAULT_STORE_URL = "sqlite:///durafn.db"
STORE_ENV_VAR = "DURAFN_STORE"
# Connections a PostgreSQL store opens at most. One process runs Python on one core at a time:
# a few connections keep the server busy, more only contend (on 2 cores, 200 chains of steps
# ran 1,310 steps/s with 4 and 1,020 with 10).
DEFAULT_POOL_MAX = 4


def default_store_url() -> str:
    """``$DURAFN_STORE`` if set, else a SQLite file ``durafn.db`` in the working directory."""
    return os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` — a SQLite file
      (``?synchronous=normal`` trades the last commits on power loss for speed);
    * ``memory://name`` — an in-process store shared by everything in this process that opens
      the same name (tests, notebooks);
    * ``postgresql://user:password@host:5432/dbname`` (or ``postgres://``) — a PostgreSQL
      database, tables in the schema ``durafn`` (``?schema=NAME`` to choose another), at most
      4 connections per store (``?pool_max=N``). libpq's own URL parameters
      (``sslmode``, ``connect_timeout``, ...) and ``PG*`` environment variables work as usual.

    Every URL takes ``?task_hub=NAME`` (default ``default``). An unknown option raises
    ``StoreError``.
    """
    url = url or default_store_url()
    parts = urlsplit(url)
    if parts.scheme in _POSTGRES_SCHEMES:
        from durafn.store.postgres import PostgresStore

        target = postgres_target(url)
        return PostgresStore(
            target.conninfo, target.task_hub, schema=target.schema, max_size=target.pool_max
        )
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    task_hub = options.pop("task_hub", "default")
    if parts.scheme == "sqlite":
        from durafn.store.sqlite import SqliteStore

        raw_path = unquote(parts.path)
        if parts.netloc:
            raise StoreError(f"SQLite URL {url!r} has a host; write sqlite:///path/to/file.db")
        path = raw_path[1:] if raw_path.startswith("/") else raw_path
        if not path:
            raise StoreError(f"SQLite URL {url!r} names no file; write sqlite:///durafn.db")
        synchronous = options.pop("synchronous", "full")
        _reject_unknown(url, options)
        return SqliteStore(Path(path), task_hub, synchronous=synchronous)
    if parts.scheme == "memory":
        from durafn.store.memory import MemoryStore

        _reject_unknown(url, options)
        return MemoryStore(parts.netloc or unquote(parts.path.lstrip("/")) or "default", task_hub)
    raise StoreError(
        f"unsupported store URL {url!r}: use sqlite:///path/to/file.db, "
        "postgresql://user@host/dbname or memory://name"
    )


_POSTGRES_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class PostgresTarget:
    """What a ``postgresql://`` store URL names: libpq's conninfo, and durafn's options."""

    conninfo: str
    schema: str
    task_hub: str
    pool_max: int


def postgres_target(url: str) -> PostgresTarget:
    """Split a ``postgresql://`` store URL into libpq's connection string and durafn's options.

    ``durafn db status|upgrade`` pass ``conninfo`` and ``schema`` to
    :mod:`durafn.store.postgres_schema`. Raises ``StoreError`` for another scheme, a bad
    ``pool_max`` or an option neither durafn nor libpq knows.
    """
    from durafn.store.postgres_connections import complete_conninfo
    from durafn.store.postgres_schema import DEFAULT_SCHEMA

    parts = urlsplit(url)
    if parts.scheme not in _POSTGRES_SCHEMES:
        raise StoreError(f"{url!r} is not a postgresql:// URL")
    ours: dict[str, str] = {}
    theirs: list[str] = []
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        if unquote(key) in ("task_hub", "schema", "pool_max"):
            ours[unquote(key)] = unquote(value.replace("+", " "))
        else:
            theirs.append(pair)
    conninfo = urlunsplit(parts._replace(query="&".join(theirs), fragment=""))
    try:
        complete_conninfo(conninfo)
    except StoreError as exc:
        raise StoreError(f"bad store URL {_without_password(url)!r}: {exc}") from None
    raw_max = ours.get("pool_max", str(DEFAULT_POOL_MAX))
    if not raw_max.isdigit() or int(raw_max) < 1:
        raise StoreError(f"pool_max must be a positive integer, not {raw_max!r}")
    return PostgresTarget(
        conninfo=conninfo,
        schema=ours.get("schema") or DEFAULT_SCHEMA,
        task_hub=ours.get("task_hub", "default"),
        pool_max=int(raw_max),
    )


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _reject_unknown(url: str, options: dict[str, str]) -> None:
    if options:
        raise StoreError(f"unknown option(s) {', '.join(sorted(options))} in store URL {url!r}")


__all__ = [
    "DEFAULT_STORE_URL",
    "STORE_ENV_VAR",
    "PostgresTarget",
    "Store",
    "default_store_url",
    "open_store",
    "postgres_target",
]
