"""Storage backends behind one contract (:class:`durafn.store.base.Store`), chosen by URL."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from durafn.core.errors import StoreError
from durafn.store.base import Store

DEFAULT_STORE_URL = "sqlite:///durafn.db"
STORE_ENV_VAR = "DURAFN_STORE"


def default_store_url() -> str:
    """``$DURAFN_STORE`` if set, else a SQLite file ``durafn.db`` in the working directory."""
    return os.environ.get(STORE_ENV_VAR) or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> Store:
    """Open the store a URL names.

    * ``sqlite:///relative/path.db``, ``sqlite:////absolute/path.db`` — a SQLite file
      (``?synchronous=normal`` trades the last commits on power loss for speed);
    * ``memory://name`` — an in-process store shared by everything in this process that opens
      the same name (tests, notebooks).

    Every URL takes ``?task_hub=NAME`` (default ``default``).
    """
    url = url or default_store_url()
    parts = urlsplit(url)
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
        f"unsupported store URL {url!r}: use sqlite:///path/to/file.db or memory://name"
    )


def _reject_unknown(url: str, options: dict[str, str]) -> None:
    if options:
        raise StoreError(f"unknown option(s) {', '.join(sorted(options))} in store URL {url!r}")


__all__ = ["DEFAULT_STORE_URL", "STORE_ENV_VAR", "Store", "default_store_url", "open_store"]
