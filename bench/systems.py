"""The systems measured: durafn on two stores, DBOS on three, Restate; each in its environment."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
ENVS = REPO_ROOT / "bench" / ".envs"
RESTATE_SERVER = (
    ENVS / "restate/node_modules/@restatedev/restate-server-linux-x64/bin/restate-server"
)

# Workloads left out of a run unless --include-slow asks for them, and why: they would take
# minutes each and push a full run well past its ~15 minutes.
_SLOW_F = "minutes at 100,000 activities on this engine; --include-slow runs it"
_SLOW_AS_SHIPPED = (
    "DBOS as shipped (rollback journal) is measured on A, B and E; its C1, C2 and D take "
    "about a minute each (DBOS WAL runs them); --include-slow runs them"
)

_ONE_PROCESS = (
    "a second worker process is measured on the throughput workloads (A, B, C1, C2); "
    "--include-slow runs the rest"
)


@dataclass(frozen=True)
class System:
    name: str  # column key, e.g. "durafn-sqlite"
    peer: str  # family selected by --peers: durafn, dbos, restate
    label: str  # column header
    runner: str  # module run with ``python -m`` from the repository's root
    store: str  # "sqlite" (a file in the run's temp dir), "postgres" (a fresh database), "none"
    slow: dict[str, str] = field(default_factory=dict)
    query: str = ""  # added to the store URL: the relaxed durability modes
    # durafn: ``durafn worker`` processes beside the runner's own (worker and client) process.
    extra_workers: int = 0

    @property
    def python(self) -> Path:
        """The interpreter of this system's environment (durafn: the one running the bench)."""
        if self.peer == "durafn":
            return Path(sys.executable)
        return ENVS / self.peer / "bin" / "python"

    def missing_environment(self) -> str | None:
        """Why this system cannot run here, or None."""
        if not self.python.exists():
            return f"no environment at {self.python.parent.parent} (run bash bench/run.sh)"
        if self.peer == "restate" and not RESTATE_SERVER.exists():
            return f"no restate-server at {RESTATE_SERVER} (run bash bench/run.sh)"
        return None


SYSTEMS: tuple[System, ...] = (
    System("durafn-sqlite", "durafn", "durafn SQLite", "bench.runners.durafn_runner", "sqlite"),
    System(
        "durafn-postgres",
        "durafn",
        "durafn PG",
        "bench.runners.durafn_runner",
        "postgres",
        slow={"F": _SLOW_F},
    ),
    # The relaxed modes: commits not waiting for the disk (docs/concepts.md, "Durability").
    System(
        "durafn-sqlite-relaxed",
        "durafn",
        "durafn SQLite relaxed",
        "bench.runners.durafn_runner",
        "sqlite",
        slow={"F": _SLOW_F},
        query="synchronous=normal",
    ),
    System(
        "durafn-postgres-relaxed",
        "durafn",
        "durafn PG relaxed",
        "bench.runners.durafn_runner",
        "postgres",
        slow={"F": _SLOW_F},
        query="options=-c%20synchronous_commit%3Doff",
    ),
    # Two worker processes on one SQLite file: the runner's and one ``durafn worker``.
    System(
        "durafn-sqlite-2w",
        "durafn",
        "durafn SQLite 2 workers",
        "bench.runners.durafn_runner",
        "sqlite",
        slow={"D": _ONE_PROCESS, "E": _ONE_PROCESS, "F": _SLOW_F, "G": _ONE_PROCESS},
        extra_workers=1,
    ),
    System(
        "dbos-sqlite",
        "dbos",
        "DBOS SQLite",
        "bench.runners.dbos_runner",
        "sqlite",
        slow={"C1": _SLOW_AS_SHIPPED, "C2": _SLOW_AS_SHIPPED, "D": _SLOW_AS_SHIPPED, "F": _SLOW_F},
    ),
    System(
        "dbos-wal",
        "dbos",
        "DBOS WAL",
        "bench.runners.dbos_runner",
        "sqlite",
        slow={"F": _SLOW_F},
    ),
    System(
        "dbos-postgres",
        "dbos",
        "DBOS PG",
        "bench.runners.dbos_runner",
        "postgres",
        slow={"F": _SLOW_F},
    ),
    System(
        "restate", "restate", "Restate", "bench.runners.restate_runner", "none", slow={"F": _SLOW_F}
    ),
)

BY_NAME = {system.name: system for system in SYSTEMS}
PEERS = tuple(dict.fromkeys(system.peer for system in SYSTEMS))

# The ratios the report prints: (durafn system, peer system).
RATIOS: tuple[tuple[str, str], ...] = (
    ("durafn-sqlite", "dbos-sqlite"),
    ("durafn-sqlite", "dbos-wal"),
    ("durafn-sqlite", "restate"),
    ("durafn-postgres", "dbos-postgres"),
)


def select(names: list[str]) -> list[System]:
    """Systems named by peer family (``dbos``) or by system name (``dbos-wal``), in table order."""
    unknown = [name for name in names if name not in PEERS and name not in BY_NAME]
    if unknown:
        choices = ", ".join([*PEERS, *BY_NAME])
        raise ValueError(f"unknown peer(s) {', '.join(unknown)}; choose from {choices}")
    return [s for s in SYSTEMS if s.peer in names or s.name in names]
