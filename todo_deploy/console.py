"""Terminal output: rich tables on a terminal, plain lines elsewhere."""

from __future__ import annotations

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


def render_gate(result: GateResult) -> None:
    from rich.table import Table

    table = Table(title=f"{result.stage} gate", title_justify="left", show_lines=False)
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("evidence", overflow="fold")
    table.add_column("fix", overflow="fold")
    for check in result.checks:
        verdict = check.verdict.value
        table.add_row(check.name, f"[{_STYLE[verdict]}]{verdict}[/]", check.evidence, check.fix)
    console().print(table)
    status = "[green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    console().print(f"{result.stage} gate {status}")
