"""The layout rules that import-linter cannot express (it sees external packages only whole): only the service seam
imports google-genai beyond its `types`, and every module lives in a package of a pipeline stage."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import polars_gemini

PACKAGE = Path(polars_gemini.__file__).parent
STAGES = {"core", "tokens", "prepare", "cost", "service", "checkpoint", "run", "api", "cli", "emulator"}
# The offline tokenizer uses the SDK's local (offline) tokenizer when its model file is cached: no call to the service.
ALLOWED = {
    ("tokens/tokenizer.py", "google.genai._local_tokenizer_loader"),
    ("tokens/tokenizer.py", "google.genai.local_tokenizer.LocalTokenizer"),
    ("tokens/exact.py", "google.genai._local_tokenizer_loader"),
}


def _runtime_imports(tree: ast.Module) -> list[str]:
    """Modules imported outside `if TYPE_CHECKING:` blocks (at any depth: lazy imports in functions count)."""
    found: list[str] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and getattr(node.test, "id", getattr(node.test, "attr", "")) == "TYPE_CHECKING":
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.extend(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_only_the_service_seam_imports_google_genai_beyond_types() -> None:
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        where = path.relative_to(PACKAGE).as_posix()
        if where.split("/")[0] in ("service", "emulator"):  # the seam, and the SDK's own test double
            continue
        for name in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            sdk = name.startswith("google.genai") or name == "google.genai"
            if sdk and not name.startswith("google.genai.types") and (where, name) not in ALLOWED:
                offenders.append(f"{where}: {name}")
    assert offenders == [], "import google-genai through polars_gemini.service: " + "; ".join(offenders)


def test_every_module_lives_in_a_stage_package() -> None:
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py"]
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages == STAGES
    for name in STAGES:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"{name}/__init__.py needs a paragraph saying what the package owns"


def test_the_detector_sees_what_it_must() -> None:
    """The rule above could pass by seeing nothing: check it on a snippet."""
    code = "from google import genai\nimport typing\nif typing.TYPE_CHECKING:\n    from google.genai import errors\n"
    code += "def f():\n    from google.genai import errors\n"
    assert _runtime_imports(ast.parse(code)) == ["google.genai", "typing", "google.genai.errors"]


def test_the_architecture_page_names_every_module_of_each_package() -> None:
    """docs/architecture.md matches the code: each package's row names each of its modules."""
    page = (PACKAGE.parents[1] / "docs" / "architecture.md").read_text(encoding="utf-8")
    for name in sorted(STAGES - {"emulator"}):  # the emulator's modules are private; its row says what it is
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        named = set(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
        modules = {p.stem for p in (PACKAGE / name).glob("*.py")} - {"__init__", "__main__"}
        assert modules <= named, f"docs/architecture.md, row {name}: modules not named: {sorted(modules - named)}"
