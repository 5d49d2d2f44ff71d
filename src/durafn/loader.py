"""Find the user's ``df.App`` from ``module:attribute`` or a path to a ``.py`` file."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

from durafn.app import App


class AppNotFound(Exception):
    """The APP argument names nothing loadable."""


def load_app(spec: str) -> App:
    """Load an app: ``package.module:app``, ``package.module``, ``path/to/file.py[:app]``.

    Without an attribute the module must hold exactly one ``App``.
    """
    target, _, attribute = spec.partition(":")
    if target.endswith(".py") or "/" in target or "\\" in target:
        module = _load_file(Path(target))
    else:
        if str(Path.cwd()) not in sys.path:
            sys.path.insert(0, str(Path.cwd()))
        try:
            module = importlib.import_module(target)
        except ImportError as exc:
            raise AppNotFound(f"cannot import {target!r}: {exc}") from exc
    if attribute:
        app = getattr(module, attribute, None)
        if not isinstance(app, App):
            raise AppNotFound(f"{target!r} has no durafn App named {attribute!r}")
        return app
    apps = [value for value in vars(module).values() if isinstance(value, App)]
    if len(apps) != 1:
        found = "no" if not apps else f"{len(apps)}"
        raise AppNotFound(
            f"{target!r} holds {found} durafn App objects; name one as {target}:attribute"
        )
    return apps[0]


def _load_file(path: Path) -> object:
    if not path.is_file():
        raise AppNotFound(f"no such file: {path}")
    resolved = path.resolve()
    name = resolved.stem
    # The file's folder goes on sys.path so its sibling modules import, and the module is
    # registered under its own name so dataclasses it defines decode back into themselves.
    sys.path.insert(0, str(resolved.parent))
    spec = importlib.util.spec_from_file_location(name, resolved)
    if spec is None or spec.loader is None:
        raise AppNotFound(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
