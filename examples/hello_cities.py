"""Hello cities: the function-chaining example of Durable Functions, in durafn.

Run it:    python examples/hello_cities.py
Serve it:  durafn start examples/hello_cities.py
           curl -X POST http://localhost:7071/api/orchestrators/hello_cities
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


@app.route("orchestrators/{function_name}", methods=["POST"])
async def http_start(req: df.HttpRequest, client: df.AsyncClient) -> df.HttpResponse:
    instance_id = await client.start_new(req.route_params["function_name"], req.get_json())
    return client.create_check_status_response(req, instance_id)


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///hello.db") as rt:
        instance_id = rt.client.start_new("hello_cities")
        status = rt.client.wait_for_completion(instance_id, timeout=30)
        print(status.output)
