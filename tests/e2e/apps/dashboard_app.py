"""The app of the dashboard tests (tests/e2e/test_dashboard.py).

The examples' hello_cities and approval_workflow (human interaction) as they are, plus an order
fulfilment that shows every lane of the timeline: a fan-out, an activity that succeeds on its
third attempt, a timer, a sub-orchestration, an entity call and a wait for an external event;
and two entities.
"""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import durafn as df

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "examples"))

import hello_cities
import human_interaction

app = df.App()

app.orchestrator(hello_cities.hello_cities)
app.activity(hello_cities.say_hello)
app.orchestrator(human_interaction.approval_workflow)
for activity in (
    human_interaction.request_approval,
    human_interaction.record_decision,
    human_interaction.escalate,
):
    app.activity(activity)


QUICK_RETRY = df.RetryOptions(first_retry_interval=timedelta(seconds=0.4), max_number_of_attempts=4)


@app.orchestrator
def fulfil_order(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    order = ctx.get_input()
    ctx.set_custom_status({"step": "reserving"})
    yield ctx.task_all([ctx.call_activity(reserve_item, item) for item in order["items"]])
    ctx.set_custom_status({"step": "charging"})
    receipt = yield ctx.call_activity(charge_card, order["id"], retry=QUICK_RETRY)
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(seconds=0.5))
    ctx.set_custom_status({"step": "shipping"})
    tracking = yield ctx.call_sub_orchestrator(ship_parcel, order["id"])
    yield ctx.call_entity(df.EntityId("counter", "shipped"), "add", 1)
    ctx.set_custom_status({"step": "awaiting delivery", "tracking": tracking})
    delivered = yield ctx.wait_for_external_event("delivered")
    ctx.set_custom_status({"step": "done"})
    return {"order": order["id"], "receipt": receipt, "tracking": tracking, **delivered}


@app.orchestrator
def ship_parcel(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    label = yield ctx.call_activity(print_label, ctx.get_input())
    return (yield ctx.call_activity(hand_to_carrier, label))


@app.activity
def reserve_item(item: str) -> str:
    return f"reserved {item}"


_charges: dict[str, int] = {}


@app.activity
def charge_card(order_id: str) -> str:
    """The payment gateway times out twice for every order, then accepts."""
    _charges[order_id] = _charges.get(order_id, 0) + 1
    if _charges[order_id] < 3:
        raise TimeoutError(f"payment gateway timed out (attempt {_charges[order_id]})")
    return f"rcpt-{order_id}"


@app.activity
def print_label(order_id: str) -> str:
    return f"label-{order_id}"


@app.activity
def hand_to_carrier(label: str) -> str:
    return f"TRK-{label.removeprefix('label-')}"


@app.orchestrator
def sleep_long(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Waits an hour on a durable timer: stays Running for the whole test."""
    ctx.set_custom_status("sleeping")
    yield ctx.create_timer(ctx.current_utc_datetime + timedelta(hours=1))
    return "woke up"


@app.orchestrator
def fail_now(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Fails: its only activity raises."""
    yield ctx.call_activity(explode, ctx.get_input())


@app.activity
def explode(what: Any) -> None:
    raise RuntimeError(f"boom: {what}")


@app.entity
def counter(ctx: df.EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
    elif ctx.operation_name == "reset":
        ctx.set_state(0)
    else:
        raise ValueError(f"counter has no operation {ctx.operation_name!r}")


@app.entity
class Cart:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, item: str) -> int:
        self.items.append(item)
        return len(self.items)
