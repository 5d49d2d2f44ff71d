"""Golden histories: recorded histories replayed against the current orchestrator code.

Each ``golden/<name>.json`` is a JSON list of history events (``event_to_dict``) recorded by
running the orchestrators below. The tests replay the committed files, so a change to the
executor, the history format or these orchestrators that would break instances already in
flight (or already stored) fails here.

When such a change is intended (and in-flight instances have been dealt with), regenerate:

    DURAFN_REGEN_GOLDEN=1 pytest tests/unit/test_golden.py

then review the diff of ``tests/unit/golden/`` and commit it. Without the variable the files are
only read, never written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

import durafn as df
from durafn.core import codec
from durafn.core.history import (
    ExecutionCompleted,
    HistoryEvent,
    event_from_dict,
    event_to_dict,
)
from durafn.core.status import RuntimeStatus
from durafn.executor.orchestration import OrchestrationExecutor, execute

from .factories import INSTANCE_ID, Run, event_raised, new_app, pick, task_completed, task_failed

GOLDEN_DIR = Path(__file__).parent / "golden"
REGENERATE = os.environ.get("DURAFN_REGEN_GOLDEN") == "1"

RETRY = df.RetryOptions(first_retry_interval=timedelta(seconds=30), max_number_of_attempts=3)

# ---------------------------------------------------------------------------------- the code


def hello_cities_gen(ctx):
    outputs = []
    outputs.append((yield ctx.call_activity("say_hello", "Tokyo")))
    outputs.append((yield ctx.call_activity("say_hello", "Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", "London")))
    return outputs


async def hello_cities_coro(ctx):
    outputs = []
    outputs.append(await ctx.call_activity("say_hello", "Tokyo"))
    outputs.append(await ctx.call_activity("say_hello", "Seattle"))
    outputs.append(await ctx.call_activity("say_hello", "London"))
    return outputs


def fan_out_fan_in_gen(ctx):
    batch = yield ctx.call_activity("get_work", ctx.get_input())
    tasks = [ctx.call_activity("process", item, retry=RETRY) for item in batch]
    results = yield ctx.task_all(tasks)
    ctx.set_custom_status({"processed": len(results)})
    return {"total": sum(results), "count": len(results)}


async def fan_out_fan_in_coro(ctx):
    batch = await ctx.call_activity("get_work", ctx.get_input())
    tasks = [ctx.call_activity("process", item, retry=RETRY) for item in batch]
    results = await ctx.task_all(tasks)
    ctx.set_custom_status({"processed": len(results)})
    return {"total": sum(results), "count": len(results)}


def human_interaction_gen(ctx):
    request = ctx.get_input()
    ctx.set_custom_status("waiting for approval")
    yield ctx.call_activity("notify", {"to": request["approver"], "ref": str(ctx.new_uuid())})
    deadline = ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=24))
    approval = ctx.wait_for_external_event("approval")
    winner = yield ctx.task_any([approval, deadline])
    if winner is approval:
        deadline.cancel()
        ctx.set_custom_status("approved")
        yield ctx.call_activity("approve", {"request": request["id"], **approval.result})
        return {"status": "approved", "by": approval.result["by"]}
    ctx.set_custom_status("escalated")
    yield ctx.call_activity("notify", {"to": "manager", "escalation": request["id"]})
    return {"status": "escalated"}


async def human_interaction_coro(ctx):
    request = ctx.get_input()
    ctx.set_custom_status("waiting for approval")
    await ctx.call_activity("notify", {"to": request["approver"], "ref": str(ctx.new_uuid())})
    deadline = ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=24))
    approval = ctx.wait_for_external_event("approval")
    winner = await ctx.task_any([approval, deadline])
    if winner is approval:
        deadline.cancel()
        ctx.set_custom_status("approved")
        await ctx.call_activity("approve", {"request": request["id"], **approval.result})
        return {"status": "approved", "by": approval.result["by"]}
    ctx.set_custom_status("escalated")
    await ctx.call_activity("notify", {"to": "manager", "escalation": request["id"]})
    return {"status": "escalated"}


ORCHESTRATORS = {
    "hello_cities": (hello_cities_gen, hello_cities_coro),
    "fan_out_fan_in": (fan_out_fan_in_gen, fan_out_fan_in_coro),
    "human_interaction": (human_interaction_gen, human_interaction_coro),
}


def build_app(form: str) -> df.App:
    app = new_app()
    for name, (gen, coro) in ORCHESTRATORS.items():
        app.orchestrator(name=name)(pick(form, gen, coro))
    return app


# ---------------------------------------------------------------------------------- the recordings

REQUEST = {"id": "PO-1001", "approver": "ann@example.com"}


def record_hello_cities(run: Run) -> None:
    run.start("hello_cities")
    run.complete(0, "Hello Tokyo!")
    run.complete(1, "Hello Seattle!")
    run.complete(2, "Hello London!")


def record_fan_out_fan_in(run: Run) -> None:
    run.start("fan_out_fan_in", "batch-1")
    run.complete(0, [1, 2, 3])  # schedules #1, #2, #3
    run.episode(task_completed(1, 10), task_failed(2, "TimeoutError", "worker lost"))
    run.fire(4)  # the retry timer of #2, which schedules #5
    run.complete(3, 30)
    run.complete(5, 20)


def record_human_interaction_in_flight(run: Run) -> None:
    run.start("human_interaction", REQUEST)
    run.complete(0)  # notified; now waiting for the approval or the 24 h deadline (#1)


def record_human_interaction_approved(run: Run) -> None:
    record_human_interaction_in_flight(run)
    run.raise_event("approval", {"by": "ann", "comment": "ok"})
    run.complete(2)


GOLDEN: dict[str, Callable[[Run], None]] = {
    "hello_cities": record_hello_cities,
    "fan_out_fan_in": record_fan_out_fan_in,
    "human_interaction_approved": record_human_interaction_approved,
    "human_interaction_in_flight": record_human_interaction_in_flight,
}


def _write_golden(name: str) -> None:
    run = Run(build_app("generator"), check_replay=False)
    GOLDEN[name](run)
    text = json.dumps([event_to_dict(e) for e in run.history], indent=1, ensure_ascii=False)
    (GOLDEN_DIR / f"{name}.json").write_text(text + "\n", encoding="utf-8")


def load_golden(name: str) -> list[dict[str, Any]]:
    if REGENERATE:
        _write_golden(name)
    data: list[dict[str, Any]] = json.loads((GOLDEN_DIR / f"{name}.json").read_text("utf-8"))
    return data


# ---------------------------------------------------------------------------------- helpers

_PRODUCED_BY_THE_EPISODE = frozenset(
    {
        "OrchestratorStarted",
        "OrchestratorCompleted",
        "TaskScheduled",
        "TimerCreated",
        "SubOrchestrationInstanceCreated",
        "EventSent",
        "ContinueAsNew",
        "ExecutionCompleted",
    }
)
_SCHEDULING = frozenset(
    {"TaskScheduled", "TimerCreated", "SubOrchestrationInstanceCreated", "EventSent"}
)


def split_episodes(history: list[HistoryEvent]) -> list[list[HistoryEvent]]:
    """The history cut into episodes (OrchestratorStarted ... OrchestratorCompleted)."""
    episodes: list[list[HistoryEvent]] = []
    current: list[HistoryEvent] = []
    for event in history:
        current.append(event)
        if event.kind == "OrchestratorCompleted":
            episodes.append(current)
            current = []
    assert not current, "the history ends in the middle of an episode"
    assert all(episode[0].kind == "OrchestratorStarted" for episode in episodes)
    return episodes


# ---------------------------------------------------------------------------------- the tests


def test_every_golden_file_has_a_recording() -> None:
    assert sorted(p.stem for p in GOLDEN_DIR.glob("*.json")) == sorted(GOLDEN)


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_file_loads_and_dumps_unchanged(name: str) -> None:
    data = load_golden(name)
    assert data, "empty golden history"
    assert [event_to_dict(event_from_dict(d)) for d in data] == data


@pytest.mark.parametrize("name", GOLDEN)
def test_golden_history_replays_to_the_recorded_state(form: str, name: str) -> None:
    history = [event_from_dict(d) for d in load_golden(name)]
    app = build_app(form)
    episodes = split_episodes(history)

    # Every episode, replayed on top of the ones before it, ends where it was recorded.
    past: list[HistoryEvent] = []
    for number, episode in enumerate(episodes):
        messages = [e for e in episode if e.kind not in _PRODUCED_BY_THE_EPISODE]
        result = execute(app, INSTANCE_ID, past, messages, episode[0].timestamp)
        where = f"{name}, episode {number}"
        if result.failure is not None:
            assert result.failure.error_type != "NonDeterminismError", (
                f"{where}: {result.failure.message}"
            )
        recorded_steps = [event_to_dict(e) for e in episode if e.kind in _SCHEDULING]
        produced_steps = [event_to_dict(a.to_event(episode[0].timestamp)) for a in result.actions]
        assert produced_steps == recorded_steps, where
        completed = [e for e in episode if isinstance(e, ExecutionCompleted)]
        if completed:
            assert result.status is completed[0].status, where
            assert result.output == completed[0].result, where
            assert result.failure == completed[0].failure, where
        else:
            assert result.status is RuntimeStatus.RUNNING, where
        past.extend(episode)

    # The whole history replays in one go too.
    executor = OrchestrationExecutor(app, INSTANCE_ID)
    executor.replay(history)
    assert executor.is_finished == any(isinstance(e, ExecutionCompleted) for e in history)


def test_golden_outputs() -> None:
    def output_of(name: str) -> Any:
        (done,) = [d for d in load_golden(name) if d["kind"] == "ExecutionCompleted"]
        assert done["status"] == "Completed"
        return codec.decode(done["result"])

    assert output_of("hello_cities") == ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]
    assert output_of("fan_out_fan_in") == {"total": 60, "count": 3}
    assert output_of("human_interaction_approved") == {"status": "approved", "by": "ann"}


@pytest.mark.parametrize(
    ("message", "expected_action", "expected_output"),
    [
        ("approval", "CallActivity 'approve'", {"status": "approved", "by": "bob"}),
        ("deadline", "CallActivity 'notify'", {"status": "escalated"}),
    ],
)
def test_in_flight_golden_instance_continues(
    form: str, message: str, expected_action: str, expected_output: Any
) -> None:
    history = [event_from_dict(d) for d in load_golden("human_interaction_in_flight")]
    app = build_app(form)
    executor = OrchestrationExecutor(app, INSTANCE_ID)
    executor.replay(history)
    assert not executor.is_finished

    (deadline,) = [e for e in history if e.kind == "TimerCreated"]
    run = Run(app)
    run.history = list(history)
    run.executor = executor
    run.now = history[-1].timestamp + timedelta(minutes=10)
    if message == "approval":
        result = run.episode(event_raised("approval", {"by": "bob"}))
    else:
        result = run.fire(deadline.event_id)
    assert [a.describe() for a in result.actions] == [expected_action]
    assert result.status is RuntimeStatus.RUNNING
    run.complete(result.actions[0].event_id)
    assert run.status is RuntimeStatus.COMPLETED
    assert run.output == expected_output
