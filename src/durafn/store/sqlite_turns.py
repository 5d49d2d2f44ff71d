"""Turns between the writers of one SQLite file, in any process (see :class:`WriteTurns`)."""

from __future__ import annotations

import logging
import os
import time

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("durafn.store")


class WriteTurns:
    """Lets the writers of several processes on one file take turns without sleeping long.

    SQLite's own lock makes a writer that finds the file locked sleep and try again (after 1,
    2, 5, 10 ms ...), much longer than a commit takes: two worker processes sharing a file then
    ran little faster than one. Once a writer has waited for SQLite's lock while another
    connection (another process, or another store object of this one) had committed, it takes
    an exclusive ``flock`` around each of its write transactions for a while, so the writers
    queue for the file in turn and each tries it again within a fraction of a millisecond of
    the commit before it ending. A writer alone on its file takes no turns (each ``flock`` is a
    system call that gives up the GIL).

    SQLite's locks stay in charge of correctness (other programs, and durafn's schema
    migration, use them alone); turns only order durafn's writers. A writer that waits for its
    turn longer than the store's busy timeout (a process holding it is stopped, say) writes
    without it, under SQLite's lock alone, as does one whose file system has no ``flock`` or
    whose turn file cannot be opened. The lock is on a file of its own beside the database,
    ``<database>-turns``, made the first time it is needed: never a file SQLite opens (closing
    any descriptor of a file drops every POSIX lock the process holds on it, SQLite's included)
    nor one it may make (its ``unix-dotfile`` locking uses ``<database>.lock``). Where
    ``flock`` does not exist (Windows), writers rely on SQLite's lock alone.
    """

    # A BEGIN that took this long may have waited for another writer (SQLite's busy handler
    # sleeps 1 ms first); the writer then asks whether another connection has committed.
    WAITED = 0.001
    # Turns are taken for this long after a writer last met another.
    HOLD = 30.0
    # How soon a writer waiting for its turn looks again, at first and at the longest
    # (seconds). Waiting in flock itself would wake it sooner, but could not time out.
    FIRST_LOOK, LAST_LOOK = 0.00005, 0.0002

    def __init__(self, database: str, timeout: float) -> None:
        self.path = f"{os.path.abspath(database)}-turns"
        self._timeout = timeout
        self._fd: int | None = None
        self._until = 0.0
        self._unusable = fcntl is None

    @property
    def taking(self) -> bool:
        return not self._unusable and time.monotonic() < self._until

    def take(self) -> None:
        """Another writer was met: take turns from now on, for a while."""
        self._until = time.monotonic() + self.HOLD

    def acquire(self) -> bool:
        """Wait for this writer's turn (only while taking turns); False if it writes without."""
        assert fcntl is not None
        try:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            deadline = time.monotonic() + self._timeout
            look = self.FIRST_LOOK
            while True:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    self.take()  # another writer has the turn
                if time.monotonic() > deadline:
                    log.warning(
                        "waited %.0f s for a turn to write (%s); writing without",
                        self._timeout,
                        self.path,
                    )
                    return False
                time.sleep(look)
                look = min(look * 2, self.LAST_LOOK)
        except OSError as exc:  # no flock here (some network file systems), or no file
            log.warning("writers of %s take no turns: %s", self.path, exc)
            self._unusable = True
            return False

    def release(self) -> None:
        if fcntl is not None and self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
