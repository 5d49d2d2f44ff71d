"""The app of the entity end-to-end tests: a counter fed by orchestrations and clients, and
accounts moved between inside critical sections."""

from __future__ import annotations

from typing import Any

import durafn as df

app = df.App()

CALLS_PER_ORCHESTRATION = 20
COUNTER = df.EntityId("counter", "shared")


@app.entity
def counter(ctx: df.EntityContext) -> None:
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
    elif ctx.operation_name == "get":
        ctx.set_result(value)
    elif ctx.operation_name == "reset":
        ctx.set_state(0)
    elif ctx.operation_name == "delete":
        ctx.delete_state()
    elif ctx.operation_name == "set_unencodable":
        ctx.set_state({"tags": {"a", "b"}})
    else:
        raise ValueError(f"counter has no operation {ctx.operation_name!r}")


@app.orchestrator
def add_many(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Calls add 1 on the counter CALLS_PER_ORCHESTRATION times, one call at a time."""
    for _ in range(CALLS_PER_ORCHESTRATION):
        yield ctx.call_entity(COUNTER, "add", 1)
    return CALLS_PER_ORCHESTRATION


@app.entity
class Account:
    def __init__(self) -> None:
        self.balance = 0

    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    def withdraw(self, amount: int) -> int:
        if amount > self.balance:
            raise ValueError(f"insufficient funds: {self.balance} < {amount}")
        self.balance -= amount
        return self.balance

    def get(self) -> int:
        return self.balance


@app.orchestrator
def transfer(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Moves ``amount`` between two accounts inside a critical section, if the source has it."""
    order: dict[str, Any] = ctx.get_input()
    source = df.EntityId("account", order["from"])
    target = df.EntityId("account", order["to"])
    with (yield ctx.lock(source, target)):
        balance = yield ctx.call_entity(source, "get")
        if balance < order["amount"]:
            return False
        yield ctx.call_entity(source, "withdraw", order["amount"])
        yield ctx.call_entity(target, "deposit", order["amount"])
    return True


@app.orchestrator
async def transfer_async(ctx: df.OrchestrationContext) -> bool:
    """``transfer`` as an async orchestrator."""
    order: dict[str, Any] = ctx.get_input()
    source = df.EntityId("account", order["from"])
    target = df.EntityId("account", order["to"])
    async with ctx.lock(source, target):
        balance = await ctx.call_entity(source, "get")
        if balance < order["amount"]:
            return False
        await ctx.call_entity(source, "withdraw", order["amount"])
        await ctx.call_entity(target, "deposit", order["amount"])
    return True


@app.orchestrator
def call_counter(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Calls one operation of an entity and returns its result or its error message."""
    request: dict[str, Any] = ctx.get_input()
    entity = df.EntityId(request["name"], request.get("key", "k"))
    try:
        return (yield ctx.call_entity(entity, request["operation"], request.get("input")))
    except df.TaskFailedError as exc:
        return {"error": exc.failure_details.error_type, "message": exc.failure_details.message}


@app.orchestrator
def hold_lock(ctx: df.OrchestrationContext):  # type: ignore[no-untyped-def]
    """Locks the counter and waits for an event: terminate it to see the lock released."""
    with (yield ctx.lock(COUNTER)):
        yield ctx.wait_for_external_event("go")
        yield ctx.call_entity(COUNTER, "add", 100)
    return "released"
