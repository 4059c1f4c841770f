"""Both apps serve with todo_serving's pieces, not copies of them: no app module defines its own
uvicorn server, log formatter or handler, or access-log middleware."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[2] / "app"
PACKAGES = (APP / "backend" / "todo_api", APP / "frontend" / "todo_web")
# What the apps used to copy: a base class, or a name, that only todo_serving may define.
SHARED_BASES = {"Server", "Formatter", "Handler", "BatchingHandler"}
SHARED_NAMES = {"DrainingServer", "JsonFormatter", "AccessLogMiddleware", "RequestLogMiddleware",
                "NonBlockingHandler", "route_template"}


def copies(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.ClassDef | ast.FunctionDef) and node.name in SHARED_NAMES:
            found.append(f"{filename}:{node.lineno} defines {node.name}")
        if isinstance(node, ast.ClassDef):
            bases = {b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "") for b in node.bases}
            found += [f"{filename}:{node.lineno} {node.name} extends {base}" for base in bases & SHARED_BASES]
        if isinstance(node, ast.Call) and ast.unparse(node.func) == "uvicorn.Config":
            found.append(f"{filename}:{node.lineno} builds a uvicorn Config")
    return found


def test_the_apps_define_none_of_the_serving_pieces_todo_serving_holds() -> None:
    found = [c for package in PACKAGES for f in sorted(package.rglob("*.py"))
             for c in copies(f.read_text(), str(f.relative_to(APP)))]
    assert found == []


def test_the_walk_sees_a_copy() -> None:
    copy = "class DrainingServer(uvicorn.Server): pass\nclass F(logging.Formatter): pass\nc = uvicorn.Config(app)\n"
    assert len(copies(copy, "x.py")) == 4
