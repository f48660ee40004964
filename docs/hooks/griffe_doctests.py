"""A griffe extension for the API reference: the docstrings' `>>>` examples as highlighted Python console blocks.

The docstrings are plain prose with doctest examples, at the margin or indented. Markdown would read a `>>>` line
at the margin as three nested quotes, so each run of doctest lines (up to a blank line) becomes a fenced `pycon`
block, its doctest flags (`# doctest: +SKIP`) trimmed. Everything else in a docstring is left as written.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_FLAGS = re.compile(r"\s*#\s*doctest:.*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


def fence_doctests(text: str) -> str:
    """`text` with each run of doctest lines (a `>>>` line and what follows it, up to a blank line or a line
    indented less than it) fenced as `pycon`, dedented to its first line, without doctest flags; fenced code blocks
    are left alone."""
    out: list[str] = []
    lines = text.split("\n")
    i, in_fence = 0, False
    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            in_fence = not in_fence
        if in_fence or not line.lstrip().startswith(">>>"):
            out.append(line)
            i += 1
            continue
        indent = len(line) - len(line.lstrip())
        block: list[str] = []
        while i < len(lines) and lines[i].strip() and len(lines[i]) - len(lines[i].lstrip()) >= indent:
            block.append(_FLAGS.sub("", lines[i][indent:]))
            i += 1
        if out and out[-1].strip():
            out.append("")
        out += ["```pycon", *block, "```"]
        if i < len(lines) and lines[i].strip():
            out.append("")
    return "\n".join(out).rstrip("\n") + ("\n" if text.endswith("\n") else "")


class DoctestFences(griffe.Extension):
    """Fences the doctest examples of every docstring griffe loads (see `fence_doctests`)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None and ">>>" in obj.docstring.value:
            obj.docstring.value = fence_doctests(obj.docstring.value)
