"""`inv aiops [doctor|health|resources|scale|dockerfiles|install-agent]`: stage 5."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context
from invoke.exceptions import Exit
from invoke.parser import Argument

from todo_deploy.cli import ProjectTask, load_or_exit, task
from todo_deploy.cli.optional_positional import make_optional

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings

INSTALL_AGENT = "install-agent"


def _task_names() -> set[str]:
    from todo_deploy.cli import task_names

    return task_names()


class _AiopsTask(ProjectTask):
    def get_arguments(self, ignore_unknown_help: bool | None = None) -> list[Argument]:
        arguments = super().get_arguments(ignore_unknown_help)
        return make_optional(arguments, "playbook", ("aiops", *self.aliases), _task_names)


@task(
    klass=_AiopsTask,
    positional=["playbook"],
    help={
        "playbook": "doctor (the built-in doctor only), health (default: doctor + AI tools on "
        "failing pods and cluster health), resources (right-size requests/limits), scale "
        "(scale the backend; needs --allow-changes and --replicas), dockerfiles (Gordon "
        "reviews docker/*.Dockerfile), install-agent (apply this app's kagent agent and its "
        "MCP server; `inv aiops` then asks it instead of k8s-agent).",
        "allow_changes": "Let the AI tools change the cluster (kubectl-ai gets "
        "--skip-permissions); without it they are read-only and `scale` refuses.",
        "install_kagent": "Run `kagent install --profile demo` first (only when asked).",
        "replicas": "Replica count for the scale playbook (1-20; required by scale).",
        "namespace": "Namespace to examine (default: the NAMESPACE setting).",
        "dry_run": "With install-agent: check the prerequisites and validate the manifests "
        "against the cluster's kagent CRDs; apply nothing.",
        "mcp_url": "With install-agent: where pods reach `inv mcp --http` (default "
        "http://host.minikube.internal:8765/mcp, host.docker.internal per provider).",
    },
)
def aiops(
    c: Context,
    playbook: str | None = None,
    allow_changes: bool = False,
    install_kagent: bool = False,
    replicas: int = 0,
    namespace: str | None = None,
    mcp_url: str = "",
    dry_run: bool = False,
) -> None:
    """Diagnose the release with the built-in doctor, then ask kubectl-ai, kagent and Gordon.

    The doctor needs no AI tool and no network; its findings decide the gate. A
    missing AI tool is a skip, a failing one a warning: their answers are advice,
    stored in .state/aiops.json.
    """
    from todo_deploy.pipeline import conductor
    from todo_deploy.pipeline.registry import stage_module

    if playbook == INSTALL_AGENT:
        _install_agent(mcp_url, dry_run)
        return
    choices = stage_module("aiops.playbooks").CHOICES
    if playbook and playbook not in choices:
        raise Exit(
            f"unknown playbook {playbook!r}: choose one of {', '.join(choices)} "
            "(`inv aiops --help` says what each does)",
            code=2,
        )
    loaded = load_or_exit()
    # No gate guard (the conductor's run_aiops): the doctor is for exactly the moment a
    # deploy failed.
    conductor.run_aiops(
        loaded,
        playbook or "health",
        allow_changes=allow_changes,
        install_kagent=install_kagent,
        replicas=int(replicas) if replicas else None,
        namespace=namespace or None,
        kagent_agent=agent_to_ask(loaded, playbook),
    )


def _install_agent(url: str, dry_run: bool) -> None:
    from todo_deploy.console import say
    from todo_deploy.kube import Kube
    from todo_deploy.mcp import kagent

    settings = load_or_exit().settings
    done = kagent.install(settings, url or kagent.default_url(settings),
                          Kube(settings.context_name), dry_run=dry_run)
    if not done.ok:
        raise Exit(done.explain(), code=1)
    say(done.explain())


def agent_to_ask(loaded: LoadedSettings, playbook: str | None) -> str:
    """This app's agent when `install-agent` put it in the cluster, else kagent's k8s-agent."""
    from todo_deploy.pipeline.registry import stage_module

    default = stage_module("aiops.adapters").KAGENT_AGENT
    if playbook == "doctor":
        return default
    from todo_deploy.kube import Kube, KubeError
    from todo_deploy.mcp import kagent

    try:
        found = kagent.installed_agent(loaded.settings, Kube(loaded.settings.context_name))
    except KubeError:
        return default
    return found or default
