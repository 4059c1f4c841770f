"""MIGRATION_BACKOFF_LIMIT: the migration Job's retries, on both deploy paths. The
cluster tests set it to 0 so a migration that must fail fails at its first attempt
(backoffLimit 3 waits out the Job controller's back-off: ~70-90 s)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import Settings, load_settings

IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "a1b2c3d4e5f6"),
    "frontend": ImageRef("frontend", "todo-frontend", "0f1e2d3c4b5a"),
}


def migration_job(settings: Settings) -> dict:
    [job] = [o for o in manifests.render_manifests(settings, IMAGES) if o["kind"] == "Job"]
    return job


def test_the_default_keeps_three_retries(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={}).settings
    assert settings.migration_backoff_limit == 3
    assert migration_job(settings)["spec"]["backoffLimit"] == 3
    assert chart_values.helm_values(settings, IMAGES)["migration"]["backoffLimit"] == 3


def test_zero_reaches_the_job_on_both_paths(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, environ={"MIGRATION_BACKOFF_LIMIT": "0"}).settings
    assert migration_job(settings)["spec"]["backoffLimit"] == 0  # raw path (`inv deploy`)
    assert chart_values.helm_values(settings, IMAGES)["migration"]["backoffLimit"] == 0  # --helm
    # the raw path's Job name key is kept next to it
    assert chart_values.raw_values(settings, IMAGES)["migration"]["key"] == chart_values.migration_key(
        settings, IMAGES["backend"])


@pytest.mark.parametrize("value", [-1, 11])
def test_out_of_range_is_refused(value: int) -> None:
    with pytest.raises(ValidationError, match="migration_backoff_limit"):
        Settings(migration_backoff_limit=value)
