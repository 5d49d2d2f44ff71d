"""A private event loop on a background thread, so blocking code can call async code."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from durafn.loops import new_event_loop

T = TypeVar("T")


class LoopThread:
    """Runs an event loop on a daemon thread; :meth:`run` blocks until a coroutine finishes.

    Works from plain scripts and from inside a running loop (notebooks), because the
    coroutine never runs on the caller's loop.
    """

    def __init__(self, name: str = "durafn-loop") -> None:
        self.loop = new_event_loop()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError(
                "a blocking durafn call was made from inside its own event loop; "
                "use the AsyncClient there"
            )
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()
