"""Durable retries: retry a flaky activity with backoff, but never retry a permanent error.

`fetch_rate` fails twice with a transient error before it succeeds; `df.RetryOptions` retries it
with exponential backoff. The waits between attempts are durable timers: a crash during a
backoff does not lose the retry. `charge_card` fails for good when a card is declined; its retry
options pass `handle=`, which refuses to retry that error, so the orchestrator sees it at once.

Run it:  python examples/retries.py
"""

from collections import Counter
from datetime import timedelta

import durafn as df

app = df.App()


class CardDeclinedError(Exception):
    """A permanent failure: trying again gives the same answer."""


def is_transient(failure: df.FailureDetails) -> bool:
    # `handle` runs inside the orchestrator, so it must be deterministic: decide from the
    # failure details only.
    return not failure.is_caused_by(CardDeclinedError)


TRANSIENT_ERRORS = df.RetryOptions(
    first_retry_interval=timedelta(seconds=0.5),
    backoff_coefficient=2.0,  # waits 0.5 s, then 1 s, then 2 s ...
    max_number_of_attempts=5,
)
ALL_BUT_DECLINED = df.RetryOptions(
    first_retry_interval=timedelta(seconds=0.5),
    max_number_of_attempts=3,
    handle=is_transient,
)


@app.orchestrator
def pay_in_currency(ctx: df.OrchestrationContext):
    payment = ctx.get_input()
    rate = yield ctx.call_activity(fetch_rate, payment["currency"], retry=TRANSIENT_ERRORS)
    amount = round(payment["amount"] * rate, 2)
    try:
        receipt = yield ctx.call_activity(
            "charge_card", {"card": payment["card"], "amount": amount}, retry=ALL_BUT_DECLINED
        )
    except df.TaskFailedError as error:
        return {"status": "declined", "amount": amount, "reason": error.failure_details.message}
    return {"status": "charged", "amount": amount, "receipt": receipt}


# Module-level state, for the demo only: `attempts` counts how often each activity really ran
# in this process, and `rate_service` simulates a flaky remote service whose first two calls
# fail. Real activities keep no such state; they would call the remote service.
attempts: Counter[str] = Counter()
rate_service = {"failures_left": 2}
RATES = {"EUR": 1.0, "USD": 0.92, "JPY": 0.0061}


@app.activity
def fetch_rate(currency: str) -> float:
    attempts["fetch_rate"] += 1
    if rate_service["failures_left"] > 0:
        rate_service["failures_left"] -= 1
        raise ConnectionError(f"rate service unavailable (call {attempts['fetch_rate']})")
    return RATES[currency]


@app.activity
def charge_card(charge: dict) -> str:
    attempts["charge_card"] += 1
    if charge["card"].startswith("0000"):
        raise CardDeclinedError(f"card {charge['card']} declined")
    return f"receipt-{charge['card'][-4:]}-{charge['amount']:.2f}"


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///retries.db") as rt:
        good = rt.client.start_new(
            pay_in_currency,
            {"currency": "USD", "amount": 50, "card": "4111-1111"},
            instance_id="payment-good",
        )
        result = rt.client.wait_for_completion(good, timeout=30).output
        print(f"payment-good: {result['status']} {result['amount']:.2f} EUR, {result['receipt']}")
        print(f"  fetch_rate ran {attempts['fetch_rate']} times (2 failures, then success)")

        attempts.clear()
        declined = rt.client.start_new(
            pay_in_currency,
            {"currency": "EUR", "amount": 80, "card": "0000-0000"},
            instance_id="payment-declined",
        )
        result = rt.client.wait_for_completion(declined, timeout=30).output
        print(f"payment-declined: {result['status']}: {result['reason']}")
        print(f"  charge_card ran {attempts['charge_card']} time (a declined card is not retried)")
