"""`inv config` and `inv status`."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from invoke import Context

from todo_deploy.cli import load_or_exit, task

if TYPE_CHECKING:
    from todo_deploy.pipeline.status import StatusTable


@task(help={"json": "Print machine-readable JSON instead of a table."})
def config(c: Context, json_: bool = False) -> None:
    """Show the effective settings, where each came from; secrets are masked."""
    from todo_deploy.config import effective_rows

    loaded = load_or_exit()
    rows = effective_rows(loaded)
    if json_:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return
    from rich.table import Table

    from todo_deploy.console import console

    title = "effective settings" + (f" (profile {loaded.profile})" if loaded.profile else "")
    table = Table(title=title, title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        table.add_row(key, value, source)
    console().print(table)


@task(help={"json": "Print machine-readable JSON instead of a table."})
def status(c: Context, json_: bool = False) -> None:
    """Show every stage's last gate, checked against the live cluster."""
    from todo_deploy.pipeline.status import build_table

    table = build_table(load_or_exit())
    if json_:
        print(json.dumps(status_json(table), indent=2))
        return
    print_status(table)


def status_json(table: StatusTable) -> dict:
    """stage -> its recorded gate (None: none stands) with `live` (what the cluster
    contradicts); `_compared` says what the records were compared with."""
    found: dict = {"_compared": table.compared}
    for row in table.rows:
        found[row.stage] = ({**row.result.to_dict(), "live": list(row.live), "dev": list(row.dev)}
                            if row.result else None)
    return found


def print_status(status: StatusTable) -> None:
    from rich.markup import escape
    from rich.table import Table

    from todo_deploy.console import console

    table = Table(title="stage gates", title_justify="left", caption=escape(status.compared),
                  caption_justify="left")
    for column in ("stage", "command", "gate", "when", "first failure / fix"):
        table.add_column(column, overflow="fold")
    for row in status.rows:
        result = row.result
        if result is None:
            table.add_row(row.stage, row.command,
                          f"[dim]{row.state}[/]", "", escape(row.why))
            continue
        failure = result.failures[0] if result.failures else None
        gate = ("[bold yellow]" + escape(row.verdict) + "[/]" if row.live or row.dev
                else "[green]pass[/]" if result.passed else "[bold red]fail[/]")
        table.add_row(row.stage, row.command, gate, result.finished_at,
                      escape(f"{failure.name}: {failure.fix or failure.evidence}") if failure else "")
    console().print(table)
    if status.app:
        console().print(f"app: {status.app.url} ({status.app.kind}; `inv open` checks it and "
                        "re-opens it)", markup=False)
