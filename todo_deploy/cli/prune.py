"""`inv prune`: the project's own old image tags (see todo_deploy/images/prune.py)."""

from __future__ import annotations

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task


@task(
    help={
        "yes": "Remove them; without it, only list what would be removed (a dry run).",
        "keep": "Tags to keep per image, newest first (default: KEEP_IMAGE_TAGS).",
    }
)
def prune(c: Context, yes: bool = False, keep: str | None = None) -> None:
    """List our own old image tags; --yes removes them."""
    from todo_deploy import images
    from todo_deploy.console import say
    from todo_deploy.images import prune as pruning

    loaded = load_or_exit()
    kept = loaded.settings.keep_image_tags if keep is None else int(keep)
    if kept < 0:
        raise Exit("--keep must be 0 or more", code=1)
    try:
        client = images.engine()
    except images.EngineUnavailable as exc:
        raise Exit(f"{exc}; start Docker, then `inv prune`", code=1) from None
    found = pruning.make_plan(loaded, client, kept)
    if yes:
        found = pruning.remove(client, found)
    for line in pruning.describe(found, removed=yes):
        say(line)
