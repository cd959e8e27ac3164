"""The documentation builds, and its code runs.

1. ``mkdocs build --strict`` (warnings are errors) into a temporary folder, offline.
2. The ```python blocks of ``docs/*.md`` are executed, page by page, in a temporary working
   folder, so the tutorial and the how-to pages cannot rot.
3. ``docs/api.md`` names every class and function that gin can configure.

Conventions for code blocks (an HTML comment on the line right before the opening fence; it does
not show in the rendered site):

- In ``docs/*.md`` every ```python block runs, unless marked ``<!-- test: skip -->`` (multi-GPU,
  clusters, wandb accounts, fragments). Blocks of one page run in order and share one namespace,
  like cells of a notebook, so a page can build its example step by step.
- ``<!-- test: fresh -->`` runs the block as if it were a new script: a new namespace and an empty
  gin config (gin is process-global; a new script starts with none).
- ``<!-- test: xfail REASON -->`` marks a block that shows documented behaviour the library does
  not deliver yet. The page still runs the blocks after it; the test is reported as xfail, and it
  fails (asking to remove the marker) as soon as the block passes.
- ``<!-- test: file NAME -->`` before any fenced block (yaml, gin, ...) writes its contents to
  ``NAME`` in the working folder before the page's code runs, so later blocks can use the file.
- ``README.md`` shows fragments, so there only blocks marked ``<!-- test: run -->`` run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

import gin
import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```(\S*)\s*$")
_MARKER = re.compile(r"^<!--\s*test:\s*(\w+)\s*(.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str
    marker: str | None  # skip / run / fresh / xfail / file
    argument: str  # the marker's argument (file name, xfail reason)


def extract_blocks(path: Path) -> list[Block]:
    """Fenced blocks of a markdown file, with the test marker on the line before each."""
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if not m:
            i += 1
            continue
        lang = m.group(1).lower()
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        marker, argument = None, ""
        if start > 0:
            mm = _MARKER.match(lines[start - 1].strip())
            if mm:
                marker, argument = mm.group(1), mm.group(2)
        blocks.append(Block(path.name, start + 1, lang, "\n".join(body) + "\n", marker, argument))
        i += 1
    return blocks


def runnable(path: Path) -> list[Block]:
    blocks = extract_blocks(path)
    for b in blocks:
        if b.marker not in (None, "skip", "run", "fresh", "xfail", "file"):
            raise ValueError(f"{b.page}:{b.line}: unknown test marker {b.marker!r}")
        if b.marker == "file" and not b.argument:
            raise ValueError(f"{b.page}:{b.line}: '<!-- test: file NAME -->' needs a file name")
    if path.name == "README.md":
        return [b for b in blocks if (b.lang == "python" and b.marker == "run") or b.marker == "file"]
    return [b for b in blocks if (b.lang == "python" and b.marker != "skip") or b.marker == "file"]


def pages_with_code() -> list[Path]:
    pages = sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]
    return [p for p in pages if any(b.marker != "file" for b in runnable(p))]


# ---------------------------------------------------------------------------- the site builds
@pytest.mark.skipif(
    shutil.which("mkdocs") is None, reason="mkdocs is not installed (pip install -e '.[docs]')"
)
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mkdocs",
            "build",
            "--strict",
            "-f",
            str(ROOT / "mkdocs.yml"),
            "-d",
            str(tmp_path / "site"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"mkdocs build --strict failed:\n{proc.stdout}\n{proc.stderr}"
    assert (tmp_path / "site" / "api" / "index.html").exists()


def test_every_nav_page_exists() -> None:
    nav = re.findall(r":\s*([\w/.-]+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert nav, "no pages found in mkdocs.yml's nav"
    missing = [p for p in nav if not (DOCS / p).exists()]
    assert not missing, f"mkdocs.yml lists pages that do not exist: {missing}"


# ---------------------------------------------------------------------- the API page is complete
def test_api_page_lists_every_gin_configurable() -> None:
    from amago_pl.cli_utils import register_all_configurables

    register_all_configurables()
    api = (DOCS / "api.md").read_text()
    names = {
        selector.split(".")[-1]
        for selector, _ in gin.config._REGISTRY.items()  # noqa: SLF001 - gin has no public listing
        if selector.startswith("amago_pl.")
    }
    missing = sorted(n for n in names if f"`{n}`" not in api)
    assert not missing, f"docs/api.md's gin-configurable table does not name: {missing}"


# ------------------------------------------------------------------------------ the code runs
def _run_page(path: Path, workdir: Path) -> None:
    blocks = runnable(path)
    for b in blocks:
        if b.marker == "file":
            target = workdir / b.argument
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(b.code)
    namespace: dict = {}
    xfailed: list[str] = []
    for b in blocks:
        if b.marker == "file":
            continue
        if b.marker == "fresh":
            gin.clear_config()
            namespace = {}
        namespace.setdefault("__name__", "__main__")
        where = f"{b.page}:{b.line}"
        try:
            exec(compile(b.code, where, "exec"), namespace)  # noqa: S102 - executing our own docs
        except BaseException as err:  # SystemExit from a CLI counts as a failure too
            if b.marker == "xfail":
                xfailed.append(f"{where}: {b.argument} ({type(err).__name__}: {err})"[:500])
                continue
            raise AssertionError(
                f"code block at {where} failed:\n{b.code}\n{traceback.format_exc()}"
            ) from err
        else:
            if b.marker == "xfail":
                pytest.fail(
                    f"code block at {where} is marked xfail ({b.argument}) but now runs: remove the marker"
                )
    if xfailed:
        pytest.xfail("; ".join(xfailed))


@pytest.mark.parametrize("page", pages_with_code(), ids=lambda p: p.name)
def test_doc_code_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.syspath_prepend(str(tmp_path))
    _run_page(page, tmp_path)


def test_markers_are_known() -> None:
    """A typo in a marker (``<!-- test: skp -->``) would silently run or skip a block."""
    for page in sorted(DOCS.glob("*.md")) + [ROOT / "README.md"]:
        runnable(page)
