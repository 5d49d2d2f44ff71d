"""``python -m bench``: run the workloads on durafn and its peers, print one table, save JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.driver import Postgres, durafn_tree, list_workloads, run_once
from bench.report import Results, footnotes, main_table, targets_table
from bench.systems import PEERS, REPO_ROOT, System, select
from bench.workloads import BY_ID, WORKLOADS, Workload

DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
# A repeat longer than this is not repeated: its size already averages out the noise.
LONG_REPEAT_SECONDS = 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run the performance workloads on durafn (SQLite, PostgreSQL), DBOS and "
        "Restate; print medians, ratios and targets; write the raw results as JSON.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat: a smoke run")
    parser.add_argument(
        "--only",
        default=",".join(w.id for w in WORKLOADS),
        help="workloads to run, e.g. A,C2 (default: all)",
    )
    parser.add_argument(
        "--peers",
        default=",".join(PEERS),
        help="engines (durafn, dbos, restate) or single systems (dbos-wal, durafn-sqlite, ...)",
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="repeats per workload (default 3; quick 1)"
    )
    parser.add_argument(
        "--include-slow",
        action="store_true",
        help="also run the peers' and PostgreSQL's F (100,000 activities; minutes each)",
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("DURAFN_BENCH_POSTGRES", DEFAULT_POSTGRES),
        help="server where fresh databases are created and dropped "
        "(default: $DURAFN_BENCH_POSTGRES or %(default)s)",
    )
    parser.add_argument(
        "--durafn-ref",
        default=None,
        help="measure durafn as committed at this git ref (default: the working tree)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=REPO_ROOT / "bench" / "results",
        help="where the JSON goes (default: bench/results)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM and SIGHUP stop the bench like Ctrl-C: every process it started, its databases.
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    try:
        systems = select([p.strip() for p in args.peers.split(",") if p.strip()])
        workloads = _workloads(args.only)
    except ValueError as exc:
        print(f"python -m bench: {exc}", file=sys.stderr)
        return 2
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    if repeats < 1:
        print("python -m bench: --repeats must be at least 1", file=sys.stderr)
        return 2
    if args.durafn_ref is not None and not _git_ref_exists(args.durafn_ref):
        print(f"python -m bench: no commit {args.durafn_ref!r} in this repository", file=sys.stderr)
        return 2
    results = Results(systems, workloads, durafn_ref=args.durafn_ref)
    started_at = dt.datetime.now(dt.UTC)
    started = time.monotonic()
    postgres = Postgres(args.postgres)
    interrupted = False
    try:
        with durafn_tree(args.durafn_ref) as durafn_env:
            plan = _plan(results, postgres, args.include_slow, durafn_env)
            _log(f"{'quick' if args.quick else 'full'} run, up to {repeats} repeat(s):")
            for workload in workloads:
                names = [s.name for s in plan.get(workload.id, [])]
                _log(f"  {workload.describe(args.quick)} on {', '.join(names) or 'nothing'}")
            _execute(results, plan, repeats, args.quick, postgres, durafn_env)
    except KeyboardInterrupt:
        interrupted = True
        _log("interrupted: every process the bench started is stopped; partial results follow")
    verdicts = results.verdicts()
    table, targets, notes = main_table(results), targets_table(verdicts), footnotes(results)
    machine = _machine()
    print(
        f"\ndurafn bench, {'quick' if args.quick else 'full'} run of {started_at:%Y-%m-%d %H:%M} "
        f"UTC, {machine['cpus']} CPUs, load average {machine['load_average'][0]:.1f} at the end"
    )
    versions = _versions(results)
    print("versions: " + ", ".join(f"{name} {value}" for name, value in versions.items()))
    if args.quick:
        print("Quick run: small sizes, one repeat; the targets are meant for the full sizes.")
    print(f"\n{table}\n")
    print(
        "ratio xP: how many times better durafn is than P (rates: durafn ÷ P; times: P ÷ "
        "durafn); above 1 durafn is ahead. Medians over repeats.\n"
    )
    print(f"Performance targets:\n\n{targets}\n")
    if notes:
        print("\n".join(f"- {line}" for line in notes) + "\n")
    document = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(time.monotonic() - started, 1),
        "mode": "quick" if args.quick else "full",
        "interrupted": interrupted,
        "command": ["python", "-m", "bench", *(argv if argv is not None else sys.argv[1:])],
        "repeats": repeats,
        "machine": machine,
        "git": _git(args.durafn_ref),
        "systems": [s.name for s in systems],
        "versions": versions,
        "workloads": {w.id: {"title": w.title, "params": w.params(args.quick)} for w in workloads},
        "runs": results.runs,
        "medians": results.medians(),
        "unmeasured": {f"{s}/{w}": cell for (s, w), cell in results.unmeasured.items()},
        "targets": [
            {
                "workload": v.target.workload,
                "store": v.target.where,
                "target": v.target.text,
                "measured": v.measured,
                "verdict": v.verdict,
            }
            for v in verdicts
        ],
        "table_markdown": table,
        "targets_markdown": targets,
        "notes": notes,
    }
    path = _write(document, args.results_dir, started_at, args.quick)
    print(f"raw results: {path}  ({document['duration_s']:.0f} s)")
    if interrupted:
        return 130
    return 1 if any(not run.get("ok") for run in results.runs) else 0


def _versions(results: Results) -> dict[str, str]:
    """What was measured: the engines' versions as their runners reported them."""
    found: dict[str, str] = {}
    for run in results.runs:
        for name, value in run.get("versions", {}).items():
            if name != "python":
                found.setdefault(name, value)
    if "durafn" in found:
        ref = results.durafn_ref or "HEAD"
        tree = "" if results.durafn_ref else "working tree of "
        found["durafn"] += f" ({tree}{ref} {_git_output('rev-parse', '--short', ref)})"
    return found


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _workloads(only: str) -> list[Workload]:
    ids = [w.strip().upper() for w in only.split(",") if w.strip()]
    unknown = [w for w in ids if w not in BY_ID]
    if unknown:
        raise ValueError(
            f"unknown workload(s) {', '.join(unknown)}; choose from {', '.join(BY_ID)}"
        )
    return [w for w in WORKLOADS if w.id in ids]


def _plan(
    results: Results, postgres: Postgres, include_slow: bool, durafn_env: dict[str, str]
) -> dict[str, list[System]]:
    """Which systems run which workload; the others get their cell text and reason."""
    plan: dict[str, list[System]] = {}
    pg_problem = (
        postgres.unreachable() if any(s.store == "postgres" for s in results.systems) else None
    )
    for system in results.systems:
        problem = system.missing_environment()
        cell = "no env"
        if problem is None and system.store == "postgres" and pg_problem:
            problem, cell = pg_problem, "no server"
        if problem is None:
            try:
                listing = list_workloads(system, _env(system, durafn_env))
            except RuntimeError as exc:
                problem, cell = str(exc), "failed"
        if problem is not None:
            for workload in results.workloads:
                results.unmeasured[(system.name, workload.id)] = cell
                results.reasons[(system.name, workload.id)] = problem
            continue
        for key, reason in listing.not_applicable.items():
            if "." in key:
                results.not_applicable[(system.name, key)] = reason
        for workload in results.workloads:
            where = (system.name, workload.id)
            if workload.id not in listing.workloads:
                if system.peer == "durafn":
                    results.unmeasured[where] = "not yet"
                    results.reasons[where] = workload.pending
                else:
                    results.unmeasured[where] = "n/a"
                    results.reasons[where] = listing.not_applicable.get(
                        workload.id, "no equivalent"
                    )
            elif workload.id in system.slow and not include_slow:
                results.unmeasured[where] = "skipped"
                results.reasons[where] = system.slow[workload.id]
            else:
                plan.setdefault(workload.id, []).append(system)
    return plan


def _execute(
    results: Results,
    plan: dict[str, list[System]],
    repeats: int,
    quick: bool,
    postgres: Postgres,
    durafn_env: dict[str, str],
) -> None:
    """Repeats interleave the systems, so that noise on the machine spreads over all of them."""
    total = sum(len(plan.get(w.id, [])) * (repeats if w.repeated else 1) for w in results.workloads)
    done = 0
    for workload in results.workloads:
        rounds = repeats if workload.repeated else 1
        long_ones: set[str] = set()
        for repeat in range(1, rounds + 1):
            for system in plan.get(workload.id, []):
                if system.name in long_ones:
                    continue
                done += 1
                result = run_once(system, workload, quick, postgres, _env(system, durafn_env))
                result.update(system=system.name, workload=workload.id, repeat=repeat)
                results.runs.append(result)
                _log(f"[{done}/{total}] {system.name} {workload.id} #{repeat}: {_brief(result)}")
                if repeat == 1 and rounds > 1 and result["seconds"] > LONG_REPEAT_SECONDS:
                    long_ones.add(system.name)
                    notes = result.setdefault("notes", [])
                    notes.append(
                        f"ran once: a repeat took {result['seconds']:.0f} s "
                        f"(> {LONG_REPEAT_SECONDS:.0f} s)"
                    )


def _env(system: System, durafn_env: dict[str, str]) -> dict[str, str]:
    return durafn_env if system.peer == "durafn" else {}


def _brief(result: dict[str, Any]) -> str:
    if not result.get("ok"):
        return f"FAILED {result.get('error')}"
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in result["metrics"].items())
    return f"{metrics} ({result['seconds']:.1f} s)"


def _log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average": os.getloadavg(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["memory_mib"] = int(line.split()[1]) // 1024
                break
    except OSError:
        pass
    return info


def _git_ref_exists(ref: str) -> bool:
    answer = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=False,
    )
    return answer.returncode == 0


def _git(durafn_ref: str | None) -> dict[str, Any]:
    if durafn_ref is not None:
        return {"durafn_ref": durafn_ref, "commit": _git_output("rev-parse", durafn_ref)}
    return {
        "commit": _git_output("rev-parse", "HEAD"),
        # durafn was measured from the working tree: were its sources edited since the commit?
        "src_changed": bool(_git_output("status", "--porcelain", "--", "src")),
    }


def _git_output(*args: str) -> str:
    answer = subprocess.run(
        ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False
    )
    return answer.stdout.strip()


def _write(document: dict[str, Any], directory: Path, started: dt.datetime, quick: bool) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{started:%Y%m%dT%H%M%SZ}-{'quick' if quick else 'full'}.json"
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=1, default=str) + "\n")
    temporary.replace(path)
    return path
