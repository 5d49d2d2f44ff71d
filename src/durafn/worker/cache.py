"""The sticky replay cache: live executors kept between episodes, least recently used first out."""

from __future__ import annotations

from collections import OrderedDict

from durafn.executor.orchestration import OrchestrationExecutor


class ExecutorCache:
    """Keeps up to ``capacity`` executors by instance id.

    An entry is valid only for the execution and history length it was left at: if anyone else
    advanced the instance meanwhile, :meth:`take` misses and the worker replays from the store.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, tuple[str, OrchestrationExecutor]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def take(
        self, instance_id: str, execution_id: str, history_length: int
    ) -> OrchestrationExecutor | None:
        entry = self._entries.pop(instance_id, None)
        if entry is not None:
            cached_execution, executor = entry
            if cached_execution == execution_id and len(executor.history) == history_length:
                self.hits += 1
                return executor
        self.misses += 1
        return None

    def put(self, instance_id: str, execution_id: str, executor: OrchestrationExecutor) -> None:
        if self.capacity <= 0:
            return
        self._entries[instance_id] = (execution_id, executor)
        self._entries.move_to_end(instance_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def discard(self, instance_id: str) -> None:
        self._entries.pop(instance_id, None)

    def __len__(self) -> int:
        return len(self._entries)
