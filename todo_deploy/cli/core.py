"""`inv config` and `inv status`."""

from __future__ import annotations

import json

from todo_deploy.cli import load_or_exit, scopes, task


@task(help={"json": "Print machine-readable JSON instead of a table."})
def config(c, json_=False):  # type: ignore[no-untyped-def]
    """Show the effective settings, where each came from; secrets are masked."""
    from todo_deploy.config import effective_rows

    rows = effective_rows(load_or_exit())
    if json_:
        print(json.dumps({k: {"value": v, "source": s} for k, v, s in rows}, indent=2))
        return
    from rich.table import Table

    from todo_deploy.console import console

    table = Table(title="effective settings", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for key, value, source in rows:
        table.add_row(key, value, source)
    console().print(table)


@task(help={"json": "Print machine-readable JSON instead of a table."})
def status(c, json_=False):  # type: ignore[no-untyped-def]
    """Show every stage's last gate: verdict, time, and the first failed check."""
    from todo_deploy.gates import STAGES, standing

    loaded = load_or_exit()
    scope = scopes(loaded)
    found = {stage: standing(loaded.state_dir, stage, scope[stage]) for stage in STAGES}
    results = {stage: result for stage, (result, _) in found.items()}
    if json_:
        print(json.dumps({k: (r.to_dict() if r else None) for k, r in results.items()}, indent=2))
        return
    from rich.table import Table

    from todo_deploy.console import console

    table = Table(title="stage gates", title_justify="left")
    for column in ("stage", "command", "gate", "when", "first failure / fix"):
        table.add_column(column, overflow="fold")
    for stage, result in results.items():
        if result is None:
            why = found[stage][1]
            table.add_row(stage, STAGES[stage].command, "[dim]not current[/]" if why else "[dim]not run[/]",
                          "", why)
            continue
        failure = result.failures[0] if result.failures else None
        table.add_row(
            stage,
            STAGES[stage].command,
            "[green]pass[/]" if result.passed else "[bold red]fail[/]",
            result.finished_at,
            f"{failure.name}: {failure.fix or failure.evidence}" if failure else "",
        )
    console().print(table)
    from todo_deploy import app_url

    app = app_url.load(loaded.state_dir)
    if app:
        console().print(f"app: {app.url} ({app.kind}; `inv open` checks it and re-opens it)",
                        markup=False)
