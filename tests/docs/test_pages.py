"""The documentation site: every page is in mkdocs.yml's nav and every nav entry is a page, relative links resolve
(mkdocs cannot check the ones that leave docs/), the API reference's doctest fences, and `mkdocs build --strict`."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_FENCE = re.compile(r"^\s*(```|~~~)")


def _nav_pages(entry: Any) -> list[str]:
    if isinstance(entry, str):
        return [entry]
    if isinstance(entry, list):
        return [page for item in entry for page in _nav_pages(item)]
    if isinstance(entry, dict):
        return [page for value in entry.values() for page in _nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    nav = _nav_pages(config["nav"])
    assert len(nav) == len(set(nav)), "a page is twice in the nav"
    assert sorted(nav) == PAGES
    assert {"architecture.md", "scheduling.md", "index.md"} <= set(nav)


def _links(text: str) -> list[str]:
    """Markdown link targets outside fenced code blocks."""
    found, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            found += _LINK.findall(line)
    return found


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page: str) -> None:
    source = DOCS / page
    for target in _links(source.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a URL (mkdocs validates in-page and cross-page anchors itself)
        path = (source.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"docs/{page}: the link {target!r} goes nowhere"
        assert path.is_relative_to(ROOT), f"docs/{page}: the link {target!r} leaves the repository"


def test_the_readme_links_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "docs/index.md" in readme and "mkdocs" in readme


def _doctest_fences() -> Any:
    spec = importlib.util.spec_from_file_location("griffe_doctests", DOCS / "hooks" / "griffe_doctests.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.fence_doctests


def test_docstring_examples_become_fenced_console_blocks() -> None:
    fence = _doctest_fences()
    text = "Add.\n\n>>> 1 + 1  # doctest: +SKIP\n2\n\nMore.\n\n    >>> f(\n    ...     x)\n    'y'\nEnd."
    assert fence(text) == (
        "Add.\n\n```pycon\n>>> 1 + 1\n2\n```\n\nMore.\n\n```pycon\n>>> f(\n...     x)\n'y'\n```\n\nEnd."
    )
    kept = "Code:\n\n```python\n>>> not a doctest here\n```"
    assert fence(kept) == kept
    assert fence("Prose only.") == "Prose only."


def test_mkdocs_builds_strictly(tmp_path: Path) -> None:
    """Any warning (a broken cross-reference, a page outside the nav, a docstring griffe cannot read) fails it."""
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr
    built = tmp_path / "site"
    for page in PAGES:
        html = built / (page.removesuffix(".md").removesuffix("index") + "/index.html").lstrip("/")
        assert html.is_file(), f"{page} was not built"
    reference = (built / "reference" / "functions" / "index.html").read_text(encoding="utf-8")
    assert 'id="polars_gemini.batch"' in reference and 'class="highlight"' in reference
