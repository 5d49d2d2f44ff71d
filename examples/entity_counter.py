"""Aggregator: many orchestrations feed one counter entity, which applies their updates one at a
time, so none is lost to a race.

An entity is a small piece of durable state addressed by a name and a key. Here
`counter/words` adds up the words of every document the `count_document` orchestrations read.
Its operations run one after another in arrival order, each exactly once, and many queued
operations are applied in one commit.

Run it:  python examples/entity_counter.py
"""

import durafn as df

app = df.App()

WORDS = df.EntityId("counter", "words")


@app.entity
def counter(ctx: df.EntityContext):
    value = ctx.get_state(lambda: 0)
    if ctx.operation_name == "add":
        ctx.set_state(value + ctx.get_input())
    elif ctx.operation_name == "get":
        ctx.set_result(value)
    elif ctx.operation_name == "reset":
        ctx.set_state(0)
    elif ctx.operation_name == "delete":
        ctx.delete_state()


@app.orchestrator
def count_document(ctx: df.OrchestrationContext):
    words = yield ctx.call_activity(count_words, ctx.get_input())
    # A two-way call: the orchestration goes on once the counter has applied it.
    # ctx.signal_entity(WORDS, "add", words) would send it one way, without waiting.
    yield ctx.call_entity(WORDS, "add", words)
    return words


@app.activity
def count_words(text: str) -> int:
    return len(text.split())


DOCUMENTS = {
    "intro": "durable functions for python",
    "chaining": "call activities one after another",
    "fan-out": "start many activities at once and wait for all of them to finish",
    "timers": "sleep for a month at no cost",
}

if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///entity_counter.db") as rt:
        rt.client.signal_entity(WORDS, "reset")  # applied before the additions that follow
        ids = [
            rt.client.start_new(count_document, text, instance_id=f"count-{name}")
            for name, text in DOCUMENTS.items()
        ]
        for instance_id in ids:
            rt.client.wait_for_completion(instance_id, timeout=30)
        state = rt.client.read_entity_state(WORDS)
        print(f"{len(ids)} orchestrations added to counter/words: {state.entity_state} words")
        [entity] = rt.client.get_entities(name="counter").entities
        name, key = entity.entity_id.name, entity.entity_id.key
        print(f"entity {name}/{key} exists: {state.entity_exists}")
