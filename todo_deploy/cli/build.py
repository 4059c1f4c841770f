"""`inv build`: stage 1, the images (issue 4)."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task
from todo_deploy.components import BUILT_NAMES


@task(
    help={
        "no_cache": "Rebuild every layer, even when an image with the same content tag exists.",
        "push": "Push the images to IMAGE_REGISTRY after the gate passes (needs IMAGE_REGISTRY; "
                "logs in first with REGISTRY_USERNAME/REGISTRY_PASSWORD when they are set).",
        "gordon": "Ask Gordon (`docker ai`, Docker Desktop) to review each Dockerfile.",
        "only": "Build and check only one image: backend or frontend.",
    }
)
def build(
    c: Context, no_cache: bool = False, push: bool = False, gordon: bool = False,
    only: str | None = None,
) -> None:
    """Stage 1: build both images (content-addressed tags), lint, size and smoke-test them."""
    loaded = load_or_exit()
    if only is not None and only not in BUILT_NAMES:
        raise Exit(f"--only must be one of {', '.join(BUILT_NAMES)}, not {only!r}", code=1)
    if push and not loaded.settings.image_registry:
        raise Exit(
            "--push needs a registry: set IMAGE_REGISTRY (e.g. IMAGE_REGISTRY=localhost:5000) "
            "in .env or the environment; without it the images stay in the local engine.",
            code=1,
        )
    from todo_deploy.pipeline import conductor

    # Stage 1 has no predecessor: the guard never refuses.
    conductor.run_stage(loaded, "build", no_cache=no_cache, push=push, gordon=gordon, only=only)
