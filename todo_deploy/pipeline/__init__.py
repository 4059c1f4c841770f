"""The seven stages in order, and what identifies a deployment.

The order and the code of each stage are in `registry`; the conductor (`conductor`)
runs them: guard, run, record (here), render. A deploy/helm gate records
the fingerprint of what it deployed (`deployed_basis`), and every later gate the
deployment it examined, so a pass never outlives its subject (gates.standing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from todo_deploy.artifacts import images_path
from todo_deploy.console import say
from todo_deploy.gates import (
    AFTER_DEPLOY,
    DEPLOY_STAGES,
    GateResult,
    current_deployment,
    fingerprint,
    save,
    scopes_for,
)
from todo_deploy.images.prune import after_build_in_background

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings


def deployed_basis(loaded: LoadedSettings, stage: str) -> str:
    """The fingerprint of what a deploy/helm gate deployed: settings, images and mode."""
    try:
        images = images_path(loaded.state_dir).read_text()
    except OSError:
        images = ""
    return fingerprint(loaded.settings.model_dump_json(), images, stage)


def record(loaded: LoadedSettings, result: GateResult) -> GateResult:
    """Persist a gate result with what it describes (scope) and examined (basis)."""
    result.scope = scopes_for(loaded.settings).get(result.stage, "")
    if result.stage in DEPLOY_STAGES:
        result.basis = deployed_basis(loaded, result.stage)
    elif result.stage in AFTER_DEPLOY:
        deployment = current_deployment(loaded.state_dir, result.scope)
        result.basis = deployment.basis if deployment else ""
    save(loaded.state_dir, result)
    if result.stage == "build" and result.passed:
        after_build_in_background(loaded, result, say)  # KEEP_IMAGE_TAGS; none if none built
    return result
