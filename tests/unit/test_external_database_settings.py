"""A hosted PostgreSQL's URL (Neon: `?sslmode=require&channel_binding=require`) passes the
workflow's settings untouched into the backend's Secret, and is shown masked; the probe
interval reaches the ConfigMap on both deploy paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from todo_deploy import helm
from todo_deploy.artifacts import ImageRef
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import load_settings, mask_url

IMAGES = {
    "backend": ImageRef("backend", "todo-backend", "c0ffee1234567890"),
    "frontend": ImageRef("frontend", "todo-frontend", "beef00112233aabb"),
}
NEON = ("postgresql://alex:AbC123dEf%40@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb"
        "?sslmode=require&channel_binding=require")
VERIFIED = ("postgresql://alex:pw@db.example.com:5432/todo"
            "?sslmode=verify-full&sslrootcert=/etc/ssl/certs/ca-certificates.crt&channel_binding=require")


@pytest.mark.parametrize("url", [NEON, VERIFIED], ids=["require", "verify-full"])
def test_the_url_reaches_the_backend_secret_untouched(tmp_path: Path, url: str) -> None:
    s = load_settings(tmp_path, environ={"DATABASE_MODE": "external", "DATABASE_URL": url}).settings
    assert s.database_url.get_secret_value() == url
    assert chart_values.secret_data(s)["todo-chatbot-backend"]["DATABASE_URL"] == url
    assert url not in str(chart_values.helm_values(s, IMAGES))  # the chart gets the Secret's name only


def test_the_url_is_shown_without_its_password() -> None:
    shown = mask_url(NEON)
    assert "AbC123dEf" not in shown
    assert shown == ("postgresql://***@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb"
                     "?sslmode=require&channel_binding=require")


def test_probe_interval_reaches_the_configmap_on_both_paths(tmp_path: Path) -> None:
    s = load_settings(tmp_path, environ={"DB_PROBE_SECONDS": "600"}).settings
    raw = next(o for o in manifests.render_manifests(s, IMAGES) if o["kind"] == "ConfigMap")
    chart = next(o for o in helm.embedded().template(chart_values.CHART_DIR, s.release_name, s.namespace,
                                                     chart_values.helm_values(s, IMAGES), kube_version="v1.20.2")
                 if o["kind"] == "ConfigMap")
    assert raw["data"]["DB_PROBE_SECONDS"] == chart["data"]["DB_PROBE_SECONDS"] == "600"
    (tmp_path / "d").mkdir()
    default = load_settings(tmp_path / "d", environ={}).settings
    configmap = next(o for o in manifests.render_manifests(default, IMAGES) if o["kind"] == "ConfigMap")
    assert configmap["data"]["DB_PROBE_SECONDS"] == "60"


def test_probe_interval_too_short_is_refused(tmp_path: Path) -> None:
    from todo_deploy.config import SettingsError

    with pytest.raises(SettingsError, match="DB_PROBE_SECONDS"):
        load_settings(tmp_path, environ={"DB_PROBE_SECONDS": "1"})
