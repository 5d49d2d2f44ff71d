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

ExpectedOutput = dict[str, list[str | re.Pattern[str]]]  # see conftest.py


def run_example(name: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py")],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


EXAMPLES = sorted(p.stem for p in EXAMPLES_DIR.glob("*.py"))


def test_every_example_has_expected_output(expected_output: ExpectedOutput) -> None:
    assert sorted(expected_output) == EXAMPLES


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_prints_its_result(
    name: str, tmp_path: Path, expected_output: ExpectedOutput
) -> None:
    done = run_example(name, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    expected = expected_output[name]
    assert len(lines) == len(expected), done.stdout
    for line, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(line), line
        else:
            assert line == want
    # The store is a SQLite file in the working directory.
    assert [p.suffix for p in tmp_path.iterdir() if p.suffix == ".db"] == [".db"]


def test_monitor_expires_after_a_plausible_number_of_checks(tmp_path: Path) -> None:
    # Checks every 0.25 s for 1 s: at most 5 checks, fewer on a slow machine.
    done = run_example("monitor", tmp_path)
    match = re.search(r"stuck-7: expired after (\d+) checks", done.stdout)
    assert match is not None, done.stdout + done.stderr
    assert 2 <= int(match.group(1)) <= 5


def test_examples_can_run_twice_on_the_same_store(
    tmp_path: Path, expected_output: ExpectedOutput
) -> None:
    # Fixed instance ids of finished instances are reused on the second run.
    for _ in range(2):
        done = run_example("process_order", tmp_path)
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines() == expected_output["process_order"]
