"""Every example runs as a script (``python examples/<name>.py``) and prints what its docs say.

Each runs in a fresh temporary directory, so its SQLite file lands there.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

# What each example prints: exact lines, or a compiled pattern where real timing decides a
# number (the monitor's count of checks before it expires).
EXPECTED_OUTPUT: dict[str, list[str | re.Pattern[str]]] = {
    "hello_cities": ["['Hello Tokyo!', 'Hello Seattle!', 'Hello London!']"],
    "async_orchestrator": [
        "['Hello Tokyo!', 'Hello Seattle!', 'Hello London!', 'Hello Lyon!', 'Hello Oslo!']"
    ],
    "process_order": [
        "order A-100: completed, tracking TRK-A-100",
        "order B-200: refunded (refund-pay-B-200), because: no carrier ships to AQ",
    ],
    "fan_out_fan_in": [
        "chaining.txt: 5 words",
        "fan-out.txt: 11 words",
        "intro.txt: 6 words",
        "timers.txt: 5 words",
        "total: 27 words in 4 documents",
    ],
    "human_interaction": [
        "expense-1: approved by alice",
        "expense-2: escalated after 2 s without an answer",
    ],
    "monitor": [
        "render-42: done after 3 checks (custom status: {'checks': 3, 'state': 'done'})",
        re.compile(
            r"stuck-7: expired after (\d) checks "
            r"\(custom status: \{'checks': \1, 'state': 'running'\}\)"
        ),
    ],
    "eternal_counter": [
        "total 15 reached the limit of 15 after 5 executions",
        "the last execution's history holds 5 events",
    ],
    "sub_orchestrations": [
        "site lyon: network 10.4.0.0/24",
        "  cam-1 at 10.4.0.1",
        "  cam-2 at 10.4.0.2",
        "  door-3 at 10.4.0.3",
        "5 instances: the parent and 4 children",
    ],
    "retries": [
        "payment-good: charged 46.00 EUR, receipt-1111-46.00",
        "  fetch_rate ran 3 times (2 failures, then success)",
        "payment-declined: declined: card 0000-0000 declined",
        "  charge_card ran 1 time (a declined card is not retried)",
    ],
}


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py")],
        cwd=cwd, capture_output=True, text=True, timeout=60, check=False,
    )


def test_every_example_has_expected_output() -> None:
    examples = sorted(p.stem for p in EXAMPLES_DIR.glob("*.py"))
    assert examples == sorted(EXPECTED_OUTPUT)


@pytest.mark.parametrize("name", sorted(EXPECTED_OUTPUT))
def test_example_prints_its_result(name: str, tmp_path: Path) -> None:
    done = run_example(name, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    expected = EXPECTED_OUTPUT[name]
    assert len(lines) == len(expected), done.stdout
    for line, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(line), line
        else:
            assert line == want
    # The store is a SQLite file in the working directory.
    assert [p.suffix for p in tmp_path.iterdir() if p.suffix == ".db"] == [".db"]


def test_monitor_expires_after_a_plausible_number_of_checks(tmp_path: Path) -> None:
    # Checks every 0.2 s for 1 s: at most 6 checks, fewer if the machine is slow.
    done = run_example("monitor", tmp_path)
    match = re.search(r"stuck-7: expired after (\d+) checks", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert 2 <= int(match.group(1)) <= 6


def test_examples_can_run_twice_on_the_same_store(tmp_path: Path) -> None:
    # Fixed instance ids of finished instances are reused on the second run.
    for _ in range(2):
        done = run_example("process_order", tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == EXPECTED_OUTPUT["process_order"]
