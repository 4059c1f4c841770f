"""The routes take the caller and the services as Annotated dependencies (todo_api.deps): no
function in the routes package reaches into `request.app.state` or checks the token by hand."""

from __future__ import annotations

import ast
from pathlib import Path

import todo_api.routes

ROUTES = Path(todo_api.routes.__file__).parent
BY_HAND = {"authorized", "caller_from_header", "caller_from_token"}


def _dotted(node: ast.AST) -> str:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def offences(source: str, filename: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Attribute) and (node.attr == "state" or _dotted(node).endswith("request.app")):
            found.append(f"{where}: reads {_dotted(node)}")
        if isinstance(node, ast.Call):
            name = _dotted(node.func).rpartition(".")[2]
            if name in BY_HAND:
                found.append(f"{where}: checks the token by hand ({name}())")
            if name == "getattr" and node.args and _dotted(node.args[0]).endswith(".app"):
                found.append(f"{where}: reads {_dotted(node.args[0])} with getattr")
    return found


def test_no_route_reads_app_state_or_checks_the_token_itself() -> None:
    files = sorted(ROUTES.glob("*.py"))
    assert {"auth.py", "chat.py", "health.py", "tasks.py"} <= {f.name for f in files}
    found = [o for f in files for o in offences(f.read_text(), f.name)]
    assert found == []


def test_the_walk_finds_what_the_routes_did_before_deps() -> None:
    before = '''
async def list_tasks(request):
    caller = authorized(request, 1)
    body = await request.app.state.task_pages.page(caller)
    if getattr(request.app, "state", None): pass
    state = request.app.state
'''
    lines = {int(o.split(":")[1]) for o in offences(before, "t.py")}
    assert lines == {3, 4, 5, 6}
