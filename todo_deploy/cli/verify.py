"""`inv verify`: stage 6, the end-to-end gate through the deployed frontend."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

CHECK_HELP = (
    "frontend-page, signup, task-journey, chat-adds-task, isolation-rest, isolation-chat, "
    "backend-readiness, no-restarts, image-identity, pod-security, self-healing, persistence, "
    "cleanup"
)


@task(
    help={
        "only": f"Comma-separated checks to run (cleanup always runs unless skipped): {CHECK_HELP}.",
        "skip": "Comma-separated checks to leave out (e.g. self-healing,persistence; "
        "'cleanup' keeps the verify-* test users and tasks for inspection).",
        "access": "How to reach the frontend: 'auto' (minikube service / NodePort / "
        "LoadBalancer, else a port-forward) or 'port-forward'.",
        "force": "Run even if no deploy/helm gate has passed.",
    }
)
def verify(
    c: Context, only: str = "", skip: str = "", access: str = "auto", force: bool = False
) -> None:
    """Verify the deployed app end to end through its frontend (stage 6).

    Signs up two test users, walks the task journey and the chat, proves the users are
    isolated, then checks readiness, restarts, image identity and Pod Security of the
    live pods, deletes a backend pod under load (self-healing) and restarts every pod
    (persistence). Writes .state/verify.json; exits non-zero on any failed check.
    """
    from todo_deploy.access import ACCESS_MODES
    from todo_deploy.pipeline import conductor
    from todo_deploy.pipeline.registry import stage_module

    if access not in ACCESS_MODES:
        raise Exit(f"--access must be one of {', '.join(ACCESS_MODES)}", code=2)
    loaded = load_or_exit()
    try:
        conductor.run_verify(loaded, force=force, only=only or None, skip=skip or None,
                             access=access)
    except stage_module("verify.checks").SelectionError as exc:
        raise Exit(str(exc), code=2) from None
