"""Monitor: poll an external job on a durable timer until it is done or the monitor expires.

Each round calls the `check_job` activity, publishes its progress with `ctx.set_custom_status`
(clients see it in the instance status), and sleeps on a durable timer until the next round.
Unlike a cron job, the interval and the expiry belong to each instance.

Run it:  python examples/monitor.py
"""

from collections import Counter
from datetime import timedelta

import durafn as df

app = df.App()


@app.orchestrator
def monitor_job(ctx: df.OrchestrationContext):
    job = ctx.get_input()
    interval = timedelta(seconds=job["interval_seconds"])
    expiry = ctx.current_utc_datetime + timedelta(seconds=job["expiry_seconds"])

    checks = 0
    while True:
        checks += 1
        state = yield ctx.call_activity("check_job", job["job_id"])
        ctx.set_custom_status({"checks": checks, "state": state})
        if state == "done":
            yield ctx.call_activity(notify_owner, f"job {job['job_id']} is done")
            return {"job_id": job["job_id"], "status": "done", "checks": checks}

        next_check = ctx.current_utc_datetime + interval
        if next_check > expiry:
            return {"job_id": job["job_id"], "status": "expired", "checks": checks}
        yield ctx.create_timer(next_check)


# A stand-in for the external system being watched: how many polls each job needs before it
# reports "done" (None: it never finishes). A real `check_job` would call that system's API.
POLLS_UNTIL_DONE = {"render-42": 3, "stuck-7": None}
_polls: Counter[str] = Counter()


@app.activity
def check_job(job_id: str) -> str:
    _polls[job_id] += 1
    needed = POLLS_UNTIL_DONE[job_id]
    return "done" if needed is not None and _polls[job_id] >= needed else "running"


@app.activity
def notify_owner(message: str) -> None:
    """Would send `message` to the job's owner."""


if __name__ == "__main__":
    with df.Runtime(app, store="sqlite:///monitor.db") as rt:
        # Poll every 0.25 s and give up after 1 s, so that the demo ends quickly.
        jobs = [
            {"job_id": "render-42", "interval_seconds": 0.25, "expiry_seconds": 1},
            {"job_id": "stuck-7", "interval_seconds": 0.25, "expiry_seconds": 1},
        ]
        ids = [rt.client.start_new(monitor_job, job, instance_id=job["job_id"]) for job in jobs]
        for instance_id in ids:
            status = rt.client.wait_for_completion(instance_id, timeout=30)
            result = status.output
            print(
                f"{result['job_id']}: {result['status']} after {result['checks']} checks "
                f"(custom status: {status.custom_status})"
            )
