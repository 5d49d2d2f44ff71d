"""More worker processes beside this one: ``durafn worker --processes N``.

One durafn process runs Python on one core at a time. ``--processes N`` starts N - 1 more
``durafn worker`` processes with the same app, store and options, so that one command uses N
cores; they share the work through the store as separately started workers do. The first
process supervises them: it stops them (SIGTERM, then SIGKILL after a grace period) when it
stops itself, and reports any that exits before that.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections.abc import Sequence

log = logging.getLogger("durafn.worker")

# How long a helper process has to finish its in-flight work once asked to stop: its own
# shutdown grace (``WorkerOptions.shutdown_grace``) and then some.
STOP_GRACE = 30.0


class WorkerProcesses:
    """The extra ``durafn worker`` processes of one command, started with ``arguments``."""

    def __init__(self, count: int, arguments: Sequence[str]) -> None:
        self._command = [sys.executable, "-m", "durafn", "worker", *arguments]
        self._count = count
        self.processes: list[subprocess.Popen[bytes]] = []
        self._asked: set[int] = set()

    def start(self) -> None:
        for _ in range(self._count):
            self.processes.append(subprocess.Popen(self._command, stdin=subprocess.DEVNULL))

    async def watch(self, interval: float = 1.0) -> None:
        """Log each helper process that exits while this one runs (it is not restarted)."""
        reported: set[int] = set()
        while True:
            for process in self.processes:
                code = process.poll()
                if code is not None and process.pid not in reported:
                    reported.add(process.pid)
                    log.error("worker process %d exited with %d", process.pid, code)
            await asyncio.sleep(interval)

    def terminate(self) -> None:
        """Ask every helper process still running to stop (it finishes its in-flight work).

        Once: a second SIGTERM could arrive after the process has put its handler away, on its
        way out, and kill it."""
        for process in self.processes:
            if process.pid not in self._asked and process.poll() is None:
                self._asked.add(process.pid)
                process.terminate()

    def wait(self) -> list[int]:
        """Wait for every helper process to end (SIGKILL after ``STOP_GRACE`` seconds);
        returns the exit codes of those that did not stop cleanly. Ended by the SIGTERM this
        process sent counts as clean: one stopping already (Ctrl-C reaches the whole process
        group) may be past its handler when it comes."""
        failed = []
        for process in self.processes:
            try:
                code = process.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
            asked = process.pid in self._asked
            if code != 0 and not (asked and code == -signal.SIGTERM):
                failed.append(code)
        return failed
