"""The durafn app of the bench: trivial activities, so that what is measured is the engine.

Loaded in-process by the durafn runner, and by ``durafn worker`` / ``durafn start`` as a file.
"""

import time

import durafn as df

app = df.App()

# Wall-clock times at which `stamp` ran in this process (workload D reads them, even when the
# chain does not finish before its deadline).
STAMPS: list[float] = []


@app.activity
def noop(value: int) -> int:
    return value


@app.activity
def stamp(index: int) -> int:
    STAMPS.append(time.time())
    return index


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


@app.orchestrator
def chain(ctx: df.OrchestrationContext):
    """A: `n` activities one after another."""
    steps = ctx.get_input()
    for index in range(steps):
        yield ctx.call_activity(noop, index)
    return steps


@app.orchestrator
def stamped_chain(ctx: df.OrchestrationContext):
    """D: a long chain whose activities record when they ran."""
    steps = ctx.get_input()
    for index in range(steps):
        yield ctx.call_activity(stamp, index)
    return steps


@app.orchestrator
def fan_out(ctx: df.OrchestrationContext):
    """C2 and F: `n` activities at once, joined with task_all."""
    count = ctx.get_input()
    results = yield ctx.task_all([ctx.call_activity(noop, index) for index in range(count)])
    return len(results)


@app.orchestrator
def one_activity(ctx: df.OrchestrationContext):
    return (yield ctx.call_activity(noop, ctx.get_input()))


@app.orchestrator
def sub_orchestrations(ctx: df.OrchestrationContext):
    """C1: `n` sub-orchestrations of one activity each, joined with task_all."""
    count = ctx.get_input()
    results = yield ctx.task_all(
        [ctx.call_sub_orchestrator(one_activity, index) for index in range(count)]
    )
    return len(results)


@app.orchestrator
def hello_cities(ctx: df.OrchestrationContext):
    """E: the function-chaining example (examples/hello_cities.py)."""
    outputs = []
    outputs.append((yield ctx.call_activity(say_hello, "Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, "Seattle")))
    outputs.append((yield ctx.call_activity(say_hello, "London")))
    return outputs


@app.entity
def counter(ctx: df.EntityContext) -> None:
    """G: an entity that adds what it is signalled."""
    ctx.set_state(ctx.get_state(lambda: 0) + ctx.get_input())


@app.route("run/{function_name}", methods=["POST"], auth_level=df.AuthLevel.ANONYMOUS)
async def run_and_wait(req: df.HttpRequest, client: df.AsyncClient) -> df.HttpResponse:
    """E over HTTP: start an instance and answer with its output once it completes."""
    instance_id = await client.start_new(req.route_params["function_name"], req.get_json())
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=30_000
    )
