"""``durafn new``: scaffold a project with an HTTP starter, an orchestrator, activities and tests.

The files come from ``templates/_common`` and ``templates/<template>`` (package data). Every
template file ends in ``.tmpl``, so that no tool takes it for code of durafn itself; the suffix
is dropped on the way out, and a leading ``dot-`` becomes ``.`` (``dot-gitignore.tmpl`` →
``.gitignore``). The only templating is ``{{name}}`` substitution.
"""

from __future__ import annotations

import json
import re
import textwrap
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from importlib.resources.abc import Traversable
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit
from urllib.request import url2pathname

import click

import durafn

TEMPLATES = ("hello", "fan-out", "human-interaction", "monitor")
COMMON = "_common"
SUFFIX = ".tmpl"
DOT_PREFIX = "dot-"

_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_]+)\s*\}\}")


@dataclass(frozen=True)
class DurafnSource:
    """Where a generated project installs durafn from.

    ``requirement`` is the line(s) of ``requirements.txt``; ``explanation`` a README paragraph.
    """

    requirement: str
    explanation: str


def locate_durafn() -> DurafnSource:
    """How a new project should require the durafn this command runs from.

    durafn is not on PyPI, so a bare ``durafn`` requirement would fail, or worse, install
    somebody else's package of that name. In order:

    1. durafn runs from a source checkout (an editable install, or ``src`` on the path):
       require that directory, ``durafn @ file:///...``;
    2. the installed distribution records a direct URL (``direct_url.json``, PEP 610): a local
       directory or wheel that still exists, a VCS URL pinned to its commit, or an archive URL;
    3. otherwise durafn came from a package index: ``durafn>=<this version>``.
    """
    checkout = _source_checkout()
    if checkout is not None:
        return _local(checkout, "the durafn checkout")
    recorded = _recorded_direct_url()
    if recorded is not None:
        return recorded
    version = _installed_version()
    return DurafnSource(
        requirement=f"durafn>={version}" if version else "durafn",
        explanation=(
            "`requirements.txt` installs durafn from your package index "
            "(the version `durafn new` ran with, or newer)."
        ),
    )


def _source_checkout() -> Path | None:
    """The root of the source tree of the running durafn (``<root>/src/durafn``), if any."""
    package_dir = Path(durafn.__file__).resolve().parent
    root = package_dir.parent.parent
    if package_dir.parent.name != "src":
        return None
    try:
        project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return root if project.get("project", {}).get("name") == "durafn" else None


def _recorded_direct_url() -> DurafnSource | None:
    try:
        text = metadata.distribution("durafn").read_text("direct_url.json")
        recorded = json.loads(text) if text else None
        url = recorded["url"] if isinstance(recorded, dict) else None
    except (metadata.PackageNotFoundError, ValueError, KeyError):
        return None
    if not isinstance(url, str):
        return None
    vcs_info = recorded.get("vcs_info") if isinstance(recorded, dict) else None
    if isinstance(vcs_info, dict):
        commit = vcs_info.get("commit_id")
        pinned = f"{vcs_info.get('vcs', 'git')}+{url}" + (f"@{commit}" if commit else "")
        return DurafnSource(
            requirement=f"durafn @ {pinned}",
            explanation=f"`requirements.txt` installs durafn from `{pinned}`.",
        )
    if url.startswith("file:"):
        path = Path(url2pathname(urlsplit(url).path))
        return _local(path, "the copy of durafn") if path.exists() else None
    return DurafnSource(
        requirement=f"durafn @ {url}",
        explanation=f"`requirements.txt` installs durafn from `{url}`.",
    )


def _local(path: Path, what: str) -> DurafnSource:
    uri = path.resolve().as_uri()
    return DurafnSource(
        requirement=(
            f"# durafn is not on PyPI: this installs it from {path}, {what} that\n"
            "# `durafn new` ran from. On another machine, point it at your copy of durafn:\n"
            "# durafn @ file:///path/to/durafn\n"
            f"durafn @ {uri}"
        ),
        explanation=(
            f"durafn is not on PyPI: `requirements.txt` installs it from `{path}`, {what} "
            "this project was created with (the line `durafn @ "
            f"{uri}`). To use another copy, or on another machine, change that line to "
            "`durafn @ file:///path/to/durafn`, or run `pip install /path/to/durafn` before "
            "`pip install -r requirements.txt`."
        ),
    )


def _installed_version() -> str | None:
    try:
        return metadata.version("durafn")
    except metadata.PackageNotFoundError:
        return None


def render(text: str, values: Mapping[str, str]) -> str:
    """``text`` with every ``{{name}}`` replaced by ``values[name]``.

    Raises ``KeyError`` for a name without a value: a template must not ship a stray marker.
    """

    def value_of(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {{{{{name}}}}} has no value")
        return values[name]

    return _PLACEHOLDER.sub(value_of, text)


def template_files(template: str) -> dict[PurePosixPath, str]:
    """The files of a project from ``template``: output path → unrendered text.

    The template's own files win over the common ones of the same name.
    """
    root = resources.files("durafn.cli").joinpath("templates")
    files: dict[PurePosixPath, str] = {}
    for folder in (COMMON, template):
        for relative, entry in _walk(root.joinpath(folder), PurePosixPath()):
            files[relative] = entry.read_text(encoding="utf-8")
    return files


def _walk(
    folder: Traversable, prefix: PurePosixPath
) -> Iterator[tuple[PurePosixPath, Traversable]]:
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.is_dir():
            yield from _walk(entry, prefix / entry.name)
        elif entry.name.endswith(SUFFIX):
            name = entry.name.removesuffix(SUFFIX)
            if name.startswith(DOT_PREFIX):
                name = "." + name.removeprefix(DOT_PREFIX)
            yield prefix / name, entry


def scaffold(
    target: Path, template: str, project_name: str, source: DurafnSource
) -> list[PurePosixPath]:
    """Write the project's files into ``target`` (created if needed); return their paths.

    Everything is rendered before anything is written, so a broken template leaves no
    half-made project behind.
    """
    values = {
        "project_name": project_name,
        "durafn_requirement": source.requirement,
        "durafn_source": textwrap.fill(
            source.explanation, width=95, break_long_words=False, break_on_hyphens=False
        ),
    }
    rendered = {path: render(text, values) for path, text in template_files(template).items()}
    for relative, text in rendered.items():
        destination = target.joinpath(*relative.parts)
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_text(text, encoding="utf-8")
    return sorted(rendered)


def _validate_name(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not _NAME.fullmatch(value):
        raise click.BadParameter(
            f"{value!r} is not a valid project name: it names a directory, so it must start "
            "with a letter and hold only letters, digits, '-' and '_' (at most 64 characters)"
        )
    return value


@click.command()
@click.argument("name", callback=_validate_name)
@click.option(
    "--template",
    "-t",
    type=click.Choice(TEMPLATES),
    default="hello",
    show_default=True,
    help="hello: function chaining; fan-out: parallel activities; human-interaction: "
    "an approval raced against a timer; monitor: polling on a durable timer.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into NAME even if it is a non-empty directory (same-named files are replaced).",
)
def new(name: str, template: str, force: bool) -> None:
    """Create a durafn project in the directory NAME.

    It holds function_app.py (an HTTP starter, an orchestrator and its activities), a test
    on durafn's virtual clock, a README with the commands to run both, and requirements.txt.
    """
    target = Path(name)
    if target.exists() and not target.is_dir():
        raise click.ClickException(f"{name} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()) and not force:
        raise click.ClickException(
            f"directory {name}/ exists and is not empty; choose another NAME, or pass --force "
            "to write the project into it (files with the same names are replaced)"
        )
    written = scaffold(target, template, name, locate_durafn())
    click.echo(f"Created {name}/ from the {template} template:")
    for relative in written:
        click.echo(f"  {name}/{relative}")
    click.echo(
        f"\nNext (see {name}/README.md):\n"
        f"  cd {name}\n"
        "  python3 -m venv .venv\n"
        "  . .venv/bin/activate\n"
        "  pip install -r requirements.txt\n"
        "  pytest\n"
        "  durafn start"
    )
