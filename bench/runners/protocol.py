"""What every runner shares: its command line, its one result line, and small measurements.

Standard library only: this module is imported inside the peers' environments too.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import traceback
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

RESULT_PREFIX = "BENCH-RESULT "
REPO_ROOT = Path(__file__).resolve().parents[2]

Metrics = dict[str, float]


@dataclass
class Run:
    """One repeat of one workload, as the driver asked for it."""

    system: str
    workload: str
    params: dict[str, Any]
    store: str
    workdir: Path
    deadline: float  # time.monotonic() after which the runner should give up
    notes: list[str] = field(default_factory=list)

    def remaining(self) -> float:
        """Seconds left before the deadline (at least a little, so waits can still fail)."""
        return max(self.deadline - time.monotonic(), 0.1)

    def note(self, text: str) -> None:
        self.notes.append(text)


WorkloadFunc = Callable[[Run], Metrics]


class Workloads:
    """The workloads one runner implements: ``@workloads("A")`` on a function of a ``Run``.

    Adding a workload to a runner is one decorated function; the driver asks each runner
    for its list (``--list``) and shows the others as "n/a" (or "not yet" for durafn).
    """

    def __init__(self) -> None:
        self.functions: dict[str, WorkloadFunc] = {}
        self.not_applicable: dict[str, str] = {}
        # Versions of what the runner used besides Python packages (e.g. a server binary).
        self.versions: dict[str, str] = {}

    def __call__(self, workload_id: str) -> Callable[[WorkloadFunc], WorkloadFunc]:
        def register(func: WorkloadFunc) -> WorkloadFunc:
            self.functions[workload_id] = func
            return func

        return register

    def none(self, key: str, reason: str) -> None:
        """Declare that this engine has no equivalent of a workload (``"F"``) or of some of its
        metrics (``"E.http"``: those whose key starts with ``http_``), with the reason shown in
        the report."""
        self.not_applicable[key] = reason

    def serve(self) -> NoReturn:
        """Run as the runner's main program and exit at once with its status.

        ``os._exit``: a workflow stopped at its time limit may leave an engine's worker
        threads running, and an ordinary exit would wait for them. Everything the workload
        opened has been closed by then, and the result line is flushed.
        """
        status = self.main()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)

    def main(self, argv: Sequence[str] | None = None) -> int:
        parser = argparse.ArgumentParser(description=__doc__)
        parser.add_argument("--list", action="store_true", help="print the workloads as JSON")
        parser.add_argument("--system")
        parser.add_argument("--workload")
        parser.add_argument("--params", default="{}")
        parser.add_argument("--store", default="")
        parser.add_argument("--workdir", default=".")
        parser.add_argument("--timeout", type=float, default=600.0)
        args = parser.parse_args(argv)
        if args.list:
            listing = {"workloads": sorted(self.functions), "not_applicable": self.not_applicable}
            print(json.dumps(listing))
            return 0
        run = Run(
            system=args.system,
            workload=args.workload,
            params=json.loads(args.params),
            store=args.store,
            workdir=Path(args.workdir),
            deadline=time.monotonic() + args.timeout,
        )
        # The driver stops a runner with SIGTERM: unwind so the finally blocks stop servers.
        signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        started = time.perf_counter()
        try:
            metrics = self.functions[run.workload](run)
        except BaseException as exc:
            emit(
                {
                    "ok": False,
                    "error": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=8),
                    "notes": run.notes,
                    "seconds": time.perf_counter() - started,
                }
            )
            return 1
        emit(
            {
                "ok": True,
                "metrics": metrics,
                "notes": run.notes,
                "seconds": time.perf_counter() - started,
                "versions": {**versions(), **self.versions},
            }
        )
        return 0


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def emit(result: dict[str, Any]) -> None:
    """Print the one result line the driver reads."""
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


def versions() -> dict[str, str]:
    """Versions of the packages that matter, as installed in this environment."""
    from importlib import metadata

    found = {"python": sys.version.split()[0]}
    for name in ("durafn", "dbos", "sqlalchemy", "restate-sdk", "hypercorn", "psycopg"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


# ---------------------------------------------------------------------- measurements


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else float("inf")


def latency_metrics(prefix: str, samples: Sequence[float]) -> Metrics:
    """p50 and p99 in milliseconds of ``samples`` given in seconds."""
    ordered = sorted(samples)
    p99_index = min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))
    return {
        f"{prefix}_p50_ms": statistics.median(ordered) * 1000,
        f"{prefix}_p99_ms": ordered[p99_index] * 1000,
    }


def step_time_metrics(stamps: Sequence[float], done: int, window: int = 100) -> Metrics:
    """Per-step time over the first and the last ``window`` steps of a sequential chain.

    ``stamps`` are the wall-clock times at which the steps ran, in order: all of them, or the
    first and the last ``window + 1``; ``done`` is how many steps ran.
    """
    if len(stamps) < window + 1:
        raise RuntimeError(f"only {len(stamps)} steps ran; need {window + 1} to measure")
    first = (stamps[window] - stamps[0]) / window
    last = (stamps[-1] - stamps[-window - 1]) / window
    return {
        "first100_ms_per_step": first * 1000,
        "last100_ms_per_step": last * 1000,
        "last_over_first": last / first if first > 0 else float("inf"),
        "steps_done": float(done),
    }


def peak_rss_mib(pid: int) -> float:
    """The peak resident set size (VmHWM) of a live process, in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


# ---------------------------------------------------------------------- processes and ports


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout} s")


def wait_for_http(url: str, timeout: float, process: subprocess.Popen[Any] | None = None) -> None:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=1) as answer:
                if answer.status < 500:
                    return
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer after {timeout} s ({last})")


def start_process(
    args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start a helper process (server, worker) with its output in ``log_path``.

    It stays in the runner's process group, so the driver's kill of the group reaches it.
    """
    log = log_path.open("ab")
    return subprocess.Popen(
        list(args),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
    )


def stop_process(process: subprocess.Popen[Any], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
