"""Listing instances (filters, keyset paging) and purging finished ones."""

from __future__ import annotations

import asyncio
import base64

import pytest

from durafn.core.errors import InstanceStillRunning
from durafn.core.status import RuntimeStatus
from durafn.store.base import (
    Checkpoint,
    InstanceQuery,
    InstanceRecord,
    Store,
    encode_page_token,
)

from .factories import (
    LEASE,
    at,
    create_finished,
    lock_instance,
    new_instance,
    raised,
    start_running,
)

S = RuntimeStatus


async def _populate(store: Store) -> None:
    """Six instances of two names, in four statuses, created at different times."""
    await store.create_instance(new_instance("order-1", "order"), at(1))
    await start_running(store, "order-2", "order", now=at(2))
    await create_finished(store, "order-3", at(3), S.COMPLETED, name="order")
    await create_finished(store, "mail-1", at(3), S.FAILED, name="mail")
    await create_finished(store, "mail-2", at(4), S.TERMINATED, name="mail")
    await create_finished(store, "mail-3", at(5), S.COMPLETED, name="mail")


def _ids(records: list[InstanceRecord]) -> list[str]:
    return [r.instance_id for r in records]


async def _all_pages(store: Store, query: InstanceQuery) -> list[list[str]]:
    pages = []
    token: str | None = None
    while True:
        page = await store.query_instances(
            InstanceQuery(
                runtime_status=query.runtime_status,
                name=query.name,
                page_size=query.page_size,
                continuation_token=token,
            )
        )
        pages.append(_ids(page.instances))
        token = page.continuation_token
        if token is None:
            return pages
        assert len(pages) < 50, "paging does not end"


def test_query_lists_newest_first_with_ties_by_instance_id(store: Store) -> None:
    async def body() -> None:
        await _populate(store)
        page = await store.query_instances(InstanceQuery())
        newest_first = ["mail-3", "mail-2", "order-3", "mail-1", "order-2", "order-1"]
        assert _ids(page.instances) == newest_first
        assert page.continuation_token is None
        statuses = {r.instance_id: r.status for r in page.instances}
        assert statuses["order-1"] is S.PENDING and statuses["order-2"] is S.RUNNING

    asyncio.run(body())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (InstanceQuery(runtime_status=frozenset({S.COMPLETED})), ["mail-3", "order-3"]),
        (
            InstanceQuery(runtime_status=frozenset({S.PENDING, S.RUNNING})),
            ["order-2", "order-1"],
        ),
        (InstanceQuery(runtime_status=frozenset()), []),
        (InstanceQuery(created_from=at(3)), ["mail-3", "mail-2", "order-3", "mail-1"]),
        (InstanceQuery(created_to=at(3)), ["order-3", "mail-1", "order-2", "order-1"]),
        (
            InstanceQuery(created_from=at(2), created_to=at(4)),
            ["mail-2", "order-3", "mail-1", "order-2"],
        ),
        (InstanceQuery(name="order"), ["order-3", "order-2", "order-1"]),
        (InstanceQuery(name="nothing"), []),
        (InstanceQuery(instance_id_prefix="mail-"), ["mail-3", "mail-2", "mail-1"]),
        (InstanceQuery(instance_id_prefix="order-1"), ["order-1"]),
        (
            InstanceQuery(
                runtime_status=frozenset({S.COMPLETED, S.FAILED}),
                name="mail",
                created_to=at(4),
            ),
            ["mail-1"],
        ),
    ],
)
def test_query_filters(store: Store, query: InstanceQuery, expected: list[str]) -> None:
    async def body() -> None:
        await _populate(store)
        page = await store.query_instances(query)
        assert _ids(page.instances) == expected
        assert page.continuation_token is None

    asyncio.run(body())


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            InstanceQuery(),
            {S.PENDING: 1, S.RUNNING: 1, S.COMPLETED: 2, S.FAILED: 1, S.TERMINATED: 1},
        ),
        (InstanceQuery(name="mail"), {S.COMPLETED: 1, S.FAILED: 1, S.TERMINATED: 1}),
        (InstanceQuery(runtime_status=frozenset({S.COMPLETED})), {S.COMPLETED: 2}),
        (
            InstanceQuery(instance_id_prefix="order-", created_from=at(2)),
            {S.RUNNING: 1, S.COMPLETED: 1},
        ),
        (InstanceQuery(name="nothing"), {}),
        # Paging fields do not limit a count.
        (InstanceQuery(name="order", page_size=1), {S.PENDING: 1, S.RUNNING: 1, S.COMPLETED: 1}),
    ],
)
def test_count_instances_per_status(
    store: Store, query: InstanceQuery, expected: dict[RuntimeStatus, int]
) -> None:
    async def body() -> None:
        await _populate(store)
        assert await store.count_instances(query) == expected

    asyncio.run(body())


def test_paging_walks_every_instance_once(store: Store) -> None:
    async def body() -> None:
        for i in range(8):
            await store.create_instance(new_instance(f"i{i}"), at(i // 3))
        pages = await _all_pages(store, InstanceQuery(page_size=3))
        assert [len(p) for p in pages] == [3, 3, 2]
        flat = [i for p in pages for i in p]
        assert flat == ["i7", "i6", "i5", "i4", "i3", "i2", "i1", "i0"]

    asyncio.run(body())


def test_paging_ends_without_a_token_when_the_last_page_is_full(store: Store) -> None:
    async def body() -> None:
        for i in range(6):
            await store.create_instance(new_instance(f"i{i}"), at(i))
        pages = await _all_pages(store, InstanceQuery(page_size=3))
        assert pages == [["i5", "i4", "i3"], ["i2", "i1", "i0"]]

    asyncio.run(body())


def test_paging_with_filters(store: Store) -> None:
    async def body() -> None:
        await _populate(store)
        query = InstanceQuery(name="mail", page_size=2)
        assert await _all_pages(store, query) == [["mail-3", "mail-2"], ["mail-1"]]
        terminal = frozenset(s for s in S if s.is_terminal)
        finished = InstanceQuery(runtime_status=terminal, page_size=1)
        expected = [["mail-3"], ["mail-2"], ["order-3"], ["mail-1"]]
        assert await _all_pages(store, finished) == expected

    asyncio.run(body())


def test_a_continuation_token_is_a_position_not_a_snapshot(store: Store) -> None:
    async def body() -> None:
        await _populate(store)
        token = encode_page_token(at(3), "order-3")
        page = await store.query_instances(InstanceQuery(continuation_token=token))
        assert _ids(page.instances) == ["mail-1", "order-2", "order-1"]

    asyncio.run(body())


@pytest.mark.parametrize(
    "token",
    ["not a token", "%%%", base64.urlsafe_b64encode(b"[1]").decode(), "W10="],
)
def test_a_malformed_continuation_token_raises_value_error(store: Store, token: str) -> None:
    async def body() -> None:
        await _populate(store)
        with pytest.raises(ValueError, match="continuation token"):
            await store.query_instances(InstanceQuery(continuation_token=token))

    asyncio.run(body())


def test_query_returns_copies(store: Store) -> None:
    async def body() -> None:
        await _populate(store)
        page = await store.query_instances(InstanceQuery(name="order"))
        for record in page.instances:
            record.status = S.CANCELED
        again = await store.query_instances(InstanceQuery(runtime_status=frozenset({S.CANCELED})))
        assert again.instances == []

    asyncio.run(body())


def test_purge_instance(store: Store) -> None:
    async def body() -> None:
        assert await store.purge_instance("ghost") == 0
        await _populate(store)
        for unfinished in ("order-1", "order-2"):
            with pytest.raises(InstanceStillRunning) as error:
                await store.purge_instance(unfinished)
            assert error.value.instance_id == unfinished
            assert await store.get_instance(unfinished) is not None
        assert await store.get_history("order-2") != []
        assert await store.purge_instance("order-3") == 1
        assert await store.get_instance("order-3") is None
        assert await store.get_history("order-3") == []
        assert await store.purge_instance("order-3") == 0
        remaining = await store.query_instances(InstanceQuery())
        assert "order-3" not in _ids(remaining.instances) and len(remaining.instances) == 5

    asyncio.run(body())


def test_purge_deletes_history_counters_and_lets_the_id_be_reused(store: Store) -> None:
    async def body() -> None:
        await start_running(store, "a")
        await store.send_message("a", raised(), at(1))
        await store.send_message("a", raised("ignored"), at(1))
        item = await lock_instance(store, "a", at(1))
        # The second event is left unconsumed: finishing drops it and counts it.
        await store.checkpoint(item, Checkpoint([], [item.messages[0].seq], S.COMPLETED), at(2))
        assert await store.dropped_events("a") == 1
        assert await store.purge_instance("a") == 1
        assert await store.dropped_events("a") == 0
        assert await store.get_history("a") == []
        await store.create_instance(new_instance("a", execution_id="again"), at(3))
        item = await lock_instance(store, "a", at(3))
        assert item.execution_id == "again" and item.history_length == 0
        assert [m.event.kind for m in item.messages] == ["ExecutionStarted"]

    asyncio.run(body())


def test_purge_instances_touches_only_finished_instances(store: Store) -> None:
    async def body() -> None:
        await _populate(store)
        running = InstanceQuery(runtime_status=frozenset({S.RUNNING}))
        assert await store.purge_instances(running) == 0
        query = InstanceQuery(runtime_status=frozenset({S.COMPLETED, S.PENDING}), name="order")
        assert await store.purge_instances(query) == 1
        assert await store.get_instance("order-3") is None
        older_mail = InstanceQuery(instance_id_prefix="mail-", created_to=at(4))
        assert await store.purge_instances(older_mail) == 2
        assert await store.get_instance("mail-3") is not None
        assert await store.purge_instances(InstanceQuery()) == 1
        remaining = await store.query_instances(InstanceQuery())
        assert _ids(remaining.instances) == ["order-2", "order-1"]
        # The unfinished ones keep their queued work.
        item = await store.lock_next_orchestration("w1", LEASE, at(10))
        assert item is not None and item.instance_id == "order-1"

    asyncio.run(body())
