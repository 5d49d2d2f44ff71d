"""The SQLite store's statements about one instance search by that instance.

SQLite has no statistics to go by, and a statement that names one instance but also bounds
``visible_at`` may be planned over the hub-wide ``*_by_visible`` index: a scan of every visible
message of the task hub, for each claim or inbox read of one instance. The test records every
statement the store runs through an instance's life, among many visible messages of other
instances, and checks the plan of each one that names an instance.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from durafn.core.status import RuntimeStatus
from durafn.store.base import Checkpoint
from durafn.store.sqlite import SqliteStore

from .factories import LEASE, T0, activity, episode, lock_instance, new_instance, raised

# ``instance_id='...'`` or ``instance_id IN ('...', ...)``: a statement as the trace shows it.
_NAMES_AN_INSTANCE = re.compile(r"\binstance_id\s*(=|IN \()\s*'")


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement run on a connection the store opens during the test."""
    seen: list[str] = []
    connect = sqlite3.connect

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = connect(*args, **kwargs)
        conn.set_trace_callback(seen.append)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    yield seen


def test_statements_about_one_instance_never_scan_the_hub(
    tmp_path: Path, statements: list[str]
) -> None:
    path = tmp_path / "hub.db"

    async def body() -> None:
        store = SqliteStore(path)
        # Others' visible messages, which a hub-wide scan would walk through.
        for n in range(50):
            await store.create_instance(new_instance(f"other-{n}"), T0)
        await store.create_instance(new_instance("mine"), T0)
        await store.send_message("mine", raised("go"), T0)
        item = await lock_instance(store, "mine")
        await store.checkpoint(
            item,
            Checkpoint(
                new_events=episode(item.messages[0].event),
                consumed=[m.seq for m in item.messages],
                status=RuntimeStatus.RUNNING,
                activities=[activity(1)],
                hold_until=T0 + LEASE,
            ),
            T0,
        )
        await store.read_inbox(item, T0)
        await store.renew_orchestration_lease(item, LEASE, T0)
        await store.abandon_orchestration(item)
        await store.get_history("mine")
        await store.close()

    asyncio.run(body())
    per_instance = {s for s in statements if _NAMES_AN_INSTANCE.search(s)}
    assert any(s.lstrip().upper().startswith("SELECT SEQ, EVENT") for s in per_instance)
    conn = sqlite3.connect(path)
    try:
        for statement in sorted(per_instance):
            plan = " / ".join(
                row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {statement}").fetchall()
            )
            assert "_by_visible" not in plan, f"{statement}\n  is planned as: {plan}"
            assert "TEMP B-TREE" not in plan, f"{statement}\n  is planned as: {plan}"
    finally:
        conn.close()
