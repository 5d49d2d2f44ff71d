"""Hello cities again, with an `async def` orchestrator that `await`s its tasks.

`await task` is the same as `yield task` in a generator orchestrator: the runtime records the
step, and on replay the awaited result comes from the history. Await only durafn tasks (no
`asyncio.sleep`, no `asyncio.gather`: use `ctx.create_timer` and `ctx.task_all`). Activities
may be `async def` too; they run on the worker's event loop.

Run it:  python examples/async_orchestrator.py
"""

import durafn as df

app = df.App()


@app.orchestrator
async def hello_cities_async(ctx: df.OrchestrationContext):
    outputs = []
    outputs.append(await ctx.call_activity("say_hello", "Tokyo"))
    outputs.append(await ctx.call_activity(say_hello, "Seattle"))
    outputs.append(await ctx.call_activity("say_hello", "London"))

    # Awaiting ctx.task_all runs several activities in parallel.
    outputs.extend(await ctx.task_all([ctx.call_activity(say_hello, c) for c in ("Lyon", "Oslo")]))
    return outputs


@app.activity
async def say_hello(city: str) -> str:
    return f"Hello {city}!"


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///async_orchestrator.db") as rt:
        instance_id = rt.client.start_new(hello_cities_async)
        status = rt.client.wait_for_completion(instance_id, timeout=30)
        print(status.output)
