"""The manual in docs/ shows the real code: pages embed the example files verbatim.

Markers (HTML comments, invisible when rendered) on the line before a fenced block say what
the block must be:

* ``<!-- example: examples/x.py -->``: exactly the content of that file;
* ``<!-- excerpt: examples/x.py -->``: a run of whole, consecutive lines of that file;
* ``<!-- output: examples/x.py -->``: what ``python examples/x.py`` prints;
* ``<!-- run: pytest -->``: a test module, run with pytest here;
* ``<!-- run: script -->``: a script, run here; an ``<!-- output: above -->`` block right
  after it is what it prints.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = ROOT / "docs"
EXAMPLES_DIR = ROOT / "examples"

ExpectedOutput = dict[str, list[str | re.Pattern[str]]]  # see conftest.py

# The examples each pattern page must show in full.
PATTERN_PAGES = {
    "function-chaining.md": ["examples/hello_cities.py"],
    "error-handling.md": ["examples/process_order.py", "examples/retries.py"],
    "fan-out-fan-in.md": ["examples/fan_out_fan_in.py"],
    "human-interaction.md": ["examples/human_interaction.py"],
    "monitor.md": ["examples/monitor.py"],
    "eternal-orchestrations.md": ["examples/eternal_counter.py"],
    "sub-orchestrations.md": ["examples/sub_orchestrations.py"],
    "async-orchestrators.md": ["examples/async_orchestrator.py"],
    "entities.md": [
        "examples/entity_counter.py",
        "examples/bank_transfer.py",
        "examples/device_monitor.py",
    ],
}
REFERENCE_PAGES = ["index.md", "testing.md", "codec.md"]

MARKER = re.compile(r"<!-- (?P<kind>example|excerpt|output|run): (?P<arg>\S+) -->")
FENCE = re.compile(r"```(?P<lang>\w*)\s*")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a docs page, with the marker on the line before it."""

    page: str
    line: int
    lang: str
    body: str
    kind: str | None = None
    arg: str | None = None

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def read_blocks(page: Path) -> list[Block]:
    lines = page.read_text(encoding="utf-8").splitlines(keepends=True)
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        fence = FENCE.fullmatch(lines[i])
        if fence is None:
            i += 1
            continue
        end = i + 1
        while end < len(lines) and lines[end].rstrip("\n") != "```":
            end += 1
        assert end < len(lines), f"{page.name}:{i + 1}: unterminated code block"
        marker = MARKER.fullmatch(lines[i - 1].strip()) if i > 0 else None
        blocks.append(
            Block(
                page=page.name,
                line=i + 1,
                lang=fence["lang"],
                body="".join(lines[i + 1 : end]),
                kind=marker["kind"] if marker else None,
                arg=marker["arg"] if marker else None,
            )
        )
        i = end + 1
    return blocks


PAGES = sorted(DOCS_DIR.glob("*.md"))
BLOCKS = [block for page in PAGES for block in read_blocks(page)]


def marked(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


def test_the_manual_has_its_pages() -> None:
    names = {page.name for page in PAGES}
    assert set(PATTERN_PAGES) | set(REFERENCE_PAGES) <= names


def test_the_index_links_every_page() -> None:
    index = (DOCS_DIR / "index.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\(([\w.-]+\.md)(?:#[\w-]+)?\)", index))
    assert linked == {page.name for page in PAGES} - {"index.md"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page: Path) -> None:
    for target in re.findall(r"\]\(([^)#:]+?\.(?:md|py))(?:#[^)]*)?\)", page.read_text()):
        assert (page.parent / target).exists(), f"{page.name} links to missing {target}"


@pytest.mark.parametrize("page", sorted(PATTERN_PAGES))
def test_each_pattern_page_shows_its_examples_in_full(page: str) -> None:
    shown = [b.arg for b in read_blocks(DOCS_DIR / page) if b.kind == "example"]
    assert shown == PATTERN_PAGES[page]


def test_every_example_is_shown_in_full_somewhere() -> None:
    shown = {b.arg for b in marked("example")}
    assert shown == {f"examples/{p.name}" for p in EXAMPLES_DIR.glob("*.py")}


def heading_anchors(page: Path) -> set[str]:
    """The anchors a Markdown renderer gives ``page``'s headings (as GitHub does: lower case,
    punctuation dropped, spaces as hyphens, ``-1``, ``-2`` for repeats)."""
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        anchors.add(slug if count == 0 else f"{slug}-{count}")
    return anchors


def test_heading_anchors(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("# Title\n## B's `start`, again\n```\n# not a heading\n```\n## Title\n")
    assert heading_anchors(page) == {"title", "bs-start-again", "title-1"}


@pytest.mark.parametrize(
    "page", [*PAGES, ROOT / "README.md", ROOT / "bench" / "README.md"], ids=lambda p: p.name
)
def test_links_to_headings_resolve(page: Path) -> None:
    for target, anchor in re.findall(r"\]\(([^)#:\s]*)#([^)\s]+)\)", page.read_text()):
        linked = page.parent / target if target else page
        if linked.suffix == ".md":
            assert anchor in heading_anchors(linked), (
                f"{page.name} links to missing {target}#{anchor}"
            )


@pytest.mark.parametrize("block", marked("example"), ids=str)
def test_example_block_is_exactly_the_file(block: Block) -> None:
    assert block.lang == "python"
    assert block.arg is not None
    assert block.body == (ROOT / block.arg).read_text(encoding="utf-8"), (
        f"{block}: the code differs from {block.arg}; paste the file again"
    )


def is_excerpt(body: str, source: str) -> bool:
    """True when ``body`` is one or more whole, consecutive lines of ``source``."""
    whole_lines = body.endswith("\n") and body.strip() != ""
    return whole_lines and (source.startswith(body) or f"\n{body}" in source)


def test_is_excerpt() -> None:
    source = "a = 1\nb = 2\nc = 3\n"
    assert is_excerpt("b = 2\nc = 3\n", source)
    assert is_excerpt(source, source)
    assert not is_excerpt("a = 1\nc = 3\n", source)  # skips a line
    assert not is_excerpt("= 2\n", source)  # starts mid-line
    assert not is_excerpt("b = 2", source)  # ends mid-line


@pytest.mark.parametrize("block", marked("excerpt"), ids=str)
def test_excerpt_block_is_consecutive_lines_of_the_file(block: Block) -> None:
    assert block.lang == "python"
    assert block.arg is not None
    source = (ROOT / block.arg).read_text(encoding="utf-8")
    assert is_excerpt(block.body, source), f"{block}: not a run of whole lines of {block.arg}"


@pytest.mark.parametrize("block", [b for b in marked("output") if b.arg != "above"], ids=str)
def test_output_block_is_what_the_example_prints(
    block: Block, expected_output: ExpectedOutput
) -> None:
    assert block.lang == "text"
    assert block.arg is not None
    expected = expected_output[Path(block.arg).stem]
    lines = block.body.splitlines()
    assert len(lines) == len(expected)
    for line, want in zip(lines, expected, strict=True):
        if isinstance(want, re.Pattern):
            assert want.fullmatch(line), line
        else:
            assert line == want


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.lang == "python"], ids=str)
def test_python_blocks_parse(block: Block) -> None:
    ast.parse(block.body, filename=str(block))


@pytest.mark.parametrize("block", [b for b in marked("run") if b.arg == "pytest"], ids=str)
def test_test_samples_pass(block: Block, tmp_path: Path) -> None:
    sample = tmp_path / f"test_docs_sample_{block.line}.py"
    sample.write_text(block.body, encoding="utf-8")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "-q",
            "-W",
            "error",
            sample.name,
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"\b\d+ passed\b", done.stdout)
    assert "failed" not in done.stdout and "skipped" not in done.stdout


@pytest.mark.parametrize("block", [b for b in marked("run") if b.arg == "script"], ids=str)
def test_script_samples_run(block: Block, tmp_path: Path) -> None:
    script = tmp_path / "sample.py"
    script.write_text(block.body, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-W", "error", script.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    blocks = read_blocks(DOCS_DIR / block.page)
    following = blocks[blocks.index(block) + 1 :][:1]
    if following and following[0].kind == "output" and following[0].arg == "above":
        assert done.stdout == following[0].body


@pytest.mark.parametrize("path", [*PAGES, *sorted(EXAMPLES_DIR.glob("*.py"))], ids=lambda p: p.name)
def test_the_project_speaks_of_itself(path: Path) -> None:
    text = path.read_text(encoding="utf-8").lower()
    assert "microsoft.com" not in text
    assert "learn.microsoft" not in text
