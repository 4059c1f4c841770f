"""Terminal output: rich tables on a terminal, plain lines elsewhere."""

from __future__ import annotations

import io
import re
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from todo_deploy.gates import GateResult

_STYLE = {"pass": "green", "fail": "bold red", "warn": "yellow", "skip": "dim"}


@cache
def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False)


def say(message: str) -> None:
    console().print(message, markup=False)


# What must reach the reader whole: a URL or a `command` split across a cell's lines
# cannot be copied. A fix hint holding one is printed in full below the table; so is an
# evidence whose URL or command the table would break at this width.
_LITERAL = re.compile(r"https?://\S+|`[^`]+`")


def needs_full_line(fix: str) -> bool:
    """Does this fix hint hold a URL or a command (kept off the table's wrapped cells)?"""
    return bool(_LITERAL.search(fix))


def _gate_table(result: GateResult, evidence_below: set[int]) -> tuple[Table, list[str]]:
    """The gate's table, and the lines printed whole below it."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"{result.stage} gate", title_justify="left", show_lines=False)
    table.add_column("check")
    table.add_column("verdict")
    table.add_column("evidence", overflow="fold")
    table.add_column("fix", overflow="fold")
    fixes: list[str] = []
    evidences: list[str] = []
    for row, check in enumerate(result.checks):
        verdict = check.verdict.value
        evidence, fix = check.evidence, check.fix
        if row in evidence_below:
            evidences.append(f"evidence {len(evidences) + 1} ({check.name}): {evidence}")
            evidence = f"see evidence {len(evidences)} below"
        if needs_full_line(fix):
            fixes.append(f"fix {len(fixes) + 1} ({check.name}): {fix}")
            fix = f"see fix {len(fixes)} below"
        table.add_row(check.name, f"[{_STYLE[verdict]}]{verdict}[/]", Text(evidence), Text(fix))
    return table, evidences + fixes


def _broken_evidence(table: Table, result: GateResult, skip: set[int]) -> set[int]:
    """The rows whose evidence holds a URL or command that `table` breaks across lines."""
    from rich.console import Console

    out = io.StringIO()
    Console(file=out, width=console().width, color_system=None, highlight=False).print(table)
    lines = out.getvalue().splitlines()
    return {row for row, check in enumerate(result.checks) if row not in skip
            and any(not any(literal in line for line in lines)
                    for literal in _LITERAL.findall(check.evidence))}


def render_gate(result: GateResult) -> None:
    evidence_below: set[int] = set()
    table, below = _gate_table(result, evidence_below)
    # Each pass moves at least one more row out, so this ends; moving one out changes the
    # columns' widths, hence the look again.
    while broken := _broken_evidence(table, result, evidence_below):
        evidence_below |= broken
        table, below = _gate_table(result, evidence_below)
    console().print(table)
    for line in below:
        # soft_wrap: never broken by rich; a narrow terminal wraps it only on screen.
        console().print(line, markup=False, soft_wrap=True)
    status = "[green]PASSED[/]" if result.passed else "[bold red]FAILED[/]"
    console().print(f"{result.stage} gate {status}")
