"""Fan-out/fan-in: run many activities in parallel, then aggregate their results.

The orchestrator lists the documents to analyse, schedules one `count_words` activity per
document at once (fan-out), waits for all of them with `ctx.task_all` (fan-in) and sums up.

Run it:  python examples/fan_out_fan_in.py
"""

import durafn as df

app = df.App()

# Stands in for a document store that the activities would read from.
LIBRARY = {
    "intro.txt": "durable functions keep state between steps",
    "chaining.txt": "call one activity after another",
    "fan-out.txt": "start many activities and wait for all of them to finish",
    "timers.txt": "a durable timer survives restarts",
}


@app.orchestrator
def word_count(ctx: df.OrchestrationContext):
    documents = yield ctx.call_activity("list_documents")

    # Fan out: creating the tasks schedules them all; nothing waits yet.
    tasks = [ctx.call_activity(count_words, name) for name in documents]

    # Fan in: one yield waits for every task; results come back in the order of `tasks`.
    counts = yield ctx.task_all(tasks)

    return {
        "documents": len(documents),
        "total_words": sum(counts),
        "per_document": dict(zip(documents, counts, strict=True)),
    }


@app.activity
def list_documents() -> list[str]:
    return sorted(LIBRARY)


@app.activity
def count_words(name: str) -> int:
    return len(LIBRARY[name].split())


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///fan_out_fan_in.db") as rt:
        instance_id = rt.client.start_new("word_count")
        result = rt.client.wait_for_completion(instance_id, timeout=30).output
        for name, count in result["per_document"].items():
            print(f"{name}: {count} words")
        print(f"total: {result['total_words']} words in {result['documents']} documents")
