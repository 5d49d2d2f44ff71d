"""The threads behind the SQLite writer and the activities (durafn.core.threads)."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from durafn.core.threads import Latch, Threads


def _names() -> set[str]:
    return {t.name for t in threading.enumerate()}


def test_no_thread_starts_before_a_call_needs_one() -> None:
    threads = Threads(4, "unit-lazy")
    assert not any(name.startswith("unit-lazy") for name in _names())
    ran = threading.Event()
    threads.submit(ran.set)
    assert ran.wait(5)
    threads.shutdown(wait=True)


def test_calls_run_on_at_most_size_threads_and_all_run() -> None:
    threads = Threads(3, "unit-bounded")
    gate = threading.Event()
    lock = threading.Lock()
    running = 0
    most = 0
    seen: set[str] = set()
    done: list[int] = []

    def call(n: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            seen.add(threading.current_thread().name)
        gate.wait(5)
        with lock:
            running -= 1
            done.append(n)

    for n in range(10):
        threads.submit(lambda n=n: call(n))
    gate.set()
    threads.shutdown(wait=True)
    assert sorted(done) == list(range(10))
    assert most == 3
    assert seen == {"unit-bounded-0", "unit-bounded-1", "unit-bounded-2"}


def test_a_free_thread_is_reused_rather_than_a_new_one_started() -> None:
    threads = Threads(8, "unit-reuse")
    for _ in range(20):
        ran = threading.Event()
        threads.submit(ran.set)
        assert ran.wait(5)
        # Once the call has returned, its thread counts itself free: wait until it does.
        for _ in range(500):
            if threads._idle:
                break
            threading.Event().wait(0.001)
    threads.shutdown(wait=True)
    assert len(threads._threads) == 1


def test_a_cancelled_job_never_runs() -> None:
    threads = Threads(1, "unit-cancel")
    gate = threading.Event()
    ran: list[str] = []
    threads.submit(lambda: gate.wait(5))
    job = threads.submit(lambda: ran.append("cancelled one"))
    threads.submit(lambda: ran.append("next one"))
    job.cancel()
    gate.set()
    threads.shutdown(wait=True)
    assert ran == ["next one"]


def test_a_failing_call_is_logged_and_the_thread_serves_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    threads = Threads(1, "unit-failing")

    def fail() -> None:
        raise ValueError("boom")

    ran = threading.Event()
    with caplog.at_level(logging.ERROR, logger="durafn"):
        threads.submit(fail)
        threads.submit(ran.set)
        assert ran.wait(5)
        threads.shutdown(wait=True)
    assert "a call on the unit-failing threads failed" in caplog.text
    assert "ValueError: boom" in caplog.text


def test_shutdown_runs_what_was_queued_then_refuses_calls() -> None:
    threads = Threads(1, "unit-drain")
    gate = threading.Event()
    ran: list[int] = []
    threads.submit(lambda: gate.wait(5))
    for n in range(5):
        threads.submit(lambda n=n: ran.append(n))
    threads.shutdown()
    with pytest.raises(RuntimeError, match="unit-drain threads have shut down"):
        threads.submit(lambda: ran.append(99))
    gate.set()
    threads.shutdown(wait=True)  # a second shutdown only waits
    assert ran == [0, 1, 2, 3, 4]
    assert not any(t.is_alive() for t in threads._threads)


def test_shutdown_with_cancel_pending_drops_what_has_not_started() -> None:
    threads = Threads(1, "unit-cancel-pending")
    started = threading.Event()
    gate = threading.Event()
    ran: list[str] = []

    def first() -> None:
        started.set()
        gate.wait(5)
        ran.append("running one")

    threads.submit(first)
    assert started.wait(5)
    threads.submit(lambda: ran.append("queued one"))
    threads.shutdown()  # an earlier plain shutdown: the cancelling one still drops the queue
    threads.shutdown(cancel_pending=True)
    gate.set()
    threads.shutdown(wait=True)
    assert ran == ["running one"]
    assert not any(t.is_alive() for t in threads._threads)


def test_run_hands_the_value_or_the_exception_back_to_the_loop() -> None:
    threads = Threads(2, "unit-run")

    def fail() -> int:
        raise KeyError("missing")

    async def main() -> tuple[str, str]:
        value = await threads.run(lambda: threading.current_thread().name)
        with pytest.raises(KeyError, match="missing"):
            await threads.run(fail)
        return value, threading.current_thread().name

    on_thread, on_loop = asyncio.run(main())
    threads.shutdown(wait=True)
    assert on_thread.startswith("unit-run-")
    assert on_loop != on_thread


def test_run_whose_caller_stopped_waiting_settles_nothing() -> None:
    threads = Threads(1, "unit-run-cancelled")
    gate = threading.Event()
    errors: list[dict[str, object]] = []

    async def main() -> bool:
        asyncio.get_running_loop().set_exception_handler(lambda _, context: errors.append(context))
        future = threads.run(lambda: gate.wait(5))
        future.cancel()
        gate.set()
        # One thread runs calls in order: once this one is back, so is the cancelled one's.
        await threads.run(lambda: None)
        await asyncio.sleep(0)
        return future.cancelled()

    assert asyncio.run(main())
    threads.shutdown(wait=True)
    assert errors == []


def test_run_dropped_by_a_cancelling_shutdown_is_cancelled_for_its_caller() -> None:
    threads = Threads(1, "unit-run-dropped")
    gate = threading.Event()

    async def main() -> None:
        busy = threads.run(lambda: gate.wait(5))
        dropped = threads.run(lambda: "never")
        threads.shutdown(cancel_pending=True)
        gate.set()
        assert await busy is True
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(dropped, 5)

    asyncio.run(main())
    threads.shutdown(wait=True)


def test_a_thread_that_cannot_start_fails_the_submit_and_its_call_never_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    threads = Threads(1, "unit-no-start")
    ran: list[str] = []

    def refuse(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    with monkeypatch.context() as patched:
        patched.setattr(threading.Thread, "start", refuse)
        with pytest.raises(RuntimeError, match="can't start new thread"):
            threads.submit(lambda: ran.append("refused"))
    # The slot was not used up: the next call starts a thread, and the refused call stays off.
    done = threading.Event()
    threads.submit(done.set)
    assert done.wait(5)
    threads.shutdown(wait=True)
    assert ran == []
    assert len(threads._threads) == 1


def test_a_set_of_threads_needs_one() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        Threads(0, "none")


def test_has_waiting_tells_whether_calls_wait_for_a_free_thread() -> None:
    threads = Threads(1, "unit-waiting")
    gate, started = threading.Event(), threading.Event()

    def busy() -> None:
        started.set()
        assert gate.wait(5)

    assert not threads.has_waiting()
    threads.submit(busy)
    assert started.wait(5)
    assert not threads.has_waiting()  # the one call runs: nothing waits
    ran = threading.Event()
    threads.submit(ran.set)
    assert threads.has_waiting()
    gate.set()
    assert ran.wait(5)
    assert not threads.has_waiting()
    threads.shutdown(wait=True)


def test_a_latch_releases_every_thread_waiting_for_it_once_set() -> None:
    latch = Latch()
    assert not latch.is_set()
    released: list[int] = []
    waiting = threading.Barrier(4)

    def wait(n: int) -> None:
        waiting.wait()
        latch.wait()
        released.append(n)

    threads = [threading.Thread(target=wait, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    waiting.wait()
    for thread in threads:
        thread.join(timeout=0.05)
    assert released == []  # still waiting
    latch.set()
    latch.set()  # a second set changes nothing
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(released) == [0, 1, 2]
    assert latch.is_set()
    latch.wait()  # set: returns at once
