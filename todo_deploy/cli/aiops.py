"""`inv aiops [doctor|health|resources|scale|dockerfiles]`: stage 5."""

from __future__ import annotations

import sys
from typing import Any

from invoke import Task, task
from invoke.exceptions import Exit
from invoke.parser import Argument

from todo_deploy.aiops.playbooks import CHOICES
from todo_deploy.cli import finish, guard, load_or_exit


class _OptionalPositional(Argument):
    """A positional argument that may be left out (Invoke has none built in).

    Invoke's parser asks `value` whether a positional is still missing, both
    while handling each token and when it completes the task's context. We
    answer "missing" only while the token at hand is a playbook name, so
    `inv aiops doctor` fills it, while `inv aiops`, `inv aiops --help` and
    `inv aiops verify` (a second task) parse as they would without it.
    """

    @property  # type: ignore[override]
    def value(self) -> Any:
        if self._value is not None:
            return self._value
        frame = sys._getframe(1)
        for _ in range(4):
            if frame is None:
                break
            if frame.f_code.co_name == "handle":
                return None if frame.f_locals.get("token") in CHOICES else ""
            frame = frame.f_back
        return ""

    @value.setter
    def value(self, arg: str) -> None:
        self.set_value(arg, cast=True)


class _AiopsTask(Task):
    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        for index, argument in enumerate(arguments):
            if argument.name == "playbook":
                replacement = _OptionalPositional(
                    names=argument.names, kind=str, default=None,
                    help=argument.help, positional=True,
                )
                arguments[index] = replacement
        return arguments


@task(
    klass=_AiopsTask,
    positional=["playbook"],
    help={
        "playbook": "doctor (the built-in doctor only), health (default: doctor + AI tools on "
        "failing pods and cluster health), resources (right-size requests/limits), scale "
        "(scale the backend; needs --allow-changes and --replicas), dockerfiles (Gordon "
        "reviews docker/*.Dockerfile).",
        "allow_changes": "Let the AI tools change the cluster (kubectl-ai gets "
        "--skip-permissions); without it they are read-only and `scale` refuses.",
        "install_kagent": "Run `kagent install --profile demo` first (only when asked).",
        "replicas": "Replica count for the scale playbook (1-20; required by scale).",
        "namespace": "Namespace to examine (default: the NAMESPACE setting).",
        "force": "Run even if neither the deploy nor the helm gate has passed.",
    },
)
def aiops(  # type: ignore[no-untyped-def]
    c,
    playbook=None,
    allow_changes=False,
    install_kagent=False,
    replicas=0,
    namespace=None,
    force=False,
):
    """Diagnose the release with the built-in doctor, then ask kubectl-ai, kagent and Gordon.

    The doctor needs no AI tool and no network; its findings decide the gate. A
    missing AI tool is a skip, a failing one a warning: their answers are advice,
    stored in .state/aiops.json.
    """
    from todo_deploy.aiops.playbooks import PlaybookRefused
    from todo_deploy.aiops.stage import render_findings, run

    loaded = load_or_exit()
    guard(loaded, "aiops", force)
    try:
        result = run(
            loaded,
            playbook or "health",
            allow_changes=allow_changes,
            install_kagent=install_kagent,
            replicas=int(replicas) if replicas else None,
            namespace=namespace or None,
        )
    except PlaybookRefused as exc:
        raise Exit(f"inv aiops refuses: {exc}", code=1) from None
    render_findings(result)
    finish(loaded, result)
