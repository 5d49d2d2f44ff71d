"""Bank transfer: move money between two account entities inside a critical section.

`ctx.lock(source, target)` locks both accounts for the orchestration: until the block ends,
they serve only its calls, so no other transfer can read or change them in between, and the
balance check and both updates happen as one step. The locks are taken in a fixed order, so two
transfers in opposite directions cannot deadlock, and they are released when the block exits
(or whenever the orchestration ends).

Accounts are a class entity: its public methods are the operations, its attributes the state.

Run it:  python examples/bank_transfer.py
"""

import durafn as df

app = df.App()


@app.entity
class Account:
    def __init__(self):
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
def transfer(ctx: df.OrchestrationContext):
    order = ctx.get_input()
    source = df.EntityId("account", order["from"])
    target = df.EntityId("account", order["to"])
    with (yield ctx.lock(source, target)):
        balance = yield ctx.call_entity(source, "get")
        if balance < order["amount"]:
            return f"refused: {order['from']} cannot pay {order['amount']}"
        yield ctx.call_entity(source, "withdraw", order["amount"])
        yield ctx.call_entity(target, "deposit", order["amount"])
    return f"moved {order['amount']} from {order['from']} to {order['to']}"


OPENING = {"alice": 100, "bob": 50}
ORDERS = [
    {"from": "alice", "to": "bob", "amount": 30},
    {"from": "bob", "to": "alice", "amount": 10},
    {"from": "alice", "to": "bob", "amount": 500},
]

if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///bank_transfer.db") as rt:
        for name, amount in OPENING.items():
            account = df.EntityId("account", name)
            rt.client.signal_entity(account, "delete")  # start afresh on every run
            rt.client.signal_entity(account, "deposit", amount)
        # The three transfers run at the same time.
        ids = [
            rt.client.start_new(transfer, order, instance_id=f"transfer-{n}")
            for n, order in enumerate(ORDERS, start=1)
        ]
        for instance_id in ids:
            status = rt.client.wait_for_completion(instance_id, timeout=30)
            print(f"{instance_id}: {status.output}")
        balances = {
            name: rt.client.read_entity_state(df.EntityId("account", name)).entity_state
            for name in OPENING
        }
        total = sum(b["balance"] for b in balances.values())
        print(", ".join(f"{n}: {b['balance']}" for n, b in balances.items()) + f"; total {total}")
