"""Activities run in place: a worker holds an instance while it runs the instance's activities.

An episode after which the code waits only on activities this worker can run commits them
leased under the instance's lock token (``Checkpoint.hold_until``); the worker runs them at
once and feeds their results to the next episode (:meth:`Worker._run_episodes`). Sync ones are
handed to their threads by the checkpoint's commit hook, and their results come back to the
event loop through one queue per loop.

A chain of single sync activities need not go back to the event loop at every step. When the
loop waits for nothing but one sync activity, and its store can commit for a thread that waits
(``BlockingCheckpoints``), the activity's thread goes on with the instance itself: it runs the
next episode, commits it, and runs the next activity, until a step asks for something else (an
end, a timer, a fan-out, a message in the inbox); it then hands the instance back to the loop
(:class:`HandBack`). The loop and the thread never run the instance's code at the same time:
the thread owns the instance from an activity's end until its next commit, and while it runs
the next activity the loop may take the instance back (to apply a termination, say).

On a store that calls the ``before_commit`` hook (SQLite), the next activity of such a chain
starts before the commit that schedules it has reached the disk: once that commit's
statements have run, on another activity thread (:class:`Ahead`), unless a message waits in
the inbox or ``WorkerOptions.start_ahead`` is off. It may then end, and its thread run the
next episode, and have the store build the next commit's statement parameters
(``prepare_checkpoint``), while the commit waits for the disk: a step costs its commit and
statements, its activity and episode hidden behind the fsync. Nothing is committed and
nothing handed back before the commit before it is known to have gone through; if it did
not, the activity's result is dropped (an activity runs at least once) and the instance is
taken again from its last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import inspect
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, cast

from durafn.core.history import HistoryEvent, TaskCompleted, TaskFailed
from durafn.core.threads import Job, Latch
from durafn.executor.orchestration import OrchestrationExecutor
from durafn.store.base import (
    ActivityTask,
    ActivityWorkItem,
    BlockingCheckpoints,
    Checkpoint,
    InboxMessage,
    OrchestrationWorkItem,
)
from durafn.worker.activities import finish_awaitable, run_activity, run_sync_activity
from durafn.worker.checkpoint import IN_PLACE_SEQ, task_id_of

if TYPE_CHECKING:
    from durafn.worker.episodes import Episodes, Step
    from durafn.worker.worker import Worker

log = logging.getLogger("durafn.worker")


@dataclass
class HandBack:
    """What an activity's thread that went on with its instance hands back to the event loop:

    - ``done``: ``step`` committed and let the instance go;
    - ``failed``: ``step`` did not commit (``error``), or (``step`` None) the thread failed;
    - ``committed``: ``step`` committed and keeps the instance; the loop starts its
      activities (``waiting``: whether a message may wait in the inbox).
    """

    kind: Literal["done", "failed", "committed"]
    step: Step | None
    now: datetime
    waiting: bool = False
    error: BaseException | None = None


# A step to commit on an activity's thread: the step, its time, and what its store built for
# it ahead of the commit (``BlockingCheckpoints.prepare_checkpoint``).
_Next = tuple["Step", datetime, object | None]


class Ahead:
    """The commit of a held step whose next activity started before it ended (see the module
    docstring), and how it went.

    Two threads care: the one committing, and the one that runs the next activity. If the
    activity ends first, its thread goes on with the instance (it is then the *heir*) and
    runs the next episode; whichever of the two threads is done last commits that episode's
    step (or hands the instance back if the commit failed): the heir if the commit had ended,
    else the committing thread, which the heir leaves the step to (``next``). Neither waits
    for the other. If the commit ends first, its thread settles it for the event loop: the
    instance is held with its next activity running, as after any commit, or handed back.
    ``HeldActivities._lock`` guards ``heir``, ``next`` and ``settled``.
    """

    __slots__ = ("_done", "error", "heir", "next", "settled", "started", "step")

    def __init__(self, step: Step) -> None:
        self.step = step
        # The next step, run by the heir and left for the committing thread to commit.
        self.next: _Next | None = None
        self.started = False
        self.heir = False
        self.settled = False
        self.error: BaseException | None = None
        self._done = Latch()

    def wait(self) -> bool:
        """Once the commit has ended: whether it committed."""
        self._done.wait()
        return self.error is None


class Arrivals:
    """Results of in-place sync activities, from their threads to one event loop: one
    wake-up of the loop for all the results that arrive while it is busy, not one each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._queued: list[tuple[HeldActivities, ActivityWorkItem | None, Any]] = []
        self._scheduled = False

    def deliver(
        self,
        held: HeldActivities,
        work: ActivityWorkItem | None,
        outcome: TaskCompleted | TaskFailed | HandBack | Awaitable[Any],
    ) -> None:
        """On an activity thread."""
        with self._lock:
            self._queued.append((held, work, outcome))
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:  # the loop has closed: its worker's run is over
            with self._lock:
                self._queued.clear()
                self._scheduled = False

    def _drain(self) -> None:
        with self._lock:
            queued, self._queued = self._queued, []
            self._scheduled = False
        for held, work, outcome in queued:
            try:
                if isinstance(outcome, TaskCompleted | TaskFailed):
                    held._arrive(outcome)
                elif isinstance(outcome, HandBack):
                    held._handed_back(outcome)
                else:  # the function returned an awaitable: the loop awaits it
                    assert work is not None
                    held._finish_on_loop(work, outcome)
            except Exception:
                log.exception(
                    "could not take the result of activity %s", work.name if work else "(step)"
                )


class HeldActivities:
    """The activities an instance's worker runs in place while it holds the instance.

    Their task rows are committed leased under the instance's lock token (renewed and
    released with it), so if this worker dies they run elsewhere once the lease expires and
    their results reach the inbox as usual. Here, their results are fed straight to the next
    episode, in the order they finished, and committed with it.
    """

    def __init__(self, worker: Worker, item: OrchestrationWorkItem) -> None:
        self.worker = worker
        self.item = item
        # Each activity running in place: an asyncio task, or the future of its thread.
        self.running: dict[int, asyncio.Future[None] | Job] = {}
        # Started by the commit hook, until ``start`` files them under ``running``.
        self._in_threads: dict[int, Job] = {}
        # The commit hook runs on the store's thread: it and ``cancel`` take turns.
        self._lock = threading.Lock()
        self._closed = False
        self._arrivals = worker.arrivals()
        self._results: list[HistoryEvent] = []
        self._arrived = asyncio.Event()
        self._next_read = 0.0
        self._polled_at = 0.0
        # Set by the worker: the instance's state across episodes.
        self.episodes: Episodes | None = None
        # The loop waits for news, and a thread may go on with the instance (see the module
        # docstring); a thread does; what it handed back.
        self._parked = False
        self._thread_owns = False
        self._handback: HandBack | None = None
        self._go_on = worker.blocking_checkpoints
        self._start_ahead = worker.options.start_ahead

    def startable(
        self, executor: OrchestrationExecutor, checkpoint: Checkpoint
    ) -> list[ActivityTask]:
        """The checkpoint's activities, if this worker may run them all in place."""
        options = self.worker.options
        tasks = checkpoint.activities
        if not (options.activities and tasks and executor.awaits_only_activities):
            return []
        if len(tasks) + len(self.running) > options.in_place_activities:
            return []
        if not all(self.worker.app.has_activity(t.name) for t in tasks):
            return []
        return tasks

    def starter(self, tasks: list[ActivityTask]) -> Callable[[], None] | None:
        """The commit hook of the checkpoint that schedules ``tasks``: it hands the sync ones
        to the activity threads as soon as the checkpoint has committed, on whichever thread
        committed it, rather than once the event loop has heard of the commit."""
        worker = self.worker
        sync = [t for t in tasks if not worker.app.get_activity(t.name).is_async]
        if not sync:
            return None
        work = [self._work_item(t) for t in sync]

        def on_commit() -> None:
            with self._lock:
                if self._closed:
                    return  # the episode was given up meanwhile: nothing is to run
                for item in work:
                    try:
                        job = self._submit_sync(item)
                    except RuntimeError:
                        return  # the pool has shut down (the worker stops): ``start`` decides
                    self._in_threads[item.event_id] = job

        return on_commit

    def start(self, tasks: list[ActivityTask]) -> None:
        """Once the checkpoint scheduling ``tasks`` has committed: run the async ones here
        (the sync ones were handed to their threads by the commit hook, unless the step
        :meth:`goes_on`: its activity is handed to its thread now)."""
        if self._closed:
            return
        for task in tasks:
            started = self._in_threads.pop(task.event_id, None)
            if task.event_id in self.running:
                continue  # its thread finished already and handed an awaitable to the loop
            if started is None and self._go_on and not self._is_async(task):
                with contextlib.suppress(RuntimeError):  # shut down: run_activity decides
                    started = self._submit_sync(self._work_item(task))
            self.running[task.event_id] = started or asyncio.create_task(self._run(task))

    def goes_on(self, step: Step) -> bool:
        """Whether the thread of ``step``'s activity may go on with the instance: its one sync
        activity, while no other instance of the worker waits (see the module docstring). Its
        activity is then started by :meth:`start`, just before the loop waits for it, rather
        than by the commit hook: started earlier, a quick activity would end before the loop
        waits, and its thread could not go on."""
        return self._go_on and not self.worker.held_waiting and self._inline(step) is not None

    def _submit_sync(self, work: ActivityWorkItem, ahead: Ahead | None = None) -> Job:
        """Hand the sync activity of ``work`` to the worker's activity threads (RuntimeError
        once they have shut down); ``ahead``: the commit that schedules it, still under way."""
        return self.worker._threads.submit(functools.partial(self._run_sync, work, ahead))

    def _is_async(self, task: ActivityTask) -> bool:
        return self.worker.app.get_activity(task.name).is_async

    def _work_item(self, task: ActivityTask) -> ActivityWorkItem:
        item = self.item
        return ActivityWorkItem(
            task_id=-1,
            instance_id=item.instance_id,
            execution_id=item.execution_id,
            event_id=task.event_id,
            name=task.name,
            input=task.input,
            lock_token=item.lock_token,
            locked_until=item.locked_until,
            attempts=1,
        )

    async def _run(self, task: ActivityTask) -> None:
        worker = self.worker
        work = self._work_item(task)
        self._arrive(await run_activity(worker.app, work, worker._threads, worker.clock.now()))

    def _run_sync(self, work: ActivityWorkItem, ahead: Ahead | None = None) -> None:
        """On an activity thread: run a sync activity, and tell the event loop its result, or
        go on with the instance's next steps here (see the module docstring). ``ahead``: the
        commit that schedules the activity, if it started before that commit ended."""
        worker = self.worker
        outcome = run_sync_activity(worker.app, work, worker.clock.now())
        while isinstance(outcome, TaskCompleted | TaskFailed) and self._take_over(work, ahead):
            try:
                following = self._next_step(outcome, ahead)
            except BaseException as exc:
                # Not the instance's code (its errors fail it) nor its commit (handed back as
                # failed): a fault of the runtime. The loop lets the instance go, to be taken
                # again from its last commit, rather than wait for this thread forever.
                log.exception("a step of %s failed on its thread", self.item.instance_id)
                if ahead is not None:
                    ahead.wait()  # the commit under way ends before the instance is let go
                self._hand_back(HandBack("failed", None, worker.clock.now(), error=exc))
                return
            if following is None:
                return
            work, ahead = following, None
            outcome = run_sync_activity(worker.app, work, worker.clock.now())
        if ahead is not None and not ahead.wait():
            # Its commit failed, and its thread handed the instance back: dropped.
            if inspect.iscoroutine(outcome):
                outcome.close()
            return
        self._arrivals.deliver(self, work, outcome)

    def _take_over(self, work: ActivityWorkItem, ahead: Ahead | None) -> bool:
        """On an activity thread whose activity has just ended: whether it goes on with the
        instance itself (it then owns it until it hands it back or runs the next activity).
        ``ahead``: the commit that scheduled the activity, if it started before that commit
        ended; this thread takes over its outcome if it is still under way."""
        worker = self.worker
        if not self._go_on:
            return False
        if len(worker.held_waiting) > 1:
            # Others wait too: the loop's steps share their commits (group commit), and
            # threads of many instances committing each their own would take turns at the GIL.
            return False
        pool = worker._pool  # not ``_threads``, which would make one after the worker stopped
        if pool is not None and pool.has_waiting():
            # Other activities wait for a thread: a chain going on here would keep this one
            # from them for as long as it lasts. Its next activity queues behind them instead.
            return False
        if time.monotonic() >= self._next_read:
            return False  # the inbox is due to be read (see ``_read_inbox``): the loop reads it
        if self.item.locked_until - worker.clock.now() <= worker.options.lease / 3:
            return False  # the lease is due for renewal: the loop renews it as it commits
        with self._lock:
            if (
                not self._parked
                or self._closed
                or list(self.running) != [work.event_id]
                or worker._stopping()
            ):
                return False
            if ahead is not None:
                if ahead.settled:
                    if ahead.error is not None:
                        return False  # handed back, or to be: the loop has the instance
                else:
                    ahead.heir = True
            self._thread_owns = True
            del self.running[work.event_id]
        return True

    def _next_step(
        self, outcome: TaskCompleted | TaskFailed, ahead: Ahead | None
    ) -> ActivityWorkItem | None:
        """On the thread that owns the instance: apply ``outcome`` in the next episode, and
        commit it once ``ahead``, the commit before, has gone through (or leave it to the
        thread of that commit, if it is still under way). Returns the next activity to run
        here, or None once the instance has been handed back to the event loop or passed to
        another thread."""
        worker, item, episodes = self.worker, self.item, self.episodes
        assert episodes is not None
        now = worker.clock.now()
        worker.count(activities=1, in_place=1)
        item.messages = [InboxMessage(IN_PLACE_SEQ, dataclasses.replace(outcome, timestamp=now))]
        step = episodes.run(now)
        assert step is not None  # nothing else runs: no result waits for another
        # Built here, while the commit before may still wait for the disk: off its path.
        following = (step, now, self._prepare(step, now))
        if ahead is not None:
            with self._lock:
                if not ahead.settled:
                    ahead.next = following
                    return None  # the thread committing ``ahead`` commits it next
            if self._after(ahead, following) is None:
                return None
        return self._commit(following)

    def _prepare(self, step: Step, now: datetime) -> object | None:
        """On the thread that owns the instance, once ``step`` has run: what its store builds
        ahead of its commit (``BlockingCheckpoints.prepare_checkpoint``), the step's checkpoint
        holding the instance for as long as its lease."""
        checkpoint = step.checkpoint
        if step.hold:
            checkpoint.hold_until = self.item.locked_until
            checkpoint.hold_activities = bool(step.start)
        store = cast(BlockingCheckpoints, self.worker.store)
        return store.prepare_checkpoint(self.item, checkpoint, now)

    def _commit(self, following: _Next) -> ActivityWorkItem | None:
        """On the thread that owns the instance: commit the step of ``following``, then the
        steps its next activity's thread leaves to this one (see ``Ahead``). Returns the next
        activity to run here, or None once the instance has been handed back or passed to
        another thread."""
        worker, item, episodes = self.worker, self.item, self.episodes
        assert episodes is not None
        # Known to be one (``worker.blocking_checkpoints``); isinstance of a protocol is slow.
        store = cast(BlockingCheckpoints, worker.store)
        while True:
            step, now, prepared = following
            checkpoint = step.checkpoint
            inline = self._inline(step)
            # The next activity may start before this commit ends (see ``Ahead``).
            ahead: Ahead | None = None
            hook: Callable[[bool], None] | None = None
            if inline is not None and self._start_ahead:
                ahead = Ahead(step)
                hook = functools.partial(self._start, ahead, inline)
            try:
                waiting = (
                    store.checkpoint_blocking(
                        item, checkpoint, now, before_commit=hook, prepared=prepared
                    )
                    is not False
                )
            except BaseException as exc:
                if ahead is not None and ahead.started:
                    self._settle(ahead, now, exc)
                else:
                    self._hand_back(HandBack("failed", step, now, error=exc))
                return None
            if ahead is not None and ahead.started:
                # Settled first: the activity's thread may be waiting to hear of it. (Started,
                # the activity was told no message waits: the same answer as ``waiting``.)
                left = self._settle(ahead, now, None)
                worker.committed_episode(item, on_thread=True)
                if left is None:
                    return None
                following = left
                continue
            worker.committed_episode(item, on_thread=True)
            if not step.hold:
                self._hand_back(HandBack("done", step, now))
                return None
            episodes.committed_step(step)
            if inline is None or waiting:
                self._hand_back(HandBack("committed", step, now, waiting=waiting))
                return None
            self.inbox_seen(False)
            with self._lock:
                if self._closed:
                    return None  # let go meanwhile (the worker stops): its lease says what next
                # Running here: the loop may take the instance back meanwhile (a termination).
                self.running[inline.event_id] = Job(_nothing)
                self._thread_owns = False
            return self._work_item(inline)

    def _start(self, ahead: Ahead, task: ActivityTask, waiting: bool) -> None:
        """The ``before_commit`` hook of ``ahead``'s step, on the thread that commits it: start
        its activity ``task`` at once, unless a message waits in the inbox (the step then
        hands the instance back to the event loop as it commits, which starts the activity
        and reads the message). The instance's state becomes what the commit leaves it: the
        next episode may run before the commit ends."""
        episodes = self.episodes
        assert episodes is not None
        if waiting:
            return
        with self._lock:
            if self._closed:
                return
            episodes.committed_step(ahead.step)
            self.inbox_seen(False)
            try:
                job = self._submit_sync(self._work_item(task), ahead)
            except RuntimeError:
                return  # the worker stops: the step hands the instance back as it commits
            self.running[task.event_id] = job
            ahead.started = True

    def _settle(self, ahead: Ahead, now: datetime, error: BaseException | None) -> _Next | None:
        """On the thread that committed ``ahead``'s step (``error``: it failed): the next step,
        if the thread of the step's activity left it to this one to commit. Else, if that
        thread went on with the instance, it learns how the commit went when it needs to;
        if it did not, the instance stays held with the activity running, or is handed back
        to the event loop."""
        with self._lock:
            ahead.error, ahead.settled = error, True
            heir, left = ahead.heir, ahead.next
            if not heir and error is None:
                self._thread_owns = False  # held with its activity running, as on the loop
        if not heir and error is not None:
            # Before the activity's thread, which waits for ``_done``, may go on: the instance
            # is this thread's until the loop has heard (no thread takes it over meanwhile).
            self._hand_back(HandBack("failed", ahead.step, now, error=error))
        ahead._done.set()
        if left is None:
            return None
        return self._after(ahead, left)

    def _after(self, ahead: Ahead, following: _Next) -> _Next | None:
        """The step of ``following``, run while ``ahead`` was committing, once that commit
        has ended: to be committed, or (None) dropped, the instance handed back to the event
        loop, if that commit failed."""
        if ahead.error is not None:
            self._hand_back(HandBack("failed", ahead.step, following[1], error=ahead.error))
            return None
        return following

    def _inline(self, step: Step) -> ActivityTask | None:
        """The activity of ``step`` that its thread runs itself: its only one, if sync."""
        if not step.hold or len(step.start) != 1 or self.running:
            return None
        [task] = step.start
        return None if self._is_async(task) else task

    def _hand_back(self, handback: HandBack) -> None:
        """On the thread that owns the instance: give it back to the event loop."""
        self._arrivals.deliver(self, None, handback)

    def _handed_back(self, handback: HandBack) -> None:
        """On the event loop: the thread that went on with the instance has given it back."""
        with self._lock:
            self._thread_owns = False
        if self._closed:
            return
        self._handback = handback
        self._arrived.set()

    def _finish_on_loop(self, work: ActivityWorkItem, outcome: Awaitable[Any]) -> None:
        if self._closed:
            if inspect.iscoroutine(outcome):
                outcome.close()
            return

        async def finish() -> None:
            self._arrive(await finish_awaitable(work, outcome, self.worker.clock.now()))

        self.running[work.event_id] = asyncio.ensure_future(finish())

    def _arrive(self, result: HistoryEvent) -> None:
        if self._closed:
            return  # its instance was let go meanwhile (terminated, say): the result is dropped
        self._results.append(dataclasses.replace(result, timestamp=self.worker.clock.now()))
        self._arrived.set()

    async def next_news(self) -> tuple[list[HistoryEvent], list[InboxMessage]] | HandBack:
        """What the next episode applies: the results that arrived since the last call, and
        the messages in the inbox (:meth:`_read_inbox`); waits until there is either, or
        nothing runs any more. Or, when an activity's thread went on with the instance, what
        it handed back.

        While activities run, the inbox is read every ``_INBOX_POLL`` seconds too: a
        termination sent during a long activity takes effect within that time, not once the
        activity ends."""
        lent = False
        try:
            while True:
                if (self.running or self._thread_owns) and not self._arrived.is_set():
                    if not lent:
                        # Waiting, the instance runs no code: it lends its slot, and
                        # ``poll_held`` has it read its inbox if the wait lasts.
                        self._polled_at = time.monotonic()
                        self.worker.held_wait_changed(self, True)
                        lent = True
                    self._park()
                    await self._arrived.wait()
                self._arrived.clear()
                with self._lock:
                    self._parked = False
                    owned = self._thread_owns
                if self._handback is not None:
                    handback, self._handback = self._handback, None
                    if self._results:
                        # Results that came with it (no path hands back while a result is
                        # on its way now): taken at the next call, not at the next poll.
                        self._arrived.set()
                    return handback
                if owned:
                    continue  # a thread runs its steps: it hears of messages as it commits
                results, self._results = self._results, []
                for result in results:
                    self.running.pop(task_id_of(result), None)
                # Counted as they are taken: a result that comes once the instance has been
                # let go (a termination while it ran) is dropped, and not counted.
                self.worker.count(activities=len(results), in_place=len(results))
                inbox = await self._read_inbox()
                if results or inbox or not self.running:
                    return results, inbox
        finally:
            if lent:
                self.worker.held_wait_changed(self, False)

    def _park(self) -> None:
        """About to wait: a thread may go on with the instance if the loop waits only for its
        one sync activity (or a thread owns the instance already)."""
        with self._lock:
            only = list(self.running.values())
            self._parked = self._go_on and (
                self._thread_owns or (len(only) == 1 and isinstance(only[0], Job))
            )

    def poll(self, now: float) -> None:
        """Called every so often while this waits in :meth:`next_news`: once it has waited
        ``_INBOX_POLL`` seconds since it began or was last polled, it reads its inbox."""
        if now - self._polled_at >= _INBOX_POLL:
            self._polled_at = now
            self._next_read = 0.0
            self._arrived.set()

    def inbox_seen(self, waiting: bool) -> None:
        """A checkpoint has just committed, and its store saw the inbox empty as it did
        (``waiting`` False) or did not say (see ``Store.checkpoint``)."""
        self._next_read = 0.0 if waiting else time.monotonic() + _INBOX_RECHECK

    async def _read_inbox(self) -> list[InboxMessage]:
        """What reached the instance meanwhile (an event, a termination, a queued activity's
        result). It is read at once after a commit that says a message may wait; an inbox seen
        empty, by a read or by the store as a checkpoint committed, is read again after
        ``_INBOX_RECHECK`` seconds at the earliest: that is about how late a held instance may
        hear of a message (plus the time a commit takes), while a chain of fast steps does not
        pay a read per step.

        A read that fails is tried again after ``_INBOX_POLL`` seconds: the instance stays
        held, and its activities run on (letting it go would have them run a second time
        elsewhere while they still run here); if the store is down, the next commit fails
        and the instance is retried as any other."""
        if time.monotonic() < self._next_read:
            return []
        try:
            messages = await self.worker.store.read_inbox(self.item, self.worker.clock.now())
        except Exception as exc:
            log.warning(
                "could not read the inbox of %s (%s); trying again in %.0f s",
                self.item.instance_id,
                exc,
                _INBOX_POLL,
            )
            self._next_read = time.monotonic() + _INBOX_POLL
            return []
        if not messages:
            self._next_read = time.monotonic() + _INBOX_RECHECK
        return messages

    def cancel(self) -> None:
        # A sync activity already running on its thread finishes there; its result is dropped.
        with self._lock:
            self._closed = True
            tasks = [*self.running.values(), *self._in_threads.values()]
        for task in tasks:
            task.cancel()


_INBOX_RECHECK = 0.02
# How often an instance held for activities that take long reads its inbox meanwhile.
_INBOX_POLL = 1.0


async def poll_held(worker: Worker) -> None:
    """Until cancelled: have the instances that ``worker`` holds for activities that take long
    read their inboxes every ``_INBOX_POLL`` seconds or so. One timer for all of them: a
    timer per wait would cost every step of a chain."""
    while True:
        await asyncio.sleep(_INBOX_POLL / 4)
        now = time.monotonic()
        for held in list(worker.held_waiting):
            held.poll(now)


def _nothing() -> None:
    """The call of the placeholder job of an activity its thread runs itself."""
