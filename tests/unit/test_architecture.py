"""The shape of todo_deploy (issue 21): the floors and the stages' independence as
import-linter checks them (the contracts in pyproject.toml), no module reaching into
another's private names (tests included), and few long functions."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OURS = ("todo_deploy", "todo_api", "todo_web", "todo_serving")
MOST_LONG_FUNCTIONS, LONG = 5, 60


LINT_IMPORTS = ("import sys; from importlinter.cli import lint_imports; "
                "sys.exit(lint_imports(no_cache=True, no_logo=True))")


def test_the_import_contracts_are_kept() -> None:
    done = subprocess.run([sys.executable, "-c", LINT_IMPORTS], cwd=ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # It read the contracts and checked them (a run that found no contract exits 0 too).
    assert "Contracts: 2 kept, 0 broken." in done.stdout, done.stdout[-2000:]


def private_uses(path: Path) -> list[str]:
    """`from ours import _name` and `module._name` where `module` was imported from ours."""
    tree = ast.parse(path.read_text())
    shown = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
    modules: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(OURS):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{shown}:{node.lineno}: {alias.name}")
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            modules |= {a.asname or a.name.split(".")[0] for a in node.names if a.name.startswith(OURS)}
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in modules and _private(node.attr)):
            found.append(f"{shown}:{node.lineno}: {node.value.id}.{node.attr}")
        # monkeypatch.setattr(module, "_name", ...) and getattr(module, "_name")
        if (isinstance(node, ast.Call) and len(node.args) >= 2
                and isinstance(node.args[0], ast.Name) and node.args[0].id in modules
                and isinstance(node.args[1], ast.Constant) and isinstance(node.args[1].value, str)
                and _private(node.args[1].value)):
            found.append(f"{shown}:{node.lineno}: {node.args[0].id}.{node.args[1].value}")
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_uses_another_modules_private_names() -> None:
    files = [p for base in ("todo_deploy", "app", "tests", "bench") for p in (ROOT / base).rglob("*.py")]
    offenders = [use for path in sorted(files) for use in private_uses(path)]
    assert offenders == []


def test_the_private_name_check_finds_what_it_looks_for(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text("from todo_deploy.kube import _secret\nfrom todo_deploy import kube\n"
                      "kube._hidden()\nkube.shown()\nsetattr(kube, '_patched', 1)\n"
                      "setattr(kube, 'public', 1)\n")
    uses = private_uses(sample)
    assert sorted(u.split(": ", 1)[1] for u in uses) == ["_secret", "kube._hidden", "kube._patched"]


def long_functions() -> list[tuple[int, str]]:
    found = []
    for path in (ROOT / "todo_deploy").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > LONG:
                    found.append((lines, f"{path.relative_to(ROOT)}:{node.name}"))
    return sorted(found, reverse=True)


def test_at_most_five_functions_over_sixty_lines() -> None:
    found = long_functions()
    assert len(found) <= MOST_LONG_FUNCTIONS, found


def test_the_readme_table_names_every_package_and_module_and_nothing_else() -> None:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Architecture: who owns what in todo_deploy/"):]
    rows = [line.split("|") for line in section.splitlines() if line.startswith("| ")]
    named = {name for row in rows[1:] for name in re.findall(r"`([\w]+(?:/|\.py))`", row[2])}
    tree = {p.name + "/" for p in (ROOT / "todo_deploy").iterdir() if (p / "__init__.py").exists()}
    tree |= {p.name for p in (ROOT / "todo_deploy").glob("*.py") if p.name != "__init__.py"}
    assert named == tree
