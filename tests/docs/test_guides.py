"""Every example in docs/ runs: each page's ```python blocks in order in one namespace, and its ```bash commands
(`polars-gemini ...`) as subprocesses, in a temporary working directory, without GEMINI_API_KEY or GOOGLE_API_KEY.

Conventions the pages follow (docs/index.md says so to readers too):

* A page's Python examples talk to the emulator: its first block starts one (`emu = Emulator().start()`) and the
  others pass `client=client`. Emulators left in the namespace are stopped after the page.
* Shell commands go to the page's `emu` (or, on a page with none, to an emulator started here): they get
  `GOOGLE_GEMINI_BASE_URL` pointing at it and an emulator API key, as in the CLI guide. They run one after another in
  a process apart from the page's Python (`cli_worker.py`: the command's own entry point, imports paid once per page).
  A command is expected to exit 0, or with the code its trailing comment states (`# exits 5`).
* A Python block whose first line is `# file: NAME` is a file of the example (a test module): it is written to NAME
  in the working directory instead of run, and a later shell line runs it (`pytest -q NAME`).
* A shell block whose first line is a `# not run ...` comment is not executed (it installs something, needs a real
  service or a public URL, or starts a process that never ends): each of its `polars-gemini` commands must still parse
  (its subcommand and flags exist), checked with the command line's own parser. Every other shell line is a
  `polars-gemini` command, or `pytest ...` (run as `python -m pytest ...`).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from polars_gemini.emulator import Emulator

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs"
WORKER = Path(__file__).with_name("cli_worker.py")
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.relative_to(DOCS).parts)
PYTHON = {"python", "py"}
SHELL = {"bash", "sh", "shell", "console"}
_OPEN = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*\{?[ \t]*\.?(?P<lang>[\w+-]*)")
_EXITS = re.compile(r"#\s*exits\s+(\d+)\b")
_FILE = re.compile(r"^# file: (?P<name>[\w./-]+)\n")


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence


def blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown page, dedented to their fence (blocks in admonitions and lists too)."""
    found: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = _OPEN.match(lines[i])
        if not match:
            i += 1
            continue
        indent, fence, start = match["indent"], match["fence"], i
        body: list[str] = []
        i += 1
        while i < len(lines) and not (lines[i].strip().startswith(fence) and lines[i].strip().strip(fence[0]) == ""):
            body.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].lstrip())
            i += 1
        found.append(Block(match["lang"].lower(), "\n".join(body) + "\n", start + 1))
        i += 1
    return found


def commands(code: str) -> list[str]:
    """The logical command lines of a shell block: continuations joined, blank and comment-only lines dropped."""
    joined = re.sub(r"\\\n\s*", " ", code)
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def expected_exit(line: str) -> int:
    match = _EXITS.search(line)
    return int(match[1]) if match else 0


def argv(line: str, programs: tuple[str, ...] = ("polars-gemini",)) -> list[str]:
    """A command line as argv, the program first (comments and a trailing `&` dropped)."""
    words = shlex.split(line, comments=True)
    if words and words[-1] == "&":
        words.pop()
    assert words and words[0] in programs, f"the docs' shell examples are {' or '.join(programs)} commands: {line!r}"
    return words


def parses(args: list[str]) -> None:
    """The command line's own parser accepts `args` (subcommand and flags exist); `--help` counts as parsing."""
    from polars_gemini.cli.main import _build_parser

    try:
        _build_parser().parse_args(args)
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    assert code == 0, f"polars-gemini does not accept: {shlex.join(args)}"


def _emulators(namespace: dict[str, Any]) -> Iterator[Emulator]:
    return (value for value in list(namespace.values()) if isinstance(value, Emulator))


class Shell:
    """Runs a page's `polars-gemini` commands in a process of their own (`cli_worker.py`), started on first use."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.proc: subprocess.Popen[str] | None = None

    def run(self, args: list[str], env: dict[str, str]) -> dict[str, Any]:
        if self.proc is None:
            self.proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         text=True, cwd=self.cwd)  # fmt: skip
            assert self.proc.stdout is not None and json.loads(self.proc.stdout.readline()) == {"ready": True}
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": args, "env": env, "cwd": str(self.cwd)}) + "\n")
        self.proc.stdin.flush()
        reply = self.proc.stdout.readline()
        assert reply, f"the command process died running polars-gemini {shlex.join(args)}"
        return dict(json.loads(reply))

    def close(self) -> None:
        if self.proc is not None:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.close()
            self.proc.wait(timeout=30)
            self.proc.stdout.close()


def _running_emulator(namespace: dict[str, Any]) -> Emulator:
    """The page's `emu` while it runs, else one of the runner's own for the page."""
    for name in ("emu", "_docs_emulator"):
        emu = namespace.get(name)
        if isinstance(emu, Emulator):
            try:
                emu.url  # noqa: B018  # raises once the emulator is stopped
            except RuntimeError:
                continue
            return emu
    emu = namespace["_docs_emulator"] = Emulator().start()
    return emu


def run_shell(block: Block, page: str, namespace: dict[str, Any], shell: Shell) -> None:
    lines = commands(block.code)
    if block.code.lstrip().startswith("# not run"):
        for line in lines:
            if line.startswith("polars-gemini "):
                parses(argv(line)[1:])
        return
    env = {**os.environ, "GOOGLE_GEMINI_BASE_URL": _running_emulator(namespace).url, "GEMINI_API_KEY": "emulator-key",
           "COLUMNS": "200"}  # fmt: skip
    for line in lines:
        words = argv(line, ("polars-gemini", "pytest"))
        if words[0] == "pytest":
            proc = subprocess.run([sys.executable, "-m", *words], cwd=shell.cwd, env=env, capture_output=True,
                                  text=True, timeout=120)  # fmt: skip
            done = {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}
        else:
            done = shell.run(words[1:], env)
        want = expected_exit(line)
        assert done["code"] == want, (
            f"{page}:{block.line}: `{line}` exited {done['code']}, the page says {want}\n"
            f"stdout:\n{done['stdout']}\nstderr:\n{done['stderr']}"
        )


def run_page(page: Path, cwd: Path) -> int:
    """Runs every example of `page`; how many blocks ran."""
    name = page.relative_to(DOCS).as_posix()
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    shell = Shell(cwd)
    ran = 0
    try:
        for block in blocks(page.read_text(encoding="utf-8")):
            written = _FILE.match(block.code)
            if block.lang in PYTHON and written:
                (cwd / written["name"]).write_text(block.code, encoding="utf-8")
            elif block.lang in PYTHON:
                exec(compile(block.code, f"docs/{name}:{block.line}", "exec", dont_inherit=True), namespace)
            elif block.lang in SHELL:
                run_shell(block, name, namespace, shell)
            else:
                continue
            ran += 1
    finally:
        shell.close()
        for emu in _emulators(namespace):
            emu.stop()
    return ran


@pytest.mark.parametrize("page", PAGES, ids=[p.relative_to(DOCS).as_posix() for p in PAGES])
def test_every_example_of_the_page_runs(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))  # modules a page writes (a pydantic schema for the CLI) import
    run_page(page, tmp_path)


def test_the_guides_have_examples_and_every_one_of_them_is_a_kind_the_runner_runs() -> None:
    """A block in another language is shown, not run: only output and data formats may be (text, json, ...)."""
    for page in PAGES:
        name = page.relative_to(DOCS).as_posix()
        found = blocks(page.read_text(encoding="utf-8"))
        if name.startswith("guides/") or name == "index.md":
            assert any(b.lang in PYTHON | SHELL for b in found), f"{name} has no example"
        for block in found:
            assert block.lang in PYTHON | SHELL | {"", "text", "json", "yaml", "toml", "pycon"}, f"{name}:{block.line}"
            if block.lang not in PYTHON | SHELL:
                assert "polars-gemini " not in block.code.split("\n")[0] and not block.code.startswith(">>>"), (
                    f"{name}:{block.line}: a command or example in a ```{block.lang} block would not be run"
                )


def test_the_runner_reads_fences_commands_and_exit_codes() -> None:
    text = "x\n```python\na = 1\n```\n\n    ```bash\n    polars-gemini status runs \\\n      --json  # exits 5\n"
    text += "    ```\n"
    found = blocks(text)
    assert [(b.lang, b.line) for b in found] == [("python", 2), ("bash", 6)]
    assert found[0].code == "a = 1\n"
    (line,) = commands(found[1].code)
    assert argv(line) == ["polars-gemini", "status", "runs", "--json"] and expected_exit(line) == 5
    assert expected_exit("polars-gemini list") == 0
    parses(["status", "runs", "--json"])
    with pytest.raises(AssertionError, match="does not accept"):
        parses(["status", "runs", "--no-such-flag"])
