"""The examples' behaviour, precisely, on the virtual clock of ``durafn.testing``.

Waits of days pass in milliseconds; every instant asserted here is exact.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import durafn as df
from durafn.store import open_store
from durafn.testing import VirtualRuntime

START = datetime(2031, 3, 1, 9, 0, tzinfo=UTC)

LoadExample = Callable[[str], ModuleType]


def history(rt: VirtualRuntime, instance_id: str) -> list[Any]:
    status = rt.client.get_status(instance_id, show_history=True, show_history_output=True)
    assert status is not None and status.history is not None
    return status.history


def scheduled(rt: VirtualRuntime, instance_id: str) -> list[str]:
    """Names of the activities the instance scheduled, in order (retries included)."""
    return [e.name for e in history(rt, instance_id) if e.kind == "TaskScheduled"]


def status_of(rt: VirtualRuntime, instance_id: str) -> df.OrchestrationStatus:
    status = rt.client.get_status(instance_id)
    assert status is not None
    return status


# ---------------------------------------------------------------------- process_order

ORDER = {"id": "A-1", "items": ["book"], "total": 25.0, "country": "FR"}


def test_order_is_paid_shipped_and_confirmed_in_that_order(load_example: LoadExample) -> None:
    example = load_example("process_order")
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(example.process_order, ORDER)
        status = rt.run_to_completion(instance_id)

        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.output == {"status": "completed", "order_id": "A-1", "tracking": "TRK-A-1"}
        assert scheduled(rt, instance_id) == [
            "validate_order",
            "process_payment",
            "ship_order",
            "send_confirmation",
        ]


def test_failed_shipment_is_compensated_by_a_refund(load_example: LoadExample) -> None:
    example = load_example("process_order")
    refunded: list[dict[str, Any]] = []

    def refund(payment: dict[str, Any]) -> dict[str, Any]:
        refunded.append(payment)
        return {"id": "R-9", "amount": payment["amount"]}

    with VirtualRuntime(example.app, activities={"refund_payment": refund}, start=START) as rt:
        order = {**ORDER, "id": "B-2", "total": 180.0, "country": "AQ"}
        instance_id = rt.client.start_new("process_order", order)
        status = rt.run_to_completion(instance_id)

        # The orchestration completes (it handled the failure) with the compensation's result.
        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.output == {
            "status": "refunded",
            "order_id": "B-2",
            "refund_id": "R-9",
            "reason": "no carrier ships to AQ",
        }
        assert refunded == [{"id": "pay-B-2", "amount": 180.0}]
        assert scheduled(rt, instance_id) == [
            "validate_order",
            "process_payment",
            "ship_order",
            "refund_payment",
        ]


def test_any_shipping_error_is_compensated(load_example: LoadExample) -> None:
    example = load_example("process_order")

    def carrier_down(order: dict[str, Any]) -> dict[str, Any]:
        raise TimeoutError("carrier API timed out")

    with VirtualRuntime(example.app, activities={"ship_order": carrier_down}) as rt:
        instance_id = rt.client.start_new("process_order", ORDER)
        output = rt.run_to_completion(instance_id).output

        assert output["status"] == "refunded"
        assert output["reason"] == "carrier API timed out"


def test_invalid_order_is_rejected_before_any_payment(load_example: LoadExample) -> None:
    example = load_example("process_order")
    with VirtualRuntime(example.app) as rt:
        instance_id = rt.client.start_new("process_order", {**ORDER, "items": []})
        output = rt.run_to_completion(instance_id).output

        assert output == {"status": "rejected", "order_id": "A-1", "reason": "validation failed"}
        assert scheduled(rt, instance_id) == ["validate_order"]


# ---------------------------------------------------------------------- human_interaction


def test_approval_times_out_after_exactly_the_timer(load_example: LoadExample) -> None:
    example = load_example("human_interaction")
    escalated: list[dict[str, Any]] = []

    def escalate(request: dict[str, Any]) -> str:
        escalated.append(request)
        return "paged"

    with VirtualRuntime(example.app, activities={"escalate": escalate}, start=START) as rt:
        request = {"id": "expense-7", "amount": 300}  # the default timeout: 3 days
        instance_id = rt.client.start_new(example.approval_workflow, request)

        rt.advance(timedelta(days=3) - timedelta(seconds=1))
        assert status_of(rt, instance_id).runtime_status is df.RuntimeStatus.RUNNING
        assert escalated == []

        status = rt.run_to_completion(instance_id)
        assert status.output == {
            "id": "expense-7",
            "status": "escalated",
            "waited_seconds": 3 * 24 * 3600,
        }
        assert status.last_updated_time == START + timedelta(days=3)
        assert escalated == [request]


def test_approval_raised_on_day_two_wins(load_example: LoadExample) -> None:
    example = load_example("human_interaction")
    escalated: list[Any] = []
    with VirtualRuntime(example.app, activities={"escalate": escalated.append}, start=START) as rt:
        instance_id = rt.client.start_new(example.approval_workflow, {"id": "expense-8"})
        rt.advance(timedelta(days=2))
        assert status_of(rt, instance_id).runtime_status is df.RuntimeStatus.RUNNING

        rt.client.raise_event(instance_id, "approval", {"approved": True, "by": "bob"})
        rt.run_until_idle()

        status = status_of(rt, instance_id)
        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.output == {"id": "expense-8", "status": "approved", "by": "bob"}
        assert status.last_updated_time == START + timedelta(days=2)

        # The cancelled timer's deadline passes without any effect.
        rt.advance(timedelta(days=5))
        assert escalated == []
        kinds = [e.kind for e in history(rt, instance_id)]
        assert "TimerCreated" in kinds
        assert "TimerFired" not in kinds


def test_a_rejection_is_recorded(load_example: LoadExample) -> None:
    example = load_example("human_interaction")
    recorded: list[dict[str, Any]] = []
    with VirtualRuntime(example.app, activities={"record_decision": recorded.append}) as rt:
        instance_id = rt.client.start_new(example.approval_workflow, {"id": "expense-9"})
        rt.run_until_idle()
        rt.client.raise_event(instance_id, "approval", {"approved": False, "by": "carol"})
        output = rt.run_to_completion(instance_id).output

        assert output == {"id": "expense-9", "status": "rejected", "by": "carol"}
        assert recorded == [{"request": "expense-9", "approved": False, "by": "carol"}]


def test_an_approval_raised_before_the_wait_is_kept(load_example: LoadExample) -> None:
    example = load_example("human_interaction")
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(example.approval_workflow, {"id": "expense-10"})
        # The orchestrator has not run yet: the event waits in its inbox.
        rt.client.raise_event(instance_id, "approval", {"approved": True, "by": "dave"})
        status = rt.run_to_completion(instance_id)

        assert status.output["status"] == "approved"
        assert status.last_updated_time == START


def test_the_demo_timeout_of_the_script(load_example: LoadExample) -> None:
    example = load_example("human_interaction")
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(
            example.approval_workflow, {"id": "expense-2", "timeout_seconds": 2}
        )
        status = rt.run_to_completion(instance_id)

        assert status.output == {"id": "expense-2", "status": "escalated", "waited_seconds": 2}
        assert status.last_updated_time == START + timedelta(seconds=2)


# ---------------------------------------------------------------------- monitor

HOURLY_FOR_A_DAY = {"interval_seconds": 3600, "expiry_seconds": 24 * 3600}


def test_monitor_polls_until_the_job_is_done(load_example: LoadExample) -> None:
    example = load_example("monitor")  # its fake "render-42" is done on the third poll
    notified: list[str] = []
    with VirtualRuntime(
        example.app, activities={"notify_owner": notified.append}, start=START
    ) as rt:
        instance_id = rt.client.start_new(
            example.monitor_job, {"job_id": "render-42", **HOURLY_FOR_A_DAY}
        )
        rt.run_until_idle()
        assert status_of(rt, instance_id).custom_status == {"checks": 1, "state": "running"}

        rt.advance(timedelta(hours=1))
        assert status_of(rt, instance_id).custom_status == {"checks": 2, "state": "running"}

        status = rt.run_to_completion(instance_id)
        assert status.output == {"job_id": "render-42", "status": "done", "checks": 3}
        assert status.custom_status == {"checks": 3, "state": "done"}
        assert status.last_updated_time == START + timedelta(hours=2)
        assert notified == ["job render-42 is done"]


def test_monitor_gives_up_at_its_expiry(load_example: LoadExample) -> None:
    example = load_example("monitor")
    polls: list[str] = []

    def still_running(job_id: str) -> str:
        polls.append(job_id)
        return "running"

    with VirtualRuntime(example.app, activities={"check_job": still_running}, start=START) as rt:
        instance_id = rt.client.start_new(
            example.monitor_job, {"job_id": "stuck-7", **HOURLY_FOR_A_DAY}
        )
        status = rt.run_to_completion(instance_id)

        # Checks at 0 h, 1 h, ... 24 h; the next one would be past the expiry.
        assert status.output == {"job_id": "stuck-7", "status": "expired", "checks": 25}
        assert len(polls) == 25
        assert status.last_updated_time == START + timedelta(hours=24)
        timers = [e.fire_at for e in history(rt, instance_id) if e.kind == "TimerCreated"]
        assert timers == [START + timedelta(hours=h) for h in range(1, 25)]


# ---------------------------------------------------------------------- eternal_counter


def test_counter_restarts_with_a_fresh_history_for_each_event(load_example: LoadExample) -> None:
    example = load_example("eternal_counter")
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(
            example.counter, {"total": 0, "generation": 0, "limit": 10}, instance_id="counter"
        )
        rt.run_until_idle()
        total = 0
        for generation, amount in enumerate([4, 3, 2], start=1):
            rt.client.raise_event(instance_id, "add", amount)
            rt.run_until_idle()
            total += amount
            status = status_of(rt, instance_id)
            assert status.runtime_status is df.RuntimeStatus.RUNNING
            assert status.input == {"total": total, "generation": generation, "limit": 10}
            events = history(rt, instance_id)
            # Only the new execution's events: it started and waits for the next "add".
            assert [e.kind for e in events].count("ExecutionStarted") == 1
            assert "EventRaised" not in [e.kind for e in events]

        rt.client.raise_event(instance_id, "add", 1)
        status = rt.run_to_completion(instance_id)
        assert status.runtime_status is df.RuntimeStatus.COMPLETED
        assert status.output == {"total": 10, "generation": 4, "limit": 10}
        assert status.custom_status == status.output


def test_counter_carries_unprocessed_events_over(load_example: LoadExample) -> None:
    example = load_example("eternal_counter")
    with VirtualRuntime(example.app) as rt:
        instance_id = rt.client.start_new(
            example.counter, {"total": 0, "generation": 0, "limit": 15}
        )
        # Five events reach the first execution at once; it handles one and passes the rest on.
        for amount in (1, 2, 3, 4, 5):
            rt.client.raise_event(instance_id, "add", amount)
        status = rt.run_to_completion(instance_id)

        assert status.output == {"total": 15, "generation": 5, "limit": 15}


def test_counter_stops_at_its_limit_in_arrival_order(load_example: LoadExample) -> None:
    example = load_example("eternal_counter")
    with VirtualRuntime(example.app) as rt:
        instance_id = rt.client.start_new(
            example.counter, {"total": 0, "generation": 0, "limit": 10}
        )
        for amount in (1, 2, 3, 4, 5):
            rt.client.raise_event(instance_id, "add", amount)
        status = rt.run_to_completion(instance_id)

        # 1 + 2 + 3 + 4 reaches the limit; the fifth event is dropped with the finished instance.
        assert status.output == {"total": 10, "generation": 4, "limit": 10}


# A regression test: the stores used to queue the carried-over events behind events that
# arrived while the restarting episode ran, so a later event overtook earlier ones.
@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_carried_over_events_stay_ahead_of_events_that_arrive_meanwhile(
    load_example: LoadExample, kind: str, tmp_path: Path
) -> None:
    example = load_example("eternal_counter")
    url = (
        f"memory://examples-{uuid.uuid4().hex}"
        if kind == "memory"
        else (f"sqlite:///{tmp_path}/counter.db")
    )
    store = open_store(url)
    try:
        with VirtualRuntime(example.app, store=store) as rt:
            instance_id = rt.client.start_new(
                example.counter, {"total": 0, "generation": 0, "limit": 10}
            )
            rt.run_until_idle()
            for amount in (1, 2, 3, 4):
                rt.client.raise_event(instance_id, "add", amount)

            # Event 5 arrives while the episode that handles event 1 is being committed: it
            # must be handled after 2, 3 and 4, which that episode carries over.
            commit = store.checkpoint
            late_events = [5]

            async def checkpoint_with_a_late_event(item: Any, cp: Any, now: datetime) -> bool:
                while late_events:
                    await rt.client.async_client.raise_event(instance_id, "add", late_events.pop())
                return await commit(item, cp, now)

            store.checkpoint = checkpoint_with_a_late_event  # type: ignore[method-assign]
            status = rt.run_to_completion(instance_id)

            # In arrival order, 1 + 2 + 3 + 4 reach the limit (with the bug: 1, 5, 2, 3 -> 11).
            assert status.output == {"total": 10, "generation": 4, "limit": 10}
    finally:
        asyncio.run(store.close())


# ---------------------------------------------------------------------- retries


def test_a_flaky_activity_is_retried_with_exponential_backoff(load_example: LoadExample) -> None:
    example = load_example("retries")  # its fake rate service fails twice
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(
            example.pay_in_currency, {"currency": "USD", "amount": 50, "card": "4111-1111"}
        )
        status = rt.run_to_completion(instance_id)

        assert status.output == {
            "status": "charged",
            "amount": 46.0,
            "receipt": "receipt-1111-46.00",
        }
        assert example.attempts == {"fetch_rate": 3, "charge_card": 1}
        # Durable timers before the retries: 0.5 s, then 0.5 s * 2.
        timers = [e.fire_at for e in history(rt, instance_id) if e.kind == "TimerCreated"]
        assert timers == [START + timedelta(seconds=0.5), START + timedelta(seconds=1.5)]
        assert status.last_updated_time == START + timedelta(seconds=1.5)


def test_a_declined_card_is_not_retried(load_example: LoadExample) -> None:
    example = load_example("retries")
    example.rate_service["failures_left"] = 0
    with VirtualRuntime(example.app, start=START) as rt:
        instance_id = rt.client.start_new(
            example.pay_in_currency, {"currency": "EUR", "amount": 80, "card": "0000-0000"}
        )
        status = rt.run_to_completion(instance_id)

        assert status.output == {
            "status": "declined",
            "amount": 80.0,
            "reason": "card 0000-0000 declined",
        }
        assert example.attempts["charge_card"] == 1
        assert status.last_updated_time == START  # no backoff timer at all


def test_transient_charge_errors_are_retried_up_to_the_limit(load_example: LoadExample) -> None:
    example = load_example("retries")
    example.rate_service["failures_left"] = 0
    calls: list[dict[str, Any]] = []

    def gateway_down(charge: dict[str, Any]) -> str:
        calls.append(charge)
        raise ConnectionError("payment gateway unreachable")

    with VirtualRuntime(example.app, activities={"charge_card": gateway_down}, start=START) as rt:
        instance_id = rt.client.start_new(
            example.pay_in_currency, {"currency": "EUR", "amount": 10, "card": "4111-1111"}
        )
        status = rt.run_to_completion(instance_id)

        assert status.output["status"] == "declined"
        assert status.output["reason"] == "payment gateway unreachable"
        assert len(calls) == 3  # max_number_of_attempts counts the first attempt
        assert status.last_updated_time == START + timedelta(seconds=1)


def test_is_transient_tells_declines_from_other_errors(load_example: LoadExample) -> None:
    example = load_example("retries")
    declined = df.FailureDetails.from_exception(example.CardDeclinedError("no"))
    assert example.is_transient(declined) is False
    assert example.is_transient(df.FailureDetails.from_exception(ConnectionError())) is True


# ---------------------------------------------------------------------- the others, with the
# ``durafn_runtime`` fixture of the pytest plugin (it needs a ``durafn_app`` fixture)


class TestSubOrchestrations:
    @pytest.fixture
    def durafn_app(self, load_example: LoadExample) -> df.App:
        app: df.App = load_example("sub_orchestrations").app
        return app

    def test_parent_collects_the_outputs_of_its_children(
        self, durafn_runtime: VirtualRuntime
    ) -> None:
        client = durafn_runtime.client
        site = {"name": "nantes", "devices": ["cam-1", "door-2"]}
        instance_id = client.start_new("deploy_site", site, instance_id="site-nantes")
        status = durafn_runtime.run_to_completion(instance_id)

        assert status.output == {
            "site": "nantes",
            "network": "10.6.0.0/24",
            "devices": [
                {"device": "cam-1", "address": "10.6.0.1"},
                {"device": "door-2", "address": "10.6.0.2"},
            ],
        }
        network = client.get_status("site-nantes-network")
        assert network is not None
        assert network.parent_instance_id == "site-nantes"
        assert network.output == "10.6.0.0/24"
        children = [
            e
            for e in history(durafn_runtime, instance_id)
            if e.kind == "SubOrchestrationInstanceCreated"
        ]
        assert [c.name for c in children] == [
            "prepare_network",
            "provision_device",
            "provision_device",
        ]
        for child in children:
            child_status = client.get_status(child.instance_id)
            assert child_status is not None
            assert child_status.runtime_status is df.RuntimeStatus.COMPLETED


def test_a_failing_child_fails_its_parent_with_the_cause(load_example: LoadExample) -> None:
    example = load_example("sub_orchestrations")

    def broken_firmware(device: str) -> str:
        raise RuntimeError(f"{device} did not boot")

    with VirtualRuntime(example.app, activities={"install_firmware": broken_firmware}) as rt:
        instance_id = rt.client.start_new("deploy_site", {"name": "x", "devices": ["cam-1"]})
        status = rt.run_to_completion(instance_id)

        assert status.runtime_status is df.RuntimeStatus.FAILED
        assert status.failure_details is not None
        assert status.failure_details.error_type == "TaskFailedError"
        assert status.failure_details.is_caused_by(RuntimeError)
        assert "cam-1 did not boot" in str(status.failure_details.to_dict())


class TestFanOutFanIn:
    @pytest.fixture
    def durafn_app(self, load_example: LoadExample) -> df.App:
        app: df.App = load_example("fan_out_fan_in").app
        return app

    def test_all_counts_are_scheduled_at_once_then_summed(
        self, durafn_runtime: VirtualRuntime
    ) -> None:
        instance_id = durafn_runtime.client.start_new("word_count")
        status = durafn_runtime.run_to_completion(instance_id)

        assert status.output["total_words"] == 27
        assert status.output["documents"] == 4
        # One episode scheduled every count_words task: they ran in parallel.
        episodes: list[list[str]] = []
        for event in history(durafn_runtime, instance_id):
            if event.kind == "OrchestratorStarted":
                episodes.append([])
            elif event.kind == "TaskScheduled":
                episodes[-1].append(event.name)
        assert [names for names in episodes if names] == [["list_documents"], ["count_words"] * 4]


def test_async_orchestrator_says_hello_in_order(load_example: LoadExample) -> None:
    example = load_example("async_orchestrator")
    with VirtualRuntime(example.app) as rt:
        instance_id = rt.client.start_new("hello_cities_async")
        status = rt.run_to_completion(instance_id)

        assert status.output == [
            "Hello Tokyo!",
            "Hello Seattle!",
            "Hello London!",
            "Hello Lyon!",
            "Hello Oslo!",
        ]


def test_hello_cities(load_example: LoadExample) -> None:
    example = load_example("hello_cities")
    with VirtualRuntime(example.app, activities={"say_hello": lambda city: f"Hi {city}"}) as rt:
        instance_id = rt.client.start_new("hello_cities")
        assert rt.run_to_completion(instance_id).output == ["Hi Tokyo", "Hi Seattle", "Hi London"]


# ---------------------------------------------------------------------- device_monitor


def test_device_goes_offline_exactly_one_timeout_after_its_last_heartbeat(
    load_example: LoadExample,
) -> None:
    example = load_example("device_monitor")
    device = df.EntityId("device", "dev-1")
    with VirtualRuntime(example.app, start=START) as rt:
        rt.client.signal_entity(device, "heartbeat", "b1")
        rt.run_until_idle()
        rt.advance(timedelta(seconds=1))
        rt.client.signal_entity(device, "heartbeat", "b2")
        rt.run_until_idle()
        rt.advance(timedelta(seconds=1))  # b1's check comes, but b2 is newer
        assert rt.client.read_entity_state(device).entity_state["status"] == "online"
        rt.advance(timedelta(seconds=0.5))  # 1.5 s after b2
        state = rt.client.read_entity_state(device).entity_state
        assert state == {"beats": 2, "status": "offline", "last": "b2"}
        alert = rt.run_to_completion("alert-dev-1-b2")
        assert alert.output == "device dev-1 sent no heartbeat for 1.5 s"
        assert alert.created_time == START + timedelta(seconds=2.5)
