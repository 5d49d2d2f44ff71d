"""Shared helpers of the example tests: where the examples and docs live, and a loader."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


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
