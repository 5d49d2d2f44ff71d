"""The worker: two dispatchers (orchestrations, activities) over one store.

An orchestration episode: lease an instance with visible messages, take its executor from the
sticky cache or replay its history, run the episode, commit the checkpoint (which releases the
lease); the lease keeper renews the lease meanwhile. An activity: lease a task, run the function
(sync ones in a bounded thread pool), deliver its result; its lease is renewed while it runs.
Idle dispatchers sleep until the store changes or the next message becomes visible.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import socket
import threading
import uuid
import weakref
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from durafn.app import App
from durafn.core.entities import is_entity_instance_id
from durafn.core.errors import LeaseLost
from durafn.core.history import HistoryEvent, TaskFailed
from durafn.core.status import FailureDetails
from durafn.core.threads import Threads
from durafn.executor.orchestration import OrchestrationExecutor
from durafn.store.base import (
    ActivityWorkItem,
    BlockingCheckpoints,
    Checkpoint,
    InboxMessage,
    OrchestrationWorkItem,
    Store,
)
from durafn.worker.activities import run_activity
from durafn.worker.cache import ExecutorCache
from durafn.worker.checkpoint import IN_PLACE_SEQ
from durafn.worker.clock import Clock, SystemClock
from durafn.worker.entities import run_entity_batch
from durafn.worker.episodes import Episodes
from durafn.worker.held import Arrivals, HandBack, HeldActivities, poll_held
from durafn.worker.leases import LeaseKeeper

log = logging.getLogger("durafn.worker")

W = TypeVar("W")


@dataclass(frozen=True)
class WorkerOptions:
    """Tuning of one worker.

    ``lease`` is how long a claim lasts without renewal; ``max_idle`` caps an idle sleep (the
    safety net when a change is not noticed); ``cache_size`` is how many live orchestrations
    stay in memory between episodes.
    """

    orchestrations: bool = True
    activities: bool = True
    # Episodes are short and run on the event loop; what many slots buy is commits shared
    # by many instances (group commit), and sub-orchestrations started in hundreds at once.
    max_concurrent_orchestrations: int = 64
    max_concurrent_activities: int = 16
    lease: timedelta = timedelta(seconds=30)
    max_idle: float = 2.0
    cache_size: int = 1000
    # An activity whose worker died this many times (it crashed the process?) fails instead
    # of running again.
    max_activity_attempts: int = 10
    shutdown_grace: float = 10.0
    # How many activities of one instance the worker may run in place, holding the instance
    # (0: never). Lower it when workers on several machines should share large fan-outs.
    in_place_activities: int = 1000
    # A chain's next activity run in place may start while the commit that schedules it
    # waits for the disk (False: only once that commit has ended). If the commit then fails,
    # the activity's result is dropped and it runs again (see docs/concepts.md, guarantees).
    start_ahead: bool = True

    def __post_init__(self) -> None:
        if not (self.orchestrations or self.activities):
            raise ValueError("a worker must run orchestrations, activities, or both")
        if self.max_concurrent_orchestrations < 1 or self.max_concurrent_activities < 1:
            raise ValueError("concurrency limits must be at least 1")
        if self.lease < timedelta(seconds=1):
            raise ValueError("the lease must last at least 1 second")
        if self.max_activity_attempts < 1:
            raise ValueError("max_activity_attempts must be at least 1")
        if self.in_place_activities < 0:
            raise ValueError("in_place_activities must be 0 or more")


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    """Runs the orchestrations and activities of ``app`` from ``store``."""

    def __init__(
        self,
        app: App,
        store: Store,
        *,
        clock: Clock | None = None,
        options: WorkerOptions | None = None,
        worker_id: str | None = None,
    ) -> None:
        self.app = app
        self.store = store
        self.clock = clock or SystemClock()
        self.options = options or WorkerOptions()
        self.worker_id = worker_id or new_worker_id()
        self.cache = ExecutorCache(self.options.cache_size)
        self.leases = LeaseKeeper(store, self.options.lease, self.clock)
        self._pool: Threads | None = None
        self.episodes = 0
        # Committed batches of entity operations (each counted in ``episodes`` too).
        self.entity_batches = 0
        self.activities_run = 0
        # Of those, the ones run in place by the worker holding their instance.
        self.activities_in_place = 0
        # Episodes committed by an activity's thread going on with its instance.
        self.steps_on_threads = 0
        self._count_lock = threading.Lock()
        # Whether an activity's thread may commit the next step of its instance itself.
        self.blocking_checkpoints = isinstance(store, BlockingCheckpoints)
        self._store_failures: dict[str, int] = {}
        self._next_due: tuple[object, datetime | None] = (object(), None)
        self._slot_freed: dict[str, asyncio.Event] = {}
        # Each dispatcher's work in flight, and what it does when a piece of it ends.
        self._inflight: dict[str, set[asyncio.Task[None]]] = {}
        self._on_finished: dict[str, Callable[[asyncio.Task[None]], None]] = {}
        # Orchestration slots promised to instances a client of this process is creating
        # (``reserve``), and whether new instances are taken that way (while dispatching).
        self._reserved = 0
        self._claiming: dict[str, int] = {}
        self._accepting: asyncio.AbstractEventLoop | None = None
        self._background: set[asyncio.Future[None]] = set()
        # Set by ``run``'s caller to stop it: a stopping worker starts no activity in place.
        self._stop: asyncio.Event | None = None
        # Held instances waiting for activities they run in place (see ``_waiting_bonus``).
        self.held_waiting: set[HeldActivities] = set()
        # One queue of in-place results per event loop the worker has run on.
        self._arrivals: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Arrivals] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def _threads(self) -> Threads:
        """The bounded pool of sync activities, made anew after a stop (a worker may rerun)."""
        if self._pool is None:
            self._pool = Threads(self.options.max_concurrent_activities, "durafn-activity")
        return self._pool

    def _release_threads(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_pending=True)

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; then finish in-flight work (up to the grace period)."""
        log.info("worker %s started", self.worker_id)
        self._stop = stop
        loops = []
        if self.options.orchestrations:
            loops.append(
                self._dispatch(
                    "orchestrations",
                    self.options.max_concurrent_orchestrations,
                    self._lock_orchestrations,
                    self.process_orchestration,
                    stop,
                )
            )
        if self.options.activities:
            loops.append(
                self._dispatch(
                    "activities",
                    self.options.max_concurrent_activities,
                    self._lock_activities,
                    self.process_activity,
                    stop,
                )
            )
        helpers = (
            [asyncio.create_task(self.leases.run()), asyncio.create_task(poll_held(self))]
            if self.options.orchestrations
            else []
        )
        try:
            await asyncio.gather(*loops)
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self._release_threads()
            log.info("worker %s stopped", self.worker_id)

    async def _dispatch(
        self,
        kind: str,
        capacity: int,
        lock: Callable[[int], Awaitable[list[W]]],
        process: Callable[[W], Coroutine[Any, Any, None]],
        stop: asyncio.Event,
    ) -> None:
        inflight = self._inflight[kind] = set()
        slot_freed = self._slot_freed[kind] = asyncio.Event()
        # One task waits for the stop for the dispatcher's whole life, and wakes it.
        stopping = asyncio.ensure_future(stop.wait())
        stopping.add_done_callback(lambda _: slot_freed.set())

        def finished(task: asyncio.Task[None]) -> None:
            inflight.discard(task)
            slot_freed.set()
            if not task.cancelled() and task.exception() is not None:
                log.error("%s work failed unexpectedly", kind, exc_info=task.exception())

        self._on_finished[kind] = finished
        if kind == "orchestrations":
            self._accepting = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                free = self._free_slots(kind, capacity)
                try:
                    items: list[W] = []
                    token: object = None
                    if free > 0:
                        # Slots being claimed are not free to reserve meanwhile.
                        self._claiming[kind] = free
                        try:
                            token = await self.store.change_token()
                            items = await lock(free)
                        finally:
                            self._claiming[kind] = 0
                    for item in items:
                        task = asyncio.create_task(process(item))
                        inflight.add(task)
                        task.add_done_callback(finished)
                    if free > 0 and len(items) >= free:
                        continue  # every slot was filled: there may be more, once one frees
                    slot_freed.clear()
                    # Fewer items than slots: nothing more was visible. Sleep until the store
                    # changes after ``token`` (taken before the claim, so nothing is missed), or
                    # until the next message comes due. No slot free: until one frees.
                    if free <= 0:
                        await slot_freed.wait()
                        continue
                    idle = await self._idle_timeout(token)
                    changed = asyncio.ensure_future(self.store.wait_for_change(token, idle))
                    try:
                        await asyncio.wait((stopping, changed), return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        changed.cancel()
                except Exception:
                    # The store is down or failing: keep the worker alive and try again shortly.
                    log.exception("could not fetch %s work; retrying in 1 s", kind)
                    await _sleep_or_stop(stop, 1.0)
        finally:
            if kind == "orchestrations":
                self._accepting = None
        stopping.cancel()
        if inflight:
            _, pending = await asyncio.wait(inflight, timeout=self.options.shutdown_grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def arrivals(self) -> Arrivals:
        """The queue of in-place results for the running event loop (one per loop)."""
        loop = asyncio.get_running_loop()
        queue = self._arrivals.get(loop)
        if queue is None:
            queue = self._arrivals[loop] = Arrivals(loop)
        return queue

    def _free_slots(self, kind: str, capacity: int) -> int:
        taken = len(self._inflight[kind]) + self._claiming.get(kind, 0)
        if kind == "orchestrations":
            taken += self._reserved
        return capacity + self._waiting_bonus(kind) - taken

    def reserve(self) -> tuple[str, timedelta] | None:
        """A free orchestration slot for an instance a client of this process is about to
        create leased to this worker (``Store.create_instance_leased``): its first episode then
        runs at once, without a claim. Returns the lease's owner and length, or None when no
        slot is free, the worker is not dispatching, or the caller runs on another event loop.
        Every slot reserved must be handed back through :meth:`adopt`."""
        loop = self._accepting
        if loop is None or asyncio.get_running_loop() is not loop:
            return None
        if self._free_slots("orchestrations", self.options.max_concurrent_orchestrations) <= 0:
            return None
        self._reserved += 1
        return self.worker_id, self.options.lease

    def adopt(self, item: OrchestrationWorkItem | None) -> None:
        """Run the first episode of ``item``, created leased to this worker in the slot
        :meth:`reserve` kept for it; None gives the slot back (the creation failed)."""
        self._reserved -= 1
        if item is None:
            freed = self._slot_freed.get("orchestrations")
            if freed is not None:
                freed.set()  # a dispatcher may wait for this very slot
            return
        if self._accepting is None:  # stopped meanwhile: let it go to whoever runs next
            released = asyncio.ensure_future(self.store.abandon_orchestration(item))
            self._background.add(released)
            released.add_done_callback(self._background.discard)
            released.add_done_callback(_log_failure)
            return
        task = asyncio.create_task(self.process_orchestration(item))
        self._inflight["orchestrations"].add(task)
        task.add_done_callback(self._on_finished["orchestrations"])

    def _stopping(self) -> bool:
        return self._stop is not None and self._stop.is_set()

    def _waiting_bonus(self, kind: str) -> int:
        """Slots lent by instances that wait for their activities in place: they run no code
        meanwhile. At most one per activity thread: more could not make progress anyway."""
        if kind != "orchestrations":
            return 0
        return min(len(self.held_waiting), self.options.max_concurrent_activities)

    def held_wait_changed(self, held: HeldActivities, waiting: bool) -> None:
        if not waiting:
            self.held_waiting.discard(held)
            return
        self.held_waiting.add(held)
        freed = self._slot_freed.get("orchestrations")
        if freed is not None:
            freed.set()

    async def _idle_timeout(self, token: object) -> float:
        # Both dispatchers ask after the same changes: the answer holds until the store changes
        # or the time it names has come.
        now = self.clock.now()
        cached_token, due = self._next_due
        if cached_token != token or (due is not None and due <= now):
            due = await self.store.next_visible_at(now)
            self._next_due = (token, due)
        if due is None:
            return self.options.max_idle
        return max(0.0, min(self.options.max_idle, (due - now).total_seconds()))

    async def _lock_orchestrations(self, limit: int) -> list[OrchestrationWorkItem]:
        return await self.store.lock_next_orchestrations(
            self.worker_id, self.options.lease, self.clock.now(), limit
        )

    async def _lock_activities(self, limit: int) -> list[ActivityWorkItem]:
        return await self.store.lock_next_activities(
            self.worker_id, self.options.lease, self.clock.now(), limit
        )

    async def run_until_idle(self, max_rounds: int = 100_000) -> int:
        """Process work until nothing is visible at the clock's current time; returns rounds.

        Deterministic and single-task: the testing kit drives a virtual clock with it.
        """
        rounds = 0
        while rounds < max_rounds:
            did_work = False
            if self.options.orchestrations:
                while item := await self.store.lock_next_orchestration(
                    self.worker_id, self.options.lease, self.clock.now()
                ):
                    await self.process_orchestration(item)
                    did_work = True
            if self.options.activities:
                batch = await self._lock_activities(self.options.max_concurrent_activities)
                if batch:
                    await asyncio.gather(*(self.process_activity(a) for a in batch))
                    did_work = True
            rounds += 1
            if not did_work:
                return rounds
        raise RuntimeError(f"work did not settle after {max_rounds} rounds")

    def close(self) -> None:
        self._release_threads()

    # ------------------------------------------------------------------ one orchestration episode

    async def process_orchestration(self, item: OrchestrationWorkItem) -> None:
        """Run one episode for a leased instance and commit it.

        A fault of the runtime while running the episode (a history that no longer decodes,
        say) fails the instance; a store fault releases the lease and retries later, backing
        off. Neither ever stops the worker.
        """
        self.leases.hold(item)
        try:
            await self._run_episode(item)
        finally:
            self.leases.release(item)

    async def _run_episode(self, item: OrchestrationWorkItem) -> None:
        now = self.clock.now()
        if is_entity_instance_id(item.instance_id):
            await self._run_entity_batch(item, now)
            return
        executor = self.cache.take(item.instance_id, item.execution_id, item.history_length)
        history: list[HistoryEvent] = []
        try:
            if executor is None and item.history_length:
                history = await self.store.get_history(item.instance_id)
        except Exception as exc:
            await self._retry_later(item, exc)
            return
        held = HeldActivities(self, item)
        try:
            executor = await self._run_episodes(item, executor, history, held, now)
        except BaseException:
            # Stopped while it held the instance (activities running in place, or their
            # results just taken): let it and them go at once rather than when their leases
            # expire. A lease already released is left alone by the store.
            with contextlib.suppress(Exception):
                await self.store.abandon_orchestration(item)
            raise
        finally:
            held.cancel()
        if executor is not None:
            self.cache.put(item.instance_id, item.execution_id, executor)

    async def _run_episodes(
        self,
        item: OrchestrationWorkItem,
        executor: OrchestrationExecutor | None,
        history: list[HistoryEvent],
        held: HeldActivities,
        now: datetime,
    ) -> OrchestrationExecutor | None:
        """Run episodes of a leased instance until one releases it; returns the executor to
        keep in the cache (None if the instance finished or was let go).

        An episode after which the code waits only on activities that this worker can run
        commits them leased to the worker and keeps the instance (see :class:`HeldActivities`):
        their results then feed the next episode directly, committed with it. A chain of
        single sync activities may go on from step to step on the activity's thread, which
        hands the instance back when it is done with it (:class:`HandBack`).
        """
        episodes = Episodes(self, item, executor, history, held)
        held.episodes = episodes
        step = episodes.run(now)
        while True:
            if step is not None:
                checkpoint = step.checkpoint
                if step.hold:
                    checkpoint.hold_until = await self._hold_until(item, now)
                    # Held for others running in place: any worker may take these at once.
                    checkpoint.hold_activities = bool(step.start)
                    if not held.goes_on(step):
                        checkpoint.on_commit = held.starter(step.start)
                waiting = await self._commit(item, checkpoint, now)
                if waiting is None:
                    return None
                if not step.hold:
                    return episodes.kept(step)
                episodes.committed_step(step)
                held.inbox_seen(waiting)
                held.start(step.start)
            news = await held.next_news()
            if isinstance(news, HandBack):
                now, step = news.now, news.step
                if news.kind == "failed":
                    assert news.error is not None
                    failed = step.checkpoint if step is not None else None
                    await self._commit_failed(item, failed, news.error)
                    return None
                assert step is not None
                if news.kind == "done":
                    return episodes.kept(step)
                # "committed": the loop starts what the thread did not run itself.
                held.inbox_seen(news.waiting)
                held.start(step.start)
                step = None
                continue
            results, inbox = news
            now = self.clock.now()
            # Messages first: a termination read now wins over a result that came meanwhile,
            # as it would through the queue, where it was sent before that result arrived.
            item.messages = inbox + [InboxMessage(IN_PLACE_SEQ, r) for r in results]
            step = episodes.run(now)

    async def _hold_until(self, item: OrchestrationWorkItem, now: datetime) -> datetime:
        """The lease a held checkpoint keeps: the one it has, so that a step need not rewrite
        it. The lease keeper renews it once a third of it has passed; if it is late (a renewal
        failed), the lease is renewed here first, with the activities held under it: a new
        lease written by the checkpoint alone would leave them on the old one, to run a second
        time elsewhere once it expires."""
        if item.locked_until - now <= self.options.lease / 3:
            try:
                await self.store.renew_orchestration_lease(item, self.options.lease, now)
            except Exception as exc:  # the checkpoint's fence decides
                log.warning("could not renew the lease on instance %s: %s", item.instance_id, exc)
        return item.locked_until

    async def _run_entity_batch(self, item: OrchestrationWorkItem, now: datetime) -> None:
        """Apply the visible messages of a leased entity (up to a cap) in one batch, one commit.

        The batch runs on a thread: its operations are user code that may take a while, and
        the lease keeper must go on renewing the entity's lease meanwhile.
        """
        try:
            checkpoint = await asyncio.to_thread(run_entity_batch, self.app, item, now)
        except Exception as exc:
            # Not the code of an operation (its errors go to its caller): the stored state
            # itself cannot be read. Keep the messages and try again later.
            log.exception("the batch of entity %s could not run", item.instance_id)
            await self._retry_later(item, exc)
            return
        except BaseException:
            # Stopped while the batch ran (it finishes on its thread, uncommitted): let the
            # entity go at once rather than when its lease expires.
            with contextlib.suppress(Exception):
                await self.store.abandon_orchestration(item)
            raise
        if await self._commit(item, checkpoint, now) is not None:
            self.entity_batches += 1

    async def _commit(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint, now: datetime
    ) -> bool | None:
        """Commit an episode's checkpoint; None when it was not committed, else whether
        messages may wait in the instance's inbox (see ``Store.checkpoint``; only False says
        none do)."""
        try:
            waiting = await self.store.checkpoint(item, checkpoint, now) is not False
        except BaseException as exc:
            await self._commit_failed(item, checkpoint, exc)
            return None
        self.committed_episode(item)
        return waiting

    def committed_episode(self, item: OrchestrationWorkItem, *, on_thread: bool = False) -> None:
        """Count an episode committed (by the event loop, or ``on_thread``)."""
        self._store_failures.pop(item.instance_id, None)
        self.count(episodes=1, steps_on_threads=int(on_thread))

    def count(
        self,
        *,
        episodes: int = 0,
        activities: int = 0,
        in_place: int = 0,
        steps_on_threads: int = 0,
    ) -> None:
        """Add to the counters, from the event loop or an activity's thread."""
        with self._count_lock:
            self.episodes += episodes
            self.activities_run += activities
            self.activities_in_place += in_place
            self.steps_on_threads += steps_on_threads

    async def _commit_failed(
        self, item: OrchestrationWorkItem, checkpoint: Checkpoint | None, exc: BaseException
    ) -> None:
        """After an episode's ``checkpoint`` failed to commit with ``exc`` (or, None, the step
        failed before): let the instance go, to be retried from its last commit (re-raises
        what is not an ``Exception``)."""
        if isinstance(exc, LeaseLost):
            self.cache.discard(item.instance_id)
            log.warning("dropped an episode of %s: %s", item.instance_id, exc)
            if checkpoint is None or checkpoint.completed_activities:
                # Fenced by an activity whose lease lapsed (the instance's may still be ours).
                with contextlib.suppress(Exception):
                    await self.store.abandon_orchestration(item)
            return
        if isinstance(exc, Exception):
            await self._retry_later(item, exc)
            return
        self.cache.discard(item.instance_id)
        with contextlib.suppress(Exception):
            await self.store.abandon_orchestration(item)
        raise exc

    async def _retry_later(self, item: OrchestrationWorkItem, error: Exception) -> None:
        """Release the instance for a later attempt, waiting longer after each failure."""
        self.cache.discard(item.instance_id)
        failures = self._store_failures.get(item.instance_id, 0) + 1
        self._store_failures[item.instance_id] = failures
        delay = timedelta(seconds=min(0.5 * 2 ** (failures - 1), 60.0))
        log.warning(
            "episode of %s not committed (%s); retrying in %.1f s",
            item.instance_id,
            error,
            delay.total_seconds(),
        )
        with contextlib.suppress(Exception):
            await self.store.abandon_orchestration(item, retry_at=self.clock.now() + delay)

    # ------------------------------------------------------------------ one activity

    async def process_activity(self, item: ActivityWorkItem) -> None:
        """Run a leased activity, renewing its lease meanwhile, and deliver its result."""
        if item.attempts > self.options.max_activity_attempts:
            result: HistoryEvent = _gave_up(item, self.clock.now())
        else:
            renewal = asyncio.create_task(self._renew_activity(item))
            try:
                result = await run_activity(self.app, item, self._threads, self.clock.now())
            except BaseException:
                renewal.cancel()
                with contextlib.suppress(Exception):
                    await self.store.abandon_activity(item)
                raise
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            result = dataclasses.replace(result, timestamp=self.clock.now())
        try:
            delivered = await self.store.complete_activity(item, result, self.clock.now())
        except Exception:
            # The result is lost with this attempt: the task runs again, at once if the store
            # lets it go now, else once its lease ends.
            log.exception("could not deliver the result of activity %s", item.name)
            with contextlib.suppress(Exception):
                await self.store.abandon_activity(item)
            return
        self.count(activities=1)
        if not delivered:
            log.info(
                "result of activity %s #%d for %s was a duplicate; dropped",
                item.name,
                item.event_id,
                item.instance_id,
            )

    async def _renew_activity(self, item: ActivityWorkItem) -> None:
        interval = self.options.lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            try:
                await self.store.renew_activity_lease(item, self.options.lease, self.clock.now())
            except LeaseLost:
                log.warning(
                    "lost the lease on activity %s #%d of %s",
                    item.name,
                    item.event_id,
                    item.instance_id,
                )
                return
            except Exception:
                log.exception("could not renew the lease on activity %s", item.name)


def _gave_up(item: ActivityWorkItem, now: datetime) -> TaskFailed:
    error = RuntimeError(
        f"activity {item.name!r} was started {item.attempts - 1} times and its worker was "
        "lost each time (did it crash the process?); giving up"
    )
    return TaskFailed(
        timestamp=now, task_scheduled_id=item.event_id, failure=FailureDetails.from_exception(error)
    )


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("could not release an instance", exc_info=task.exception())


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
