"""The Restate handlers of the bench, served by hypercorn over HTTP/2 cleartext.

Each ``ctx.run_typed`` is a journaled step, the nearest thing to a durafn activity; a call to
another handler (``ctx.service_call``) is the nearest thing to a sub-orchestration.
"""

from __future__ import annotations

import time
from typing import Any

import restate
from restate import Context, RunOptions

bench = restate.Service("bench")


def noop(value: int) -> int:
    return value


def stamp(path: str) -> None:
    """Record when this step ran (D reads the file, even when the chain did not finish)."""
    with open(path, "a") as stamps:
        stamps.write(f"{time.time()}\n")


def say_hello(city: str) -> str:
    return f"Hello {city}!"


@bench.handler()
async def chain(ctx: Context, steps: int) -> int:
    for index in range(steps):
        await ctx.run_typed("noop", noop, RunOptions(), index)
    return steps


@bench.handler()
async def stamped_chain(ctx: Context, request: dict[str, Any]) -> int:
    """D: a long chain whose steps record when they ran, in the file the request names."""
    for _ in range(request["steps"]):
        await ctx.run_typed("stamp", stamp, RunOptions(), request["stamps_file"])
    return request["steps"]


@bench.handler()
async def one_step(ctx: Context, value: int) -> int:
    return await ctx.run_typed("noop", noop, RunOptions(), value)


@bench.handler()
async def sub_calls(ctx: Context, count: int) -> int:
    calls = [ctx.service_call(one_step, arg=index) for index in range(count)]
    await restate.gather(*calls)
    return len([await call for call in calls])


@bench.handler()
async def fan_out(ctx: Context, count: int) -> int:
    runs = [ctx.run_typed("noop", noop, RunOptions(), index) for index in range(count)]
    await restate.gather(*runs)
    return len([await run for run in runs])


@bench.handler()
async def hello_cities(ctx: Context) -> list[str]:
    return [
        await ctx.run_typed("say_hello", say_hello, RunOptions(), "Tokyo"),
        await ctx.run_typed("say_hello", say_hello, RunOptions(), "Seattle"),
        await ctx.run_typed("say_hello", say_hello, RunOptions(), "London"),
    ]


app = restate.app(services=[bench])
