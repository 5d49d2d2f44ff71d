"""The event loops durafn creates: uvloop's by default, asyncio's when asked, a clear error else."""

from __future__ import annotations

import asyncio
import sys

import pytest

from durafn.client.portal import LoopThread
from durafn.loops import EVENT_LOOP_ENV_VAR, loop_factory, run

# Not installed on Windows or PyPy (pyproject.toml): asyncio's loop serves there.
uvloop = pytest.importorskip("uvloop")


async def _running_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_durafn_loops_are_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV_VAR, raising=False)
    assert isinstance(run(_running_loop()), uvloop.Loop)
    portal = LoopThread()
    try:
        assert isinstance(portal.loop, uvloop.Loop)
        assert portal.run(_running_loop()) is portal.loop
    finally:
        portal.close()


def test_the_environment_can_choose_asyncio_own_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV_VAR, "asyncio")
    loop = run(_running_loop())
    assert isinstance(loop, asyncio.AbstractEventLoop)
    assert not isinstance(loop, uvloop.Loop)
    portal = LoopThread()
    try:
        assert not isinstance(portal.loop, uvloop.Loop)
        assert portal.run(asyncio.sleep(0, "done")) == "done"
    finally:
        portal.close()


def test_an_unknown_loop_choice_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV_VAR, "trio")
    with pytest.raises(ValueError, match="DURAFN_EVENT_LOOP must be uvloop or asyncio, not 'trio'"):
        loop_factory()


def test_run_returns_the_coroutine_result_and_closes_its_loop() -> None:
    loop = run(_running_loop())
    assert loop.is_closed()
    assert run(asyncio.sleep(0, 42)) == 42


def test_without_uvloop_installed_asyncio_loop_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(EVENT_LOOP_ENV_VAR, raising=False)
    monkeypatch.setitem(sys.modules, "uvloop", None)  # what an import of a missing module sees
    assert loop_factory() is asyncio.new_event_loop
    assert not isinstance(run(_running_loop()), uvloop.Loop)


def test_uvloop_asked_by_name_where_it_is_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(EVENT_LOOP_ENV_VAR, "uvloop")
    assert loop_factory() is uvloop.new_event_loop
    monkeypatch.setitem(sys.modules, "uvloop", None)
    with pytest.raises(ValueError, match="DURAFN_EVENT_LOOP=uvloop, but uvloop is not installed"):
        loop_factory()
