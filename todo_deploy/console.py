"""Terminal output: rich tables on a terminal, plain lines elsewhere."""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

    from todo_deploy.gates import GateResult

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


@cache
def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def say(message: str) -> None:
    console().print(message, markup=False)


# What must reach the reader whole: a URL or a `command` split across a cell's lines
# cannot be copied, so a hint holding one is printed in full below the table.
_LITERAL = re.compile(r"https?://\S+|`[^`]+`")


def needs_full_line(fix: str) -> bool:
    """Does this fix hint hold a URL or a command (kept off the table's wrapped cells)?"""
    return bool(_LITERAL.search(fix))


def render_gate(result: GateResult) -> None:
    from rich.table import Table

    table = Table(title=f"{result.stage} gate", title_justify="left", show_lines=False)
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("evidence", overflow="fold")
    table.add_column("fix", overflow="fold")
    below: list[str] = []
    for check in result.checks:
        verdict = check.verdict.value
        fix = check.fix
        if needs_full_line(fix):
            below.append(f"fix {len(below) + 1} ({check.name}): {fix}")
            fix = f"see fix {len(below)} below"
        table.add_row(check.name, f"[{_STYLE[verdict]}]{verdict}[/]", check.evidence, fix)
    console().print(table)
    for line in below:
        # soft_wrap: never broken by rich; a narrow terminal wraps it only on screen.
        console().print(line, markup=False, soft_wrap=True)
    status = "[green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    console().print(f"{result.stage} gate {status}")
