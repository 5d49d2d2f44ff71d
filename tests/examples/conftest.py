"""Shared fixtures of the example tests: what each example prints, and a module loader."""

from __future__ import annotations

import importlib.util
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"

ExpectedOutput = dict[str, list[str | re.Pattern[str]]]

# What each example prints: exact lines, or a compiled pattern where real timing decides a
# number (the monitor's count of checks before it expires). The docs' output blocks are checked
# against it too.
EXPECTED_OUTPUT: ExpectedOutput = {
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
        "history: 1 ExecutionStarted, 1 EventRaised",
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
    "entity_counter": [
        "4 orchestrations added to counter/words: 29 words",
        "entity counter/words exists: True",
    ],
    "bank_transfer": [
        "transfer-1: moved 30 from alice to bob",
        "transfer-2: moved 10 from bob to alice",
        "transfer-3: refused: alice cannot pay 500",
        "alice: 80, bob: 70; total 150",
    ],
    "device_monitor": [
        "dev-1: offline after 3 heartbeats; alert: device dev-1 sent no heartbeat for 1.5 s",
        "dev-2: online after 15 heartbeats",
    ],
}


@pytest.fixture(scope="session")
def expected_output() -> ExpectedOutput:
    """What each example script prints, by example name (``examples/<name>.py``)."""
    return EXPECTED_OUTPUT


@pytest.fixture
def load_example() -> Iterator[Callable[[str], ModuleType]]:
    """Import ``examples/<name>.py`` afresh (new app, new module state) for one test.

    The module is registered in ``sys.modules`` while the test runs, as a normal import would
    do, so that the codec finds the dataclasses it defines; it is removed afterwards.
    """
    loaded: list[str] = []

    def load(name: str) -> ModuleType:
        module_name = f"durafn_example_{name}"
        spec = importlib.util.spec_from_file_location(module_name, EXAMPLES_DIR / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        loaded.append(module_name)
        spec.loader.exec_module(module)
        return module

    yield load
    for module_name in loaded:
        sys.modules.pop(module_name, None)
