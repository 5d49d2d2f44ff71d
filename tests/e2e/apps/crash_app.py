"""The app of the crash-safety test: a 10-step orchestration mixing activities, a timer and a
sub-orchestration. Every activity execution is logged (one line, appended atomically) to the
file named by $CRASH_LOG, so the test can count executions per step."""

from __future__ import annotations

import os
from datetime import timedelta

import durafn as df

app = df.App()


def _log(step: str, key: object) -> None:
    path = os.environ.get("CRASH_LOG")
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{step}:{key}\n".encode())
        finally:
            os.close(fd)


@app.activity
def add(args: list[int]) -> int:
    _log("add", args)
    return args[0] + args[1]


@app.activity
async def multiply(args: list[int]) -> int:
    _log("multiply", args)
    return args[0] * args[1]


@app.activity
def square(n: int) -> int:
    _log("square", n)
    return n * n


@app.orchestrator
def crash_child(ctx: df.OrchestrationContext):
    n = ctx.get_input()
    a = yield ctx.call_activity(add, [n, 100])
    b = yield ctx.call_activity(multiply, [a, 2])
    return b


@app.orchestrator
def crash_flow(ctx: df.OrchestrationContext):
    n = ctx.get_input()
    x = yield ctx.call_activity(add, [n, 1])  # 1
    x = yield ctx.call_activity(multiply, [x, 3])  # 2
    yield ctx.create_timer(timedelta(milliseconds=50))  # 3
    child = yield ctx.call_sub_orchestrator(crash_child, x)  # 4 (two activities inside)
    squares = yield ctx.task_all([ctx.call_activity(square, i) for i in (n, n + 1, n + 2)])  # 5-7
    x = yield ctx.call_activity(add, [child, sum(squares)])  # 8
    x = yield ctx.call_activity(multiply, [x, 5])  # 9
    x = yield ctx.call_activity(add, [x, 7])  # 10
    return x


def expected_output(n: int) -> int:
    x = (n + 1) * 3
    child = (x + 100) * 2
    squares = n * n + (n + 1) ** 2 + (n + 2) ** 2
    return (child + squares) * 5 + 7


# Activity executions one instance needs when nothing crashes.
ACTIVITIES_PER_INSTANCE = 10
