"""Order processing: function chaining with compensation, as in Azure Durable Functions.

validate -> process the payment -> ship -> send a confirmation. When shipping fails after the
customer was charged, the orchestrator catches the failure and runs a compensating activity
(a refund), then returns a "refunded" result instead of failing.

Run it:  python examples/process_order.py
"""

import durafn as df

app = df.App()

SHIPPING_COUNTRIES = {"FR", "JP", "US"}


@app.orchestrator
def process_order(ctx: df.OrchestrationContext):
    order = ctx.get_input()

    # An activity can be named by its function object or by its registered name.
    valid = yield ctx.call_activity(validate_order, order)
    if not valid:
        return {"status": "rejected", "order_id": order["id"], "reason": "validation failed"}

    # Activities run at least once, so the payment carries a key that lets the gateway spot a
    # repeated charge. ctx.new_uuid() gives the same UUID on every replay; uuid.uuid4() would not.
    payment = yield ctx.call_activity(
        "process_payment", {"order": order, "idempotency_key": str(ctx.new_uuid())}
    )
    try:
        shipment = yield ctx.call_activity(ship_order, order)
    except df.TaskFailedError as error:
        # The failure of an activity is raised at its `yield`. The payment already went
        # through, so undo it: compensation is just more durable steps.
        refund = yield ctx.call_activity("refund_payment", payment)
        return {
            "status": "refunded",
            "order_id": order["id"],
            "refund_id": refund["id"],
            "reason": error.failure_details.message,
        }

    yield ctx.call_activity(
        "send_confirmation", {"order_id": order["id"], "tracking": shipment["tracking"]}
    )
    return {"status": "completed", "order_id": order["id"], "tracking": shipment["tracking"]}


# Activities do the real work (payment gateway, carrier API, mail). Here they are simulated, and
# their results are derived from the order so that every run prints the same thing.


@app.activity
def validate_order(order: dict) -> bool:
    return bool(order["items"]) and order["total"] > 0


@app.activity
def process_payment(request: dict) -> dict:
    order = request["order"]
    return {"id": f"pay-{order['id']}", "amount": order["total"]}


@app.activity
def ship_order(order: dict) -> dict:
    if order["country"] not in SHIPPING_COUNTRIES:
        raise ValueError(f"no carrier ships to {order['country']}")
    return {"tracking": f"TRK-{order['id']}"}


@app.activity
def refund_payment(payment: dict) -> dict:
    return {"id": f"refund-{payment['id']}", "amount": payment["amount"]}


@app.activity
def send_confirmation(message: dict) -> str:
    return f"order {message['order_id']} shipped, tracking {message['tracking']}"


if __name__ == "__main__":
    orders = [
        {"id": "A-100", "items": ["book"], "total": 25.0, "country": "FR"},
        {"id": "B-200", "items": ["tent"], "total": 180.0, "country": "AQ"},  # Antarctica
    ]
    with df.Runtime(app, store="sqlite:///process_order.db") as rt:
        ids = [
            rt.client.start_new(process_order, order, instance_id=f"order-{order['id']}")
            for order in orders
        ]
        for instance_id in ids:
            result = rt.client.wait_for_completion(instance_id, timeout=30).output
            if result["status"] == "completed":
                print(f"order {result['order_id']}: completed, tracking {result['tracking']}")
            else:
                print(
                    f"order {result['order_id']}: {result['status']} ({result['refund_id']}), "
                    f"because: {result['reason']}"
                )
