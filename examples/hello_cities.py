"""Hello cities: the function-chaining example of Durable Functions, in durafn.

Run it:  python examples/hello_cities.py
"""

import durafn as df

app = df.App()


@app.orchestrator
def hello_cities(ctx: df.OrchestrationContext):
    outputs = []
    outputs.append((yield ctx.call_activity("say_hello", "Tokyo")))
    outputs.append((yield ctx.call_activity(say_hello, "Seattle")))
    outputs.append((yield ctx.call_activity("say_hello", "London")))
    return outputs


@app.activity
def say_hello(city: str) -> str:
    return f"Hello {city}!"


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///hello.db") as rt:
        instance_id = rt.client.start_new("hello_cities")
        status = rt.client.wait_for_completion(instance_id, timeout=30)
        print(status.output)
