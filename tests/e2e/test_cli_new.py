"""``durafn new``: the generated projects pass their own tests and serve their README's flow."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import free_port

import durafn
from durafn.cli import new as new_module

TEMPLATES = ("hello", "fan-out", "human-interaction", "monitor")
REPO = Path(__file__).parents[2]
PROJECT_FILES = {
    ".gitignore",
    "README.md",
    "function_app.py",
    "pyproject.toml",
    "requirements.txt",
    "tests/test_function_app.py",
}
# The lint rules of durafn itself, applied to the generated code from the project's directory.
RUFF_RULES = "E,F,W,I,UP,B,SIM,RUF"


def durafn_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durafn", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def create(tmp_path: Path, template: str, name: str = "demo") -> Path:
    result = durafn_cli("new", name, "--template", template, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / name


def clean_env() -> dict[str, str]:
    """This process's environment without what would steer a child's store or pytest."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DURAFN_", "PYTEST_")) and key != "PYTHONPATH"
    }


@contextmanager
def serving(command: list[str], cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    """Run a ``durafn start`` command until its HTTP port answers; SIGTERM it afterwards and
    require a clean exit (code 0)."""
    log = cwd / "host.log"
    with log.open("w") as output:
        host = subprocess.Popen(
            command,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            env={**clean_env(), "PYTHONUNBUFFERED": "1"},
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if host.poll() is not None:
                    pytest.fail(f"durafn start exited early:\n{log.read_text()}")
                try:
                    httpx.get(f"http://127.0.0.1:{port}/runtime/webhooks/durabletask/instances")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        pytest.fail(f"durafn start did not listen:\n{log.read_text()}")
                    time.sleep(0.1)
            yield host
        finally:
            if host.poll() is None:
                host.send_signal(signal.SIGTERM)
            try:
                host.wait(timeout=30)
            except subprocess.TimeoutExpired:
                host.kill()
                host.wait()
    assert host.returncode == 0, log.read_text()


def follow(status_url: str, timeout: float = 60.0) -> dict[str, Any]:
    """GET the status URL until the instance is finished; return the status document."""
    deadline = time.monotonic() + timeout
    while True:
        document: dict[str, Any] = httpx.get(status_url).json()
        if document["runtimeStatus"] not in ("Pending", "Running"):
            return document
        if time.monotonic() > deadline:
            pytest.fail(f"still {document['runtimeStatus']} after {timeout} s: {document}")
        time.sleep(0.1)


def readme_commands(project: Path) -> list[str]:
    """The command lines of the README's ``console`` blocks, in order."""
    text = (project / "README.md").read_text()
    blocks = re.findall(r"```console\n(.*?)```", text, flags=re.DOTALL)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


# ---------------------------------------------------------------- the generated files


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_generated_project_passes_its_own_tests(tmp_path: Path, template: str) -> None:
    project = create(tmp_path, template)

    files = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()}
    assert files == PROJECT_FILES
    for name in files:
        text = (project / name).read_text()
        assert not re.search(r"\{\{\s*\w+\s*\}\}", text), f"a placeholder is left in {name}"
    assert "demo" in (project / "README.md").read_text().splitlines()[0]

    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[2-9] passed\b", result.stdout), result.stdout


@pytest.mark.parametrize("template", TEMPLATES)
def test_the_generated_code_is_lint_clean(tmp_path: Path, template: str) -> None:
    project = create(tmp_path, template)
    common = ["--no-cache", "--isolated", "--line-length", "100"]
    for args in (
        ["check", *common, "--select", RUFF_RULES, "--target-version", "py311", "."],
        ["format", *common, "--check", "."],
    ):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_requirements_point_at_this_checkout(tmp_path: Path) -> None:
    project = create(tmp_path, "hello")

    requirements = (project / "requirements.txt").read_text().splitlines()
    active = [line for line in requirements if line and not line.startswith("#")]

    assert active == [f"durafn @ {REPO.resolve().as_uri()}", "pytest>=8"]
    assert str(REPO.resolve()) in (project / "README.md").read_text()


def test_gitignore_keeps_state_and_environments_out(tmp_path: Path) -> None:
    ignored = (create(tmp_path, "hello") / ".gitignore").read_text().splitlines()
    assert {"*.db", ".durafn/", ".venv/", "__pycache__/"} <= set(ignored)


# ---------------------------------------------------------------- refusing bad input


def test_a_non_empty_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "notes.txt").write_text("mine")

    result = durafn_cli("new", "demo", cwd=tmp_path)

    assert result.returncode == 1
    assert "exists and is not empty" in result.stderr
    assert "--force" in result.stderr
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["notes.txt"]


def test_an_empty_directory_is_used(tmp_path: Path) -> None:
    (tmp_path / "demo").mkdir()
    result = durafn_cli("new", "demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "demo" / "function_app.py").is_file()


def test_a_file_in_the_way_is_refused_even_with_force(tmp_path: Path) -> None:
    (tmp_path / "demo").write_text("a file")
    result = durafn_cli("new", "demo", "--force", cwd=tmp_path)
    assert result.returncode == 1
    assert "exists and is not a directory" in result.stderr
    assert (tmp_path / "demo").read_text() == "a file"


def test_force_writes_into_a_non_empty_directory(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    project.mkdir()
    (project / "notes.txt").write_text("mine")
    (project / "function_app.py").write_text("old")

    result = durafn_cli("new", "demo", "--template", "monitor", "--force", cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert (project / "notes.txt").read_text() == "mine"
    assert "def monitor_job" in (project / "function_app.py").read_text()


def test_an_unknown_template_is_a_usage_error(tmp_path: Path) -> None:
    result = durafn_cli("new", "demo", "--template", "saga", cwd=tmp_path)

    assert result.returncode == 2
    assert "'saga' is not one of" in result.stderr
    for template in TEMPLATES:
        assert template in result.stderr
    assert not (tmp_path / "demo").exists()


@pytest.mark.parametrize("name", ["my app", "../demo", "a/b", "1demo", "dé", "", "x" * 65])
def test_an_invalid_name_is_a_usage_error(tmp_path: Path, name: str) -> None:
    result = durafn_cli("new", name, cwd=tmp_path)

    assert result.returncode == 2
    assert "is not a valid project name" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_new_is_listed_in_the_help(tmp_path: Path) -> None:
    result = durafn_cli("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert "new" in result.stdout.split()


# ---------------------------------------------------------------- where durafn comes from


class FakeDistribution:
    def __init__(self, direct_url: dict[str, Any] | None, version: str) -> None:
        self.direct_url = direct_url
        self.version = version

    def read_text(self, name: str) -> str | None:
        assert name == "direct_url.json"
        return None if self.direct_url is None else json.dumps(self.direct_url)


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Pretend durafn is not a checkout but installed with the given ``direct_url.json``."""

    version = durafn_version()

    def install(direct_url: dict[str, Any] | None) -> None:
        fake = FakeDistribution(direct_url, version)
        monkeypatch.setattr(new_module, "_source_checkout", lambda: None)
        monkeypatch.setattr(metadata, "distribution", lambda name: fake)

    return install


def test_a_checkout_is_required_by_its_path() -> None:
    source = new_module.locate_durafn()
    assert source.requirement.splitlines()[-1] == f"durafn @ {REPO.resolve().as_uri()}"


def test_an_install_from_a_local_wheel_is_required_by_the_wheel(
    installed: Any, tmp_path: Path
) -> None:
    wheel = tmp_path / "durafn-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    installed({"url": wheel.as_uri(), "archive_info": {}})
    last_line = new_module.locate_durafn().requirement.splitlines()[-1]
    assert last_line == f"durafn @ {wheel.resolve().as_uri()}"


def test_an_install_from_git_is_pinned_to_its_commit(installed: Any) -> None:
    installed(
        {
            "url": "https://example.org/durafn.git",
            "vcs_info": {"vcs": "git", "commit_id": "abc123"},
        }
    )
    requirement = new_module.locate_durafn().requirement
    assert requirement == "durafn @ git+https://example.org/durafn.git@abc123"


def test_an_install_from_an_index_is_required_by_version(installed: Any) -> None:
    installed(None)
    assert new_module.locate_durafn().requirement == f"durafn>={durafn_version()}"


def test_a_vanished_local_source_falls_back_to_the_index(installed: Any, tmp_path: Path) -> None:
    installed({"url": (tmp_path / "gone").as_uri(), "dir_info": {}})
    assert new_module.locate_durafn().requirement == f"durafn>={durafn_version()}"


def durafn_version() -> str:
    return metadata.version("durafn")


def test_a_template_placeholder_without_a_value_is_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        new_module.render("{{project_name}} {{nope}}", {"project_name": "x"})


def test_the_template_choices_match_the_template_folders() -> None:
    folders = {p.name for p in (Path(durafn.__file__).parent / "cli" / "templates").iterdir()}
    assert folders == {*TEMPLATES, new_module.COMMON}
    assert set(new_module.TEMPLATES) == set(TEMPLATES)


# ---------------------------------------------------------------- durafn start, over HTTP

STARTS: dict[str, tuple[Any, Any]] = {
    # template: (input of the POST, expected output)
    "hello": (None, ["Hello Tokyo!", "Hello Seattle!", "Hello London!"]),
    "fan-out": (None, {"documents": 4, "total_words": 27}),
    "human-interaction": ({"id": "expense-1"}, {"id": "expense-1", "status": "approved"}),
    "monitor": (
        {"job_id": "render-42", "interval_seconds": 0.2},
        {"job_id": "render-42", "status": "done", "checks": 3},
    ),
}


def matches(output: Any, expected: Any) -> bool:
    """``output`` equals ``expected``; for a dict, on the keys ``expected`` names."""
    if isinstance(expected, dict):
        return isinstance(output, dict) and all(output.get(k) == v for k, v in expected.items())
    return bool(output == expected)


@pytest.mark.e2e
@pytest.mark.parametrize("template", TEMPLATES)
def test_durafn_start_serves_the_generated_project(tmp_path: Path, template: str) -> None:
    project = create(tmp_path, template)
    port = free_port()
    orchestrator, (payload, expected) = _orchestrator_of(project), STARTS[template]

    command = [sys.executable, "-m", "durafn", "start", "--port", str(port)]
    with serving(command, project, port):
        answer = httpx.post(
            f"http://localhost:{port}/api/orchestrators/{orchestrator}",
            **({"json": payload} if payload is not None else {}),
        )
        assert answer.status_code == 202, answer.text
        urls = answer.json()
        assert answer.headers["Location"] == urls["statusQueryGetUri"]
        if template == "human-interaction":
            approve = urls["sendEventPostUri"].replace("{eventName}", "approval")
            raised = httpx.post(approve, json={"approved": True, "by": "alice"})
            assert raised.status_code == 202, raised.text

        document = follow(urls["statusQueryGetUri"])

    assert document["runtimeStatus"] == "Completed", document
    assert matches(document["output"], expected), document
    assert (project / "durafn.db").is_file()  # the default store, in the working directory


def _orchestrator_of(project: Path) -> str:
    """The orchestrator the README's first ``curl -X POST`` starts."""
    for line in readme_commands(project):
        found = re.match(r"curl -X POST http://localhost:7071/api/orchestrators/(\w+)$", line)
        if found:
            return found.group(1)
    raise AssertionError("no starter command in the README")


# ---------------------------------------------------------------- the README, literally

README_OUTPUTS: dict[str, Any] = {
    "hello": ["Hello Tokyo!", "Hello Seattle!", "Hello London!"],
    "fan-out": {"documents": 4, "total_words": 27},
    "human-interaction": {"status": "approved", "by": "alice"},
    "monitor": {"status": "done", "checks": 3},
}


def run_curl_lines(commands: list[str], port: int, template: str) -> dict[str, Any]:
    """Run the README's curl lines as a reader would, with the port changed: start one
    instance, raise its events, then follow its status URL until it finishes."""
    curls = [c.replace("localhost:7071", f"localhost:{port}") for c in commands]
    curls = [c for c in curls if c.startswith("curl ")]

    def run(command: str) -> Any:
        result = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=30, check=False
        )
        assert result.returncode == 0, f"{command}\n{result.stderr}"
        return json.loads(result.stdout) if result.stdout.strip() else None

    answer = run(curls[0])
    for command in curls[1:]:
        if "<id>" in command:
            run(command.replace("<id>", answer["id"]))
    status_command = next(c for c in curls if "<statusQueryGetUri>" in c)
    deadline = time.monotonic() + 60
    while True:
        document: dict[str, Any] = run(
            status_command.replace("<statusQueryGetUri>", answer["statusQueryGetUri"])
        )
        if document["runtimeStatus"] not in ("Pending", "Running") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert document["runtimeStatus"] == "Completed", document
    assert matches(document["output"], README_OUTPUTS[template]), document
    return document


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
@pytest.mark.parametrize("template", TEMPLATES)
def test_the_readme_curl_commands_work(tmp_path: Path, template: str) -> None:
    project = create(tmp_path, template)
    commands = readme_commands(project)
    assert "durafn start" in commands
    port = free_port()

    command = [sys.executable, "-m", "durafn", "start", "--port", str(port)]
    with serving(command, project, port):
        run_curl_lines(commands, port, template)


@pytest.mark.e2e
@pytest.mark.timeout(300)
@pytest.mark.skipif(shutil.which("curl") is None, reason="the README's commands use curl")
def test_a_newcomer_follows_the_readme_in_a_fresh_venv(tmp_path: Path) -> None:
    """`durafn new`, then every command of the README as written: a fresh virtual environment,
    `pip install -r requirements.txt` (durafn from this checkout, the rest from the index),
    `pytest`, `durafn start` and curl. Only the port differs."""
    project = create(tmp_path, "hello")
    commands = readme_commands(project)
    setup_end = commands.index("pip install -r requirements.txt") + 1
    setup, rest = commands[:setup_end], commands[setup_end:]
    assert setup[0].startswith("python3 -m venv .venv")
    assert {"durafn start", "pytest"} <= set(rest)
    # `python3` is the interpreter running these tests, so that it is recent enough.
    env = {**clean_env(), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("VIRTUAL_ENV", None)

    def shell(*lines: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
        script = "\n".join(["set -euo pipefail", *lines])
        return subprocess.run(
            ["bash", "-c", script],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    installed = shell(*setup)
    assert installed.returncode == 0, installed.stdout[-3000:] + installed.stderr[-3000:]
    fresh_python = project / ".venv" / "bin" / "python"
    assert fresh_python.is_file()

    activate = setup[1]
    assert activate == ". .venv/bin/activate"
    tested = shell(activate, "pytest", timeout=120)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "3 passed" in tested.stdout

    # The installed durafn is a wheel built from this checkout, templates included.
    other = shell(activate, "durafn new other --template monitor", timeout=60)
    assert other.returncode == 0, other.stderr
    assert (project / "other" / "tests" / "test_function_app.py").is_file()
    assert f"durafn @ {REPO.resolve().as_uri()}" in (project / "other/requirements.txt").read_text()
    shutil.rmtree(project / "other")

    port = free_port()
    start = ["bash", "-c", f"{activate} && exec durafn start --port {port}"]
    with serving(start, project, port):
        run_curl_lines(rest, port, "hello")
