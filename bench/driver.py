"""Runs one repeat of one workload on one system: a runner process in the system's environment.

Each repeat gets a fresh temp directory (SQLite files, Restate's data, logs) and, on PostgreSQL,
a fresh database dropped afterwards. A runner lives in a process group of its own: on a time
limit, an error or Ctrl-C the whole group (runner, servers, workers) is stopped.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.runners.protocol import RESULT_PREFIX
from bench.systems import REPO_ROOT, System
from bench.workloads import Workload

# Seconds a runner gets beyond its own time limit to report before it is killed.
KILL_MARGIN = 30.0


@dataclass(frozen=True)
class Listing:
    """What one system's runner implements."""

    workloads: frozenset[str]
    not_applicable: dict[str, str]


def list_workloads(system: System, env: dict[str, str] | None = None) -> Listing:
    answer = subprocess.run(
        [str(system.python), "-m", system.runner, "--list"],
        cwd=REPO_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if answer.returncode != 0:
        raise RuntimeError(f"{system.name}: the runner does not load: {answer.stderr[-1500:]}")
    listing = json.loads(answer.stdout.strip().splitlines()[-1])
    return Listing(frozenset(listing["workloads"]), listing["not_applicable"])


@contextmanager
def durafn_tree(ref: str | None) -> Iterator[dict[str, str]]:
    """The environment that makes durafn's runners import durafn as committed at ``ref``
    (``git archive`` of ``src/`` into a temp dir, first on ``PYTHONPATH``); nothing for None.

    Measures a commit while the working tree is being edited, or before/after a change.
    """
    if ref is None:
        yield {}
        return
    tree = Path(tempfile.mkdtemp(prefix="durafn-bench-tree-"))
    try:
        archive = subprocess.run(
            ["git", "archive", ref, "src"], cwd=REPO_ROOT, capture_output=True, check=False
        )
        if archive.returncode != 0:
            raise ValueError(f"git archive {ref}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
        yield {"PYTHONPATH": str(tree / "src")}
    finally:
        shutil.rmtree(tree, ignore_errors=True)


class Postgres:
    """Fresh databases on one server, for one run each."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url

    def unreachable(self) -> str | None:
        import psycopg

        try:
            psycopg.connect(self.admin_url, connect_timeout=3).close()
        except psycopg.OperationalError as exc:
            return f"no PostgreSQL server at {self.admin_url}: {str(exc).strip()}"
        return None

    @contextmanager
    def fresh_database(self) -> Iterator[str]:
        import psycopg

        name = f"durafn_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(self.admin_url)._replace(path=f"/{name}"))
        finally:
            with psycopg.connect(self.admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def _store(system: System, workdir: Path, postgres: Postgres) -> Iterator[str]:
    if system.store == "postgres":
        with postgres.fresh_database() as url:
            yield _with_query(url, system.query)
    elif system.store == "sqlite":
        yield _with_query(f"sqlite:///{workdir / 'hub.db'}", system.query)
    else:
        yield ""


def _with_query(url: str, query: str) -> str:
    if not query:
        return url
    return f"{url}{'&' if '?' in url else '?'}{query}"


def run_once(
    system: System,
    workload: Workload,
    quick: bool,
    postgres: Postgres,
    env: dict[str, str] | None = None,
) -> dict[str, Any]:
    """One repeat; returns the runner's result (``ok``, ``metrics`` or ``error``, ``notes``).

    ``env`` is added to the runner's environment (``PYTHONPATH`` of another durafn tree).
    """
    limit = workload.limit(quick)
    workdir = Path(tempfile.mkdtemp(prefix=f"durafn-bench-{system.name}-{workload.id}-"))
    started = time.perf_counter()
    try:
        with _store(system, workdir, postgres) as store:
            command = [str(system.python), "-m", system.runner]
            command += ["--system", system.name, "--workload", workload.id]
            command += ["--params", json.dumps(workload.params(quick)), "--store", store]
            command += ["--workdir", str(workdir), "--timeout", str(limit)]
            result = _run_runner(command, workdir, limit + KILL_MARGIN, env)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    result.setdefault("seconds", time.perf_counter() - started)
    return result


def _run_runner(
    command: list[str], workdir: Path, timeout: float, env: dict[str, str] | None
) -> dict[str, Any]:
    stderr_path = workdir / "runner.stderr"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, **(env or {})},
        )
        timed_out = False
        try:
            stdout, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            stop_group(process)
            stdout, _ = process.communicate()
        except BaseException:
            stop_group(process)
            raise
        finally:
            # Helpers (servers, workers) left behind by a runner that exited go too.
            _kill_group(process.pid, signal.SIGKILL)
    for line in reversed(stdout.decode(errors="replace").splitlines()):
        if line.startswith(RESULT_PREFIX):
            result: dict[str, Any] = json.loads(line[len(RESULT_PREFIX) :])
            if not result.get("ok"):
                result["stderr_tail"] = _tail(stderr_path)
                if timed_out:  # what it reported is how it died when it was stopped
                    result["error"] = f"timeout: stopped after {timeout:.0f} s ({result['error']})"
            return result
    if timed_out:
        error = f"timeout: stopped after {timeout:.0f} s"
    else:
        error = f"the runner exited with {process.returncode} without a result"
    return {"ok": False, "error": error, "stderr_tail": _tail(stderr_path)}


def stop_group(process: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM to the runner's whole process group, SIGKILL after ``grace`` seconds."""
    _kill_group(process.pid, signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.wait(grace)
    _kill_group(process.pid, signal.SIGKILL)
    process.wait()


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _tail(path: Path, size: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-size:]
    except OSError:
        return ""
