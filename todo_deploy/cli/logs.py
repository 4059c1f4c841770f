"""`inv logs [component] [--follow]`: the app's pods, restarts and warnings, merged."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit
from invoke.parser import Argument

from todo_deploy.cli import ProjectTask, load_or_exit, task
from todo_deploy.cli.optional_positional import make_optional


def _task_names() -> set[str]:
    from todo_deploy.cli import task_names

    return task_names()


class _LogsTask(ProjectTask):
    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        return make_optional(arguments, "component", ("logs", *self.aliases), _task_names)


@task(
    klass=_LogsTask,
    positional=["component"],
    help={
        "component": "backend, frontend, database or migrate (default: all of them).",
        "follow": "Keep printing new lines (and restarts, warning events) until Ctrl-C.",
        "tail": "Lines per pod to start from (default 50).",
        "probes": "Show the health-probe lines too (GET /ready, /health, /healthz, /readyz, "
        "/started answered 2xx); left out by default.",
    },
)
def logs(
    c: Context, component: str | None = None, follow: bool = False, tail: int = 50,
    probes: bool = False,
) -> None:
    """Tail the app's pods (and the migration Job) with restarts and warning events interleaved.

    Lines of every pod are merged by their timestamps and coloured by component;
    a container restart shows as one line with its exit code and reason. Health-probe
    lines are left out unless --probes.
    """
    from rich.markup import escape

    from todo_deploy.access import logs as app_logs
    from todo_deploy.console import console
    from todo_deploy.kube import Kube

    if component and component not in app_logs.COMPONENTS:
        raise Exit(f"unknown component {component!r}: choose one of "
                   f"{', '.join(app_logs.COMPONENTS)}", code=2)
    loaded = load_or_exit()
    settings = loaded.settings
    kube = Kube(settings.context_name)
    tail = max(1, min(int(tail), 10_000))

    def show(line: app_logs.LogLine) -> None:
        colour = app_logs.COLOURS.get(line.component, "white")
        stamp = line.at.strftime("%H:%M:%S") if line.at != app_logs.EPOCH else "--:--:--"
        level, text = app_logs.readable(line.text)
        style = {"warning": "yellow", "error": "bold red", "critical": "bold red"}.get(level)
        body = f"[{style}]{escape(text)}[/]" if style else escape(text)
        console().print(f"[dim]{stamp}[/] [{colour}]{escape(line.source)}[/] {body}",
                        soft_wrap=True, highlight=False)

    if not follow:
        lines = app_logs.snapshot(kube, settings, component or None, tail, probes)
        if not lines:
            console().print(f"no pods of {settings.release_name} in {settings.namespace} "
                            "(`inv status`, `inv deploy`)", markup=False)
        for line in lines:
            show(line)
        return
    try:
        for line in app_logs.follow(kube, settings, component or None, tail, probes=probes):
            show(line)
    except KeyboardInterrupt:
        pass
