"""``durafn entities ...`` run as real processes against a SQLite file, a worker in this process."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import durafn as df

sys.path.insert(0, str(Path(__file__).parent / "apps"))
import entity_app

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]


def durafn(*args: str, store: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args, "--store", store],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def runtime(store_url: str) -> Iterator[df.Runtime]:
    with df.Runtime(entity_app.app, store=store_url) as rt:
        yield rt


def test_signal_show_list_and_clean(
    runtime: df.Runtime, store_url: str, wait_until: Callable[..., Any]
) -> None:
    done = durafn("entities", "signal", "Counter", "a", "add", "--input", "5", store=store_url)
    assert done.returncode == 0, done.stderr
    assert "Signal 'add' queued for entity counter/a" in done.stderr
    wait_until(lambda: runtime.client.read_entity_state(df.EntityId("counter", "a")).entity_exists)
    shown = durafn("entities", "show", "counter", "a", store=store_url)
    assert shown.returncode == 0 and shown.stdout.strip() == "5"
    durafn("entities", "signal", "counter", "b", "add", "--input", "1", store=store_url)
    wait_until(lambda: len(runtime.client.get_entities().entities) == 2)

    listed = durafn("entities", "list", "--json", store=store_url)
    document = json.loads(listed.stdout)
    assert {(e["entityId"]["key"], e["state"]) for e in document["entities"]} == {
        ("a", 5),
        ("b", 1),
    }
    assert document["continuationToken"] is None
    table = durafn("entities", "list", "--name", "counter", store=store_url)
    assert table.returncode == 0
    assert "counter" in table.stdout and "last operation (UTC)" in table.stdout

    durafn("entities", "signal", "counter", "b", "delete", store=store_url)
    wait_until(lambda: len(runtime.client.get_entities().entities) == 1)
    cleaned = durafn("entities", "clean", "--json", store=store_url)
    assert json.loads(cleaned.stdout) == {"emptyEntitiesRemoved": 1, "orphanedLocksReleased": 0}


def test_errors_are_one_line(runtime: df.Runtime, store_url: str) -> None:
    missing = durafn("entities", "show", "counter", "nobody", store=store_url)
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error: entity counter/nobody has no state (never set, or deleted)"
    )
    bad = durafn("entities", "signal", "a@b", "k", "add", store=store_url)
    assert bad.returncode == 2 and "must not contain '@'" in bad.stderr
    both = durafn(
        "entities", "signal", "c", "k", "add", "--delay", "1", "--at", "2030-01-01", store=store_url
    )
    assert both.returncode == 2 and "--at or --delay" in both.stderr
