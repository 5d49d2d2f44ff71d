"""The codec (values across the durable boundary) and the stored form of history events."""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import uuid
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pydantic
import pytest

from durafn.core import codec
from durafn.core.errors import PayloadTooLarge
from durafn.core.history import (
    EVENT_TYPES,
    HISTORY_ROW_BYTES,
    ContinueAsNew,
    EntityLockGranted,
    EntityLockRequested,
    EntityOperationCalled,
    EntityOperationCompleted,
    EntityOperationFailed,
    EntityOperationSignaled,
    EntityUnlockSent,
    EventRaised,
    EventSent,
    ExecutionCompleted,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    OrchestratorCompleted,
    OrchestratorStarted,
    SubOrchestrationInstanceCompleted,
    SubOrchestrationInstanceCreated,
    SubOrchestrationInstanceFailed,
    TaskCompleted,
    TaskFailed,
    TaskScheduled,
    TimerCreated,
    TimerFired,
    dump_event,
    dump_events,
    event_from_dict,
    event_to_dict,
    history_rows,
    load_event,
    load_events,
)
from durafn.core.status import FailureDetails, RuntimeStatus


@dataclasses.dataclass
class Line:
    sku: str
    quantity: int


@dataclasses.dataclass
class Order:
    id: str
    lines: list[Line]
    placed: datetime
    total: Decimal
    note: str | None = None


@dataclasses.dataclass(frozen=True)
class Point:
    x: float
    y: float
    label: str = dataclasses.field(default="", init=False)


class Address(pydantic.BaseModel):
    city: str
    zip: str


class Customer(pydantic.BaseModel):
    name: str
    since: datetime
    address: Address
    tags: list[str] = []


def roundtrip(value: Any) -> Any:
    return codec.decode(codec.encode(value))


# ---------------------------------------------------------------------------------- round trips


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        False,
        0,
        -17,
        2**70,
        1.5,
        -0.25,
        "",
        "Grüße, 日本 🌍",
        [],
        {},
        [1, "two", None, [3.0, {"four": [False]}]],
        {"nested": {"list": [1, 2], "empty": {}, "none": None}},
    ],
)
def test_json_values_round_trip(value: Any) -> None:
    text = codec.encode(value)
    assert json.loads(text) == value  # stored as the plain JSON value itself
    decoded = codec.decode(text)
    assert decoded == value
    assert type(decoded) is type(value)


@pytest.mark.parametrize(
    "value",
    [
        datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 1, 2, 3, 4, 5),
        date(2026, 2, 28),
        timedelta(days=2, seconds=5, microseconds=7),
        timedelta(seconds=-90),
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        Decimal("12.50"),
        Decimal("-0.000000000000000000000000001"),
        (1, "a", None),
        (),
        ((1, 2), [3, (4,)]),
    ],
    ids=repr,
)
def test_tagged_types_round_trip(value: Any) -> None:
    decoded = roundtrip(value)
    assert decoded == value
    assert type(decoded) is type(value)
    if isinstance(value, datetime):
        assert decoded.tzinfo == value.tzinfo
    if isinstance(value, Decimal):
        assert str(decoded) == str(value)  # precision and trailing zeros are kept


def test_tagged_values_nest_inside_json_values() -> None:
    value = {
        "when": date(2026, 5, 1),
        "items": [(1, Decimal("2.5")), {"id": uuid.UUID(int=7)}],
    }
    decoded = roundtrip(value)
    assert decoded == value
    assert isinstance(decoded["items"][0], tuple)


def test_stored_form_is_the_documented_tagged_object() -> None:
    assert json.loads(codec.encode(date(2026, 1, 2))) == {"$type": "date", "value": "2026-01-02"}
    assert json.loads(codec.encode(timedelta(hours=1))) == {
        "$type": "timedelta",
        "value": [0, 3600, 0],
    }
    assert json.loads(codec.encode(Decimal("12.50"))) == {"$type": "decimal", "value": "12.50"}
    assert json.loads(codec.encode((1, 2))) == {"$type": "tuple", "value": [1, 2]}


def test_huge_timedelta_keeps_its_microseconds() -> None:
    value = timedelta(days=999_999, microseconds=1)
    assert roundtrip(value) == value


def test_none_is_not_stored() -> None:
    assert codec.encode_optional(None) is None
    assert codec.decode(None) is None
    assert codec.encode(None) == "null"
    assert codec.encode_optional(0) == "0"


def test_unknown_tag_reads_back_as_the_object() -> None:
    assert codec.decode('{"$type": "martian", "value": 1}') == {"$type": "martian", "value": 1}


# ---------------------------------------------------------------------------------- classes


def test_dataclass_round_trips_to_the_same_class() -> None:
    order = Order(
        id="PO-1",
        lines=[Line("apple", 3), Line("pear", 1)],
        placed=datetime(2026, 1, 1, 9, 30, tzinfo=UTC),
        total=Decimal("7.20"),
    )
    stored = json.loads(codec.encode(order))
    assert stored["$type"] == "dataclass"
    assert stored["class"] == f"{__name__}:Order"
    decoded = roundtrip(order)
    assert decoded == order
    assert type(decoded) is Order
    assert all(type(line) is Line for line in decoded.lines)
    assert type(decoded.placed) is datetime
    assert type(decoded.total) is Decimal


def test_frozen_dataclass_with_a_non_init_field() -> None:
    point = Point(1.0, 2.0)
    object.__setattr__(point, "label", "origin-ish")
    decoded = roundtrip(point)
    assert type(decoded) is Point
    assert (decoded.x, decoded.y, decoded.label) == (1.0, 2.0, "origin-ish")


def test_pydantic_model_round_trips_to_the_same_class() -> None:
    customer = Customer(
        name="Ann",
        since=datetime(2020, 5, 17, tzinfo=UTC),
        address=Address(city="Lyon", zip="69001"),
        tags=["vip"],
    )
    stored = json.loads(codec.encode({"customer": customer}))
    assert stored["customer"]["$type"] == "pydantic"
    assert stored["customer"]["class"] == f"{__name__}:Customer"
    decoded = roundtrip({"customer": customer})["customer"]
    assert type(decoded) is Customer
    assert decoded == customer
    assert type(decoded.address) is Address


@pytest.mark.parametrize("tag", ["dataclass", "pydantic"])
def test_class_whose_module_is_not_loaded_reads_back_as_a_dict(tag: str) -> None:
    module = "durafn_tests_never_imported_module"
    assert module not in sys.modules
    text = json.dumps({"$type": tag, "class": f"{module}:Invoice", "value": {"number": 7}})
    assert codec.decode(text) == {"number": 7}
    assert module not in sys.modules


@pytest.mark.parametrize("tag", ["dataclass", "pydantic"])
def test_decoding_never_imports_a_module(tag: str) -> None:
    module = "tabnanny"  # a real, harmless standard-library module that nothing here imports
    if module in sys.modules:
        pytest.skip(f"{module} is already imported")
    text = json.dumps({"$type": tag, "class": f"{module}:NannyNag", "value": {"a": 1}})
    assert codec.decode(text) == {"a": 1}
    assert module not in sys.modules


def test_class_missing_from_a_loaded_module_reads_back_as_a_dict() -> None:
    text = json.dumps({"$type": "dataclass", "class": f"{__name__}:Gone", "value": {"a": 1}})
    assert codec.decode(text) == {"a": 1}


def test_name_that_is_not_a_class_reads_back_as_a_dict() -> None:
    text = json.dumps({"$type": "dataclass", "class": f"{__name__}:roundtrip", "value": {"a": 1}})
    assert codec.decode(text) == {"a": 1}


def test_class_defined_in_a_function_reads_back_as_a_dict() -> None:
    @dataclasses.dataclass
    class Local:
        a: int

    assert roundtrip(Local(1)) == {"a": 1}


# ---------------------------------------------------------------------------------- refusals


class Opaque:
    pass


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({1, 2}, "input of type set cannot cross the durable boundary"),
        ({"a": [1, 2, {3}]}, "input['a'][2] of type set"),
        (frozenset(), "input of type frozenset"),
        (b"raw", "input of type bytes"),
        ({"blob": bytearray(b"x")}, "input['blob'] of type bytearray"),
        (object(), "input of type object"),
        ([Opaque()], "input[0] of type Opaque"),
        (1 + 2j, "input of type complex"),
        ({1: "one"}, "input has a dict key 1 of type int: JSON object keys must be str"),
        ({"ok": {None: 1}}, "input['ok'] has a dict key None of type NoneType"),
        ({("a", "b"): 1}, "input has a dict key ('a', 'b') of type tuple"),
        (math.nan, "input is nan: JSON has no NaN or infinity"),
        ({"a": [0.5, math.inf]}, "input['a'][1] is inf"),
        ((1, -math.inf), "input[1] is -inf"),
        ({"$type": "date", "value": "2026-01-01"}, "input uses the reserved key '$type'"),
        ({"deep": [{"$type": 1}]}, "input['deep'][0] uses the reserved key '$type'"),
        (Line("apple", {1}), "input.<Line>['quantity'] of type set"),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, str) else "",
)
def test_non_serializable_values_name_their_path(value: Any, message: str) -> None:
    with pytest.raises(TypeError) as info:
        codec.encode(value, what="input")
    assert message in str(info.value)


def test_the_default_path_is_value() -> None:
    with pytest.raises(TypeError, match=r"^value\[0\] of type set"):
        codec.encode([set()])


def test_oversized_payload_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_PAYLOAD_BYTES", 50)
    codec.encode("x" * 48)  # 50 bytes with its quotes: at the limit, accepted
    with pytest.raises(PayloadTooLarge):
        codec.encode("x" * 49)
    with pytest.raises(PayloadTooLarge) as info:
        codec.encode({"data": "x" * 100}, what="input of activity 'load'")
    message = str(info.value)
    assert "input of activity 'load' encodes to 111 bytes" in message
    assert "limit of 50" in message
    assert "pass a reference" in message
    assert isinstance(info.value, ValueError)


def test_payload_limit_counts_utf8_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(codec, "MAX_PAYLOAD_BYTES", 20)
    text = "é" * 15  # 17 characters with its quotes, but 32 bytes in UTF-8
    refused = False
    try:
        codec.encode(text)
    except PayloadTooLarge:
        refused = True
    assert refused, f"{len(json.dumps(text, ensure_ascii=False).encode())} bytes were accepted"


# ---------------------------------------------------------------------------------- history events

AT = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
CAUSE = FailureDetails("KeyError", "'sku'", "Traceback...\nKeyError: 'sku'\n")
FAILURE = FailureDetails("TaskFailedError", "activity 'x' failed", "Traceback...\n", inner=CAUSE)

SAMPLES: list[HistoryEvent] = [
    ExecutionStarted(
        timestamp=AT,
        name="main",
        execution_id="e-1",
        input='{"a":1}',
        parent_instance_id="parent",
        parent_execution_id="pe-1",
        parent_task_id=3,
        scheduled_start_time=AT + timedelta(hours=1),
    ),
    ExecutionStarted(timestamp=AT, name="main", execution_id="e-2"),
    ExecutionCompleted(timestamp=AT, status=RuntimeStatus.COMPLETED, result='"ok"'),
    ExecutionCompleted(timestamp=AT, status=RuntimeStatus.FAILED, failure=FAILURE),
    ExecutionTerminated(timestamp=AT, reason="stop"),
    ExecutionSuspended(timestamp=AT, reason="pause"),
    ExecutionResumed(timestamp=AT),
    TaskScheduled(timestamp=AT, event_id=0, name="charge", input="100"),
    TaskCompleted(timestamp=AT, task_scheduled_id=0, result='{"id":"ch_1"}'),
    TaskFailed(timestamp=AT, task_scheduled_id=0, failure=FAILURE),
    SubOrchestrationInstanceCreated(
        timestamp=AT, event_id=1, name="child", instance_id="p:0001", input="[1]"
    ),
    SubOrchestrationInstanceCompleted(timestamp=AT, task_scheduled_id=1, result="null"),
    SubOrchestrationInstanceFailed(timestamp=AT, task_scheduled_id=1, failure=CAUSE),
    TimerCreated(timestamp=AT, event_id=2, fire_at=AT + timedelta(days=1)),
    TimerFired(timestamp=AT, timer_id=2, fire_at=AT + timedelta(days=1)),
    OrchestratorStarted(timestamp=AT),
    OrchestratorCompleted(timestamp=AT),
    EventSent(timestamp=AT, event_id=3, instance_id="other", name="ping", input='"hi"'),
    EventRaised(timestamp=AT, name="approval", input='{"by":"ann"}'),
    EventRaised(timestamp=AT, name="no-data"),
    ContinueAsNew(timestamp=AT, input="5"),
    EntityOperationCalled(
        timestamp=AT,
        event_id=4,
        request_id="r-1",
        instance_id="@counter@a",
        operation="add",
        input="1",
        parent_instance_id="caller",
        parent_execution_id="e-1",
    ),
    EntityOperationSignaled(
        timestamp=AT, event_id=-1, request_id="r-2", instance_id="@counter@a", operation="reset"
    ),
    EntityOperationCompleted(timestamp=AT, task_scheduled_id=4, request_id="r-1", result="1"),
    EntityOperationFailed(timestamp=AT, task_scheduled_id=4, request_id="r-1", failure=CAUSE),
    EntityLockRequested(
        timestamp=AT,
        event_id=5,
        critical_section_id="cs-1",
        lock_set=["@account@a", "@account@b"],
        position=1,
        parent_instance_id="caller",
        parent_execution_id="e-1",
    ),
    EntityLockGranted(timestamp=AT, task_scheduled_id=5, critical_section_id="cs-1"),
    EntityUnlockSent(
        timestamp=AT,
        event_id=6,
        critical_section_id="cs-1",
        instance_id="@account@a",
        parent_instance_id="caller",
    ),
]


def test_every_event_kind_has_a_sample() -> None:
    assert {event.kind for event in SAMPLES} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_history_event_round_trips_through_the_stored_form(event: HistoryEvent) -> None:
    text = dump_event(event)
    loaded = load_event(text)
    assert loaded == event
    assert type(loaded) is type(event)
    assert dump_event(loaded) == text
    data = json.loads(text)
    assert data["kind"] == event.kind
    assert None not in data.values()  # None fields are left out
    assert event_from_dict(event_to_dict(event)) == event


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_the_stored_form_lists_the_fields_in_their_declared_order(event: HistoryEvent) -> None:
    names = [f.name for f in dataclasses.fields(event) if getattr(event, f.name) is not None]
    assert list(event_to_dict(event)) == ["kind", *names]
    for name, value in event_to_dict(event).items():
        assert isinstance(value, str | int | float | bool | dict | list), (name, value)


def test_stored_datetimes_keep_their_time_zone() -> None:
    event = TimerFired(timestamp=AT, timer_id=1, fire_at=datetime(2026, 3, 1, tzinfo=UTC))
    data = event_to_dict(event)
    assert data["fire_at"] == "2026-03-01T00:00:00+00:00"
    assert load_event(dump_event(event)).fire_at.tzinfo is not None


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.kind)
def test_the_stored_form_is_the_text_of_the_plain_dict(event: HistoryEvent) -> None:
    assert dump_event(event) == codec.dumps(event_to_dict(event))


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 3, 1, 12, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC),  # no microseconds: none written
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 12, 30, 5, 7),  # naive
        datetime(2026, 3, 1, 12, 30, 5, 7, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        # An offset with seconds, which orjson would round to the minute.
        datetime(2026, 3, 1, 12, 30, 5, 7, tzinfo=timezone(timedelta(seconds=3723))),
    ],
    ids=str,
)
def test_stored_datetimes_are_written_as_isoformat_writes_them(moment: datetime) -> None:
    event = TimerFired(timestamp=moment, timer_id=1, fire_at=moment)
    assert json.loads(dump_event(event))["fire_at"] == moment.isoformat()
    assert load_event(dump_event(event)) == event


def test_an_event_with_an_int_beyond_64_bits_is_stored_exactly() -> None:
    event = TaskScheduled(timestamp=AT, event_id=2**70, name="big", input=None)
    assert dump_event(event) == codec.dumps(event_to_dict(event))
    assert load_event(dump_event(event)).event_id == 2**70


def test_unknown_event_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown history event kind 'Rewound'"):
        event_from_dict({"kind": "Rewound", "timestamp": AT.isoformat()})


# ---------------------------------------------------------------------------------- failure details


def test_failure_details_capture_the_cause_chain() -> None:
    try:
        try:
            {}["sku"]
        except KeyError as cause:
            raise RuntimeError("lookup failed") from cause
    except RuntimeError as error:
        details = FailureDetails.from_exception(error)
    assert details.error_type == "RuntimeError"
    assert details.message == "lookup failed"
    assert "RuntimeError: lookup failed" in details.stack_trace
    assert details.inner is not None
    assert details.inner.error_type == "KeyError"
    assert details.is_caused_by(KeyError)
    assert details.is_caused_by("RuntimeError")
    assert not details.is_caused_by(ValueError)
    assert FailureDetails.from_dict(details.to_dict()) == details


@pytest.mark.parametrize(
    "value",
    [
        {"a": [1, 2.5, 1e16, -0.0, 5e-324, None, True], "é": 'ünï\u2028\x1f"\\'},
        [2**63 - 1, -(2**63)],
        [2**64, 10**30, -(10**25)],
        {"id": "1234567890123456789012", "n": 1234567890123456789},
    ],
)
def test_the_fast_path_writes_and_reads_what_the_standard_library_does(value: Any) -> None:
    text = codec.encode(value)
    assert text == json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    assert codec.decode(text) == value
    assert codec.loads(text) == value
    decoded, expected = _leaves(codec.decode(text)), _leaves(value)
    assert [type(x) for x in decoded] == [type(y) for y in expected]


def _leaves(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _leaves(item)]
    if isinstance(value, list):
        return [leaf for item in value for leaf in _leaves(item)]
    return [value]


def test_events_appended_together_are_stored_as_one_array_of_their_stored_forms() -> None:
    text = dump_events(SAMPLES)
    assert json.loads(text) == [json.loads(dump_event(event)) for event in SAMPLES]
    assert text == codec.dumps([event_to_dict(event) for event in SAMPLES])
    assert load_events(text) == SAMPLES


def test_one_event_appended_alone_is_stored_as_dump_event_stores_it() -> None:
    event = SAMPLES[0]
    assert dump_events([event]) == dump_event(event)
    assert load_events(dump_event(event)) == [event]


def test_events_with_an_int_beyond_64_bits_are_stored_exactly_together() -> None:
    events = [TaskScheduled(timestamp=AT, event_id=2**70, name="big", input=None), SAMPLES[0]]
    assert dump_events(events) == codec.dumps([event_to_dict(event) for event in events])
    assert load_events(dump_events(events)) == events


def test_a_few_events_appended_together_make_one_history_row() -> None:
    assert history_rows(7, SAMPLES[:3]) == [(7, dump_events(SAMPLES[:3]))]
    assert history_rows(7, []) == []


def test_many_small_events_make_one_row_as_dump_events_writes_it() -> None:
    events = [TaskScheduled(timestamp=AT, event_id=n, name="act", input=str(n)) for n in range(100)]
    assert history_rows(0, events) == [(0, dump_events(events))]


def test_many_large_events_make_rows_of_about_a_mebibyte_keyed_by_their_first() -> None:
    payload = '"' + "x" * 300_000 + '"'
    events = [TaskScheduled(timestamp=AT, event_id=n, name="act", input=payload) for n in range(20)]
    rows = history_rows(5, events)
    assert len(rows) > 1
    assert all(len(text) <= HISTORY_ROW_BYTES + 301_000 for _, text in rows)
    loaded = [load_events(text) for _, text in rows]
    assert [event for chunk in loaded for event in chunk] == events
    starts = [5 + sum(len(chunk) for chunk in loaded[:k]) for k in range(len(rows))]
    assert [sequence for sequence, _ in rows] == starts
