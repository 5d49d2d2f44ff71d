"""Entities end to end through the client: a worker, a SQLite file, real concurrency."""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.core.history import EntityLockRequested
from durafn.worker.entities import MAX_BATCH_MESSAGES

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import entity_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

COUNTER = entity_app.COUNTER
ACCOUNTS = [f"acct-{n}" for n in range(5)]
OPENING_BALANCE = 1000


@pytest.fixture
def runtime(store_url: str) -> Iterator[df.Runtime]:
    options = df.WorkerOptions(max_concurrent_orchestrations=8)
    with df.Runtime(entity_app.app, store=store_url, options=options) as rt:
        yield rt


def test_signals_and_calls_through_the_client(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    assert client.read_entity_state(COUNTER) == df.EntityStateResponse(False, None)
    for _ in range(3):
        client.signal_entity(COUNTER, "add", 2)
    wait_until(lambda: client.read_entity_state(COUNTER).entity_state == 6)
    instance_id = client.start_new(
        "call_counter", {"name": "counter", "key": "shared", "operation": "get"}
    )
    assert client.wait_for_completion(instance_id, timeout=10).output == 6
    # Entity names are case-insensitive; entities stay out of the instance list.
    client.signal_entity(df.EntityId("Counter", "shared"), "add", 1)
    wait_until(lambda: client.read_entity_state("@counter@shared").entity_state == 7)
    assert [s.instance_id for s in client.get_status_by().instances] == [instance_id]
    [entity] = client.get_entities(name="COUNTER").entities
    assert entity.entity_id == COUNTER and entity.state == 7 and entity.locked_by is None


def test_scheduled_signal_waits_for_its_time(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    client.signal_entity(COUNTER, "add", 5, scheduled_time=timedelta(seconds=1.5))
    time.sleep(0.5)
    assert not client.read_entity_state(COUNTER).entity_exists
    wait_until(lambda: client.read_entity_state(COUNTER).entity_state == 5, timeout=10)


def test_get_entities_pages_and_hides_deleted(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    for n in range(5):
        client.signal_entity(df.EntityId("counter", f"k{n}"), "add", n + 1)
    client.signal_entity(df.EntityId("account", "a"), "deposit", 9)
    wait_until(lambda: len(client.get_entities(page_size=100).entities) == 6)
    client.signal_entity(df.EntityId("counter", "k0"), "delete")
    wait_until(lambda: len(client.get_entities(name="counter").entities) == 4)
    seen: list[str] = []
    token = None
    while True:
        page = client.get_entities(name="counter", page_size=2, continuation_token=token)
        seen += [e.entity_id.key for e in page.entities]
        token = page.continuation_token
        if token is None:
            break
    assert sorted(seen) == ["k1", "k2", "k3", "k4"]
    everything = client.get_entities(include_deleted=True).entities
    assert len(everything) == 6
    removed = client.clean_entity_storage()
    assert removed == df.CleanEntityStorageResult(1, 0)
    assert len(client.get_entities(include_deleted=True).entities) == 5


def test_terminating_the_lock_owner_releases_the_lock(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    owner = client.start_new("hold_lock")
    wait_until(lambda: client.get_entities(include_deleted=True).entities, what="the lock")
    wait_until(
        lambda: client.get_entities(include_deleted=True).entities[0].locked_by == owner,
        what="the lock to be granted",
    )
    client.signal_entity(COUNTER, "add", 1)  # deferred while the lock is held
    time.sleep(0.3)
    [entity] = client.get_entities(include_deleted=True).entities
    assert entity.backlog_queue_size == 1 and not entity.entity_exists
    client.terminate(owner, "stop")
    wait_until(lambda: client.read_entity_state(COUNTER).entity_state == 1)
    [entity] = client.get_entities().entities
    assert entity.locked_by is None


def test_clean_entity_storage_releases_a_lock_whose_owner_is_gone(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    store = client.async_client.store
    request = EntityLockRequested(
        timestamp=client.async_client.clock.now(),
        event_id=0,
        critical_section_id="cs-ghost",
        lock_set=[COUNTER.instance_id],
        parent_instance_id="ghost",
        parent_execution_id="e1",
    )
    runtime._portal.run(  # type: ignore[union-attr]
        store.send_entity_message(COUNTER.instance_id, request, request.timestamp)
    )
    client.signal_entity(COUNTER, "add", 3)
    wait_until(lambda: client.get_entities(include_deleted=True).entities)
    wait_until(lambda: client.get_entities(include_deleted=True).entities[0].locked_by == "ghost")
    assert client.clean_entity_storage() == df.CleanEntityStorageResult(0, 1)
    wait_until(lambda: client.read_entity_state(COUNTER).entity_state == 3)


# ------------------------------------------------------------------------------- critical sections


def test_concurrent_transfers_conserve_the_total(
    runtime: df.Runtime, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = run_transfers(runtime.client)
    with capsys.disabled():
        print(f"\n{summary} (SQLite)")


def test_concurrent_transfers_conserve_the_total_postgres(
    postgres_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    options = df.WorkerOptions(max_concurrent_orchestrations=8)
    with df.Runtime(entity_app.app, store=postgres_url, options=options) as rt:
        summary = run_transfers(rt.client)
    with capsys.disabled():
        print(f"\n{summary} (PostgreSQL)")


def run_transfers(client: df.Client) -> str:
    """200 concurrent transfers between 5 accounts; checks them and returns a summary."""
    for account in ACCOUNTS:
        client.signal_entity(df.EntityId("account", account), "deposit", OPENING_BALANCE)
    rng = random.Random(7)
    began = time.monotonic()
    ids = []
    for n in range(200):
        source, target = rng.sample(ACCOUNTS, 2)
        order = {"from": source, "to": target, "amount": rng.randint(1, 400)}
        name = "transfer" if n % 2 else "transfer_async"
        ids.append(client.start_new(name, order, instance_id=f"transfer-{n:03d}"))
    outcomes = [client.wait_for_completion(i, timeout=240) for i in ids]
    seconds = time.monotonic() - began
    assert {s.runtime_status for s in outcomes} == {df.RuntimeStatus.COMPLETED}
    balances = [
        client.read_entity_state(df.EntityId("account", a)).entity_state["balance"]
        for a in ACCOUNTS
    ]
    assert sum(balances) == OPENING_BALANCE * len(ACCOUNTS)
    assert all(b >= 0 for b in balances)
    # The last unlocks are messages: they reach the accounts just after the orchestrations end.
    deadline = time.monotonic() + 60
    while any(e.locked_by for e in client.get_entities(name="account").entities):
        assert time.monotonic() < deadline, "an account stayed locked"
        time.sleep(0.05)
    moved = sum(1 for s in outcomes if s.output is True)
    return (
        f"200 transfers between 5 accounts in critical sections: {moved} moved money, "
        f"{200 - moved} refused, total {sum(balances)} conserved, {seconds:.1f} s"
    )


# ------------------------------------------------------------------------------- batching


def test_ten_thousand_signals_take_far_fewer_commits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wait_until: Callable[..., Any]
) -> None:
    signals, senders = 10_000, 8
    streamed = f"sqlite:///{tmp_path}/streamed.db?synchronous=normal"
    # While the worker runs: senders in parallel, as many producers feed one aggregator.
    with df.Runtime(entity_app.app, store=streamed) as rt:
        began = time.monotonic()
        threads = [
            threading.Thread(target=_send_signals, args=(streamed, signals // senders))
            for _ in range(senders)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wait_until(
            lambda: rt.client.read_entity_state(COUNTER).entity_state == signals, timeout=120
        )
        streamed_seconds = time.monotonic() - began
        streamed_batches = rt.worker.entity_batches
    # Queued first, then one worker: the backlog is applied in a handful of commits.
    queued = f"sqlite:///{tmp_path}/queued.db?synchronous=normal"
    _send_signals(queued, signals)
    with df.Runtime(entity_app.app, store=queued) as rt:
        began = time.monotonic()
        wait_until(
            lambda: rt.client.read_entity_state(COUNTER).entity_state == signals, timeout=120
        )
        queued_seconds = time.monotonic() - began
        queued_batches = rt.worker.entity_batches
    with capsys.disabled():
        print(
            f"\n{signals} signals to one entity from {senders} parallel senders while the worker "
            f"ran: {streamed_batches} commits of the entity "
            f"({signals / streamed_batches:.1f} operations per commit), {streamed_seconds:.1f} s; "
            f"{signals} queued signals: {queued_batches} commits, applied in {queued_seconds:.2f} s"
        )
    assert streamed_batches <= signals // 4
    # A batch takes at most MAX_BATCH_MESSAGES messages: the backlog needs that many commits.
    assert queued_batches <= -(-signals // MAX_BATCH_MESSAGES) + 2


def _send_signals(url: str, count: int) -> None:
    with df.Client(url) as sender:
        for _ in range(count):
            sender.signal_entity(COUNTER, "add", 1)


# ------------------------------------------------------------------------------- bad input


def test_unknown_entity_name_is_a_clear_error(runtime: df.Runtime) -> None:
    client = runtime.client
    with pytest.raises(df.FunctionNotFound, match=r"entity 'nosuch' is not registered"):
        client.signal_entity(df.EntityId("nosuch", "k"), "add", 1)
    instance_id = client.start_new("call_counter", {"name": "nosuch", "operation": "get"})
    status = client.wait_for_completion(instance_id, timeout=10)
    assert status.runtime_status is df.RuntimeStatus.FAILED
    assert status.failure_details is not None
    assert "entity 'nosuch' is not registered (registered entities: account, counter)" in (
        status.failure_details.message
    )
    assert client.get_entities(include_deleted=True).entities == []


def test_unknown_operation_of_a_class_entity_fails_and_keeps_the_state(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    account = df.EntityId("account", "a")
    client.signal_entity(account, "deposit", 50)
    wait_until(lambda: client.read_entity_state(account).entity_exists)
    request = {"name": "account", "key": "a", "operation": "withdrawx", "input": 10}
    instance_id = client.start_new("call_counter", request)
    assert client.wait_for_completion(instance_id, timeout=10).output == {
        "error": "OperationNotFound",
        "message": "entity 'account' has no operation 'withdrawx' "
        "(its operations: deposit, get, withdraw)",
    }
    assert client.read_entity_state(account).entity_state == {"balance": 50}


def test_unencodable_state_fails_the_operation_and_keeps_the_state(
    runtime: df.Runtime, wait_until: Callable[..., Any]
) -> None:
    client = runtime.client
    client.signal_entity(COUNTER, "add", 4)
    wait_until(lambda: client.read_entity_state(COUNTER).entity_state == 4)
    request = {"name": "counter", "key": "shared", "operation": "set_unencodable"}
    instance_id = client.start_new("call_counter", request)
    output = client.wait_for_completion(instance_id, timeout=10).output
    assert output["error"] == "TypeError"
    assert "state of entity '@counter@shared'" in output["message"]
    assert "of type set" in output["message"]
    assert client.read_entity_state(COUNTER).entity_state == 4


def test_bad_client_input_is_refused_before_anything_is_stored(runtime: df.Runtime) -> None:
    client = runtime.client
    with pytest.raises(TypeError, match="input of operation 'add'"):
        client.signal_entity(COUNTER, "add", {1, 2})
    with pytest.raises(ValueError, match="reserved for entities"):
        client.terminate(COUNTER.instance_id)
    with pytest.raises(ValueError, match="reserved for entities"):
        client.purge_instance_history(COUNTER.instance_id)
    with pytest.raises(ValueError, match="entity name"):
        df.EntityId("", "k")
    assert client.get_entities(include_deleted=True).entities == []
