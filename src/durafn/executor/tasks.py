"""Durable tasks: what orchestrators ``yield`` or ``await``.

A task is completed by the executor when the matching history event is applied. Composite tasks
(``task_all``, ``task_any``) complete from their children.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from typing import Any, Generic, TypeVar

from durafn.core.errors import OrchestrationStateError, TaskFailedError

T = TypeVar("T")


class Task(Generic[T]):
    """A unit of durable work whose result arrives later. ``yield`` it (or ``await`` it)."""

    def __init__(self) -> None:
        self._is_complete = False
        self._result: Any = None
        self._exception: BaseException | None = None
        self._listeners: list[Callable[[Task[Any]], None]] = []

    @property
    def is_complete(self) -> bool:
        return self._is_complete

    @property
    def is_failed(self) -> bool:
        return self._exception is not None

    @property
    def result(self) -> T:
        """The task's value; raises its error if it failed, and if it has not finished yet."""
        if not self._is_complete:
            raise OrchestrationStateError("the task has not completed yet; yield it first")
        if self._exception is not None:
            raise self._exception
        return self._result  # type: ignore[no-any-return]

    @property
    def exception(self) -> BaseException | None:
        return self._exception

    def __await__(self) -> Generator[Task[T], Any, T]:
        value = yield self
        return value  # type: ignore[no-any-return]

    def _complete(self, value: Any) -> None:
        if self._is_complete:
            return
        self._is_complete = True
        self._result = value
        self._notify()

    def _fail(self, exc: BaseException) -> None:
        if self._is_complete:
            return
        self._is_complete = True
        self._exception = exc
        self._notify()

    def _notify(self) -> None:
        listeners, self._listeners = self._listeners, []
        for listener in listeners:
            listener(self)

    def _on_complete(self, listener: Callable[[Task[Any]], None]) -> None:
        if self._is_complete:
            listener(self)
        else:
            self._listeners.append(listener)


class TimerTask(Task[None]):
    """A durable timer. ``cancel()`` makes it never complete (the loser of a ``task_any``)."""

    def __init__(self) -> None:
        super().__init__()
        self.is_cancelled = False

    def cancel(self) -> None:
        """Stop waiting for this timer; its firing is ignored and keeps nothing alive."""
        if not self._is_complete:
            self.is_cancelled = True


class CompositeTask(Task[T]):
    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__()
        for child in children:
            if not isinstance(child, Task):
                raise TypeError(f"task_all/task_any take durafn tasks, got {child!r}")
        self.children = list(children)


class WhenAllTask(CompositeTask[list[Any]]):
    """Completes with every child's result, in order; fails as soon as one child fails."""

    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__(children)
        self._remaining = len(self.children)
        if self._remaining == 0:
            self._complete([])
        for child in self.children:
            child._on_complete(self._child_done)

    def _child_done(self, child: Task[Any]) -> None:
        if self._is_complete:
            return
        if child.exception is not None:
            self._fail(child.exception)
            return
        self._remaining -= 1
        if self._remaining == 0:
            self._complete([c._result for c in self.children])


class WhenAnyTask(CompositeTask[Task[Any]]):
    """Completes with the first child to finish (succeeded or failed); read its ``.result``."""

    def __init__(self, children: Sequence[Task[Any]]) -> None:
        super().__init__(children)
        if not self.children:
            raise ValueError("task_any needs at least one task")
        for child in self.children:
            child._on_complete(self._child_done)

    def _child_done(self, child: Task[Any]) -> None:
        self._complete(child)


class CriticalSection:
    """Entities locked by an orchestration; leaving the ``with`` block releases them."""

    def __init__(self, entities: Sequence[Any], release: Callable[[], None]) -> None:
        self.entities = list(entities)
        self._release = release

    def release(self) -> None:
        """Unlock the entities now (leaving the ``with`` block does it too)."""
        self._release()

    def __enter__(self) -> CriticalSection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._release()


class LockTask(Task[CriticalSection]):
    """The task of ``ctx.lock(...)``: completes with the :class:`CriticalSection` once every
    entity is locked. ``with (yield ctx.lock(a, b)):`` or ``async with ctx.lock(a, b):``."""

    async def __aenter__(self) -> CriticalSection:
        return await self

    async def __aexit__(self, *exc: object) -> None:
        if self.is_complete and self.exception is None:
            self._result.release()


def failed_error(kind: str, name: str, failure: Any) -> TaskFailedError:
    """The error an orchestrator sees for a failed activity or sub-orchestration."""
    return TaskFailedError(
        f"{kind} {name!r} failed: {failure.error_type}: {failure.message}", failure
    )
