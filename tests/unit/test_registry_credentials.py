"""A registry with credentials (issue 23: 2), without a cluster: the settings, the login,
the push's digest, the pull Secret and imagePullSecrets in every pod spec, the image
check against a pushed digest, the fast failure of an unauthorized pull and the doctor's
finding. The live drill is tests/integration/test_registry_auth.py."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_doctor_rules import NOW, event, pod, waiting
from todo_deploy import doctor, images
from todo_deploy.artifacts import ImageRef, load_images, save_images
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.config import SECRET_KEYS, SettingsError, effective_rows, load_settings
from todo_deploy.doctor import Snapshot, symptoms
from todo_deploy.gates import GateResult, Verdict
from todo_deploy.kube import stuck_reason
from todo_deploy.release.checks import image_check
from todo_deploy.stages import build as build_stage
from todo_deploy.timing import Timeline

HOST = "registry.example:5000"
PASSWORD = "s3cret-registry-password"
CREDENTIALS = {"IMAGE_REGISTRY": f"{HOST}/team", "REGISTRY_USERNAME": "ci",
               "REGISTRY_PASSWORD": PASSWORD}
IMAGES = {
    "backend": ImageRef("backend", f"{HOST}/team/todo-backend", "a1b2c3d4e5f6", "sha256:" + "b" * 64),
    "frontend": ImageRef("frontend", f"{HOST}/team/todo-frontend", "0f1e2d3c4b5a", "sha256:" + "f" * 64),
}
REFUSED = ('rpc error: code = Unknown desc = Error response from daemon: Get '
           f'"http://{HOST}/v2/team/todo-backend/manifests/a1b2c3d4e5f6": unauthorized: '
           'authentication required')


def loaded(tmp_path: Path, **env: str):  # type: ignore[no-untyped-def]
    return load_settings(tmp_path, environ=env)


# --- settings ---------------------------------------------------------------------------------


def test_password_is_a_secret_masked_and_scrubbed(tmp_path: Path) -> None:
    settings = loaded(tmp_path, **CREDENTIALS)
    assert "REGISTRY_PASSWORD" in SECRET_KEYS
    assert PASSWORD in settings.settings.secret_values()  # scrubbed from every output
    rows = {key: value for key, value, _ in effective_rows(settings)}
    assert rows["REGISTRY_PASSWORD"] == "***" and rows["REGISTRY_USERNAME"] == "ci"
    assert settings.settings.registry_host == HOST


@pytest.mark.parametrize(("env", "message"), [
    ({"IMAGE_REGISTRY": HOST, "REGISTRY_USERNAME": "ci"}, "go together"),
    ({"IMAGE_REGISTRY": HOST, "REGISTRY_PASSWORD": PASSWORD}, "go together"),
    ({"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": PASSWORD}, "need IMAGE_REGISTRY"),
])
def test_incomplete_credentials_are_refused(tmp_path: Path, env: dict[str, str],
                                            message: str) -> None:
    with pytest.raises(SettingsError) as info:
        loaded(tmp_path, **env)
    assert message in str(info.value) and PASSWORD not in str(info.value)


# --- login and push ---------------------------------------------------------------------------


class FakeAPI:
    def __init__(self, chunks: list[dict[str, Any]]) -> None:
        self.chunks = chunks

    def push(self, repository: str, **_: Any):  # type: ignore[no-untyped-def]
        return iter(self.chunks)


class FakeClient:
    def __init__(self, login_error: Exception | None = None,
                 chunks: list[dict[str, Any]] | None = None) -> None:
        self.logins: list[dict[str, Any]] = []
        self.login_error = login_error
        self.api = FakeAPI(chunks or [])

    def login(self, **kwargs: Any) -> dict[str, str]:
        self.logins.append(kwargs)
        if self.login_error:
            raise self.login_error
        return {"Status": "Login Succeeded"}


def test_login_uses_the_registry_host_and_the_settings(tmp_path: Path) -> None:
    client, lines = FakeClient(), []
    assert images.registry_login(loaded(tmp_path, **CREDENTIALS).settings, client, lines.append)
    assert client.logins == [{"username": "ci", "password": PASSWORD, "registry": HOST,
                              "reauth": True}]
    assert lines == [f"logged in to {HOST} as ci (REGISTRY_USERNAME/REGISTRY_PASSWORD)"]


def test_no_credentials_no_login(tmp_path: Path) -> None:
    client = FakeClient()
    assert not images.registry_login(loaded(tmp_path, IMAGE_REGISTRY=HOST).settings, client)
    assert client.logins == []


def test_a_refused_login_is_one_line_naming_the_setting(tmp_path: Path) -> None:
    from docker.errors import APIError

    client = FakeClient(APIError("401 Client Error: Unauthorized (\"login attempt to "
                                 f"http://{HOST}/v2/ failed with status: 401 Unauthorized\")"))
    with pytest.raises(images.LoginError) as info:
        images.registry_login(loaded(tmp_path, **CREDENTIALS).settings, client)
    message = str(info.value)
    assert "\n" not in message and PASSWORD not in message
    assert message.startswith(f"cannot log in to {HOST} as ci: the registry refused the credentials")
    assert message.endswith("check REGISTRY_PASSWORD (and REGISTRY_USERNAME)")


def test_push_returns_the_registry_digest() -> None:
    digest = "sha256:" + "d" * 64
    client = FakeClient(chunks=[{"status": "Pushed", "id": "abc"},
                                {"status": "a1b2c3d4e5f6: digest: ..."},
                                {"aux": {"Tag": "a1b2c3d4e5f6", "Digest": digest, "Size": 1}}])
    assert images.push_image(IMAGES["backend"], log=lambda _: None, client=client) == digest


def _push_stage(tmp_path: Path, client: FakeClient) -> GateResult:
    settings = loaded(tmp_path, **CREDENTIALS)
    save_images(settings.state_dir, IMAGES)
    outcomes = {n: images.BuildOutcome(ref, True, 0.0, "", 0) for n, ref in IMAGES.items()}
    result = GateResult("build")
    build_stage.push_images(settings, result, outcomes, Timeline(), client, lambda _: None)
    return result


def test_build_push_logs_in_then_records_the_digests(tmp_path: Path) -> None:
    digest = "sha256:" + "e" * 64
    client = FakeClient(chunks=[{"aux": {"Digest": digest}}])
    result = _push_stage(tmp_path, client)
    assert result.passed and len(client.logins) == 1
    assert {n: r.digest for n, r in load_images(tmp_path / ".state").items()} == {
        "backend": digest, "frontend": digest}


def test_build_push_with_a_refused_login_pushes_nothing(tmp_path: Path) -> None:
    from docker.errors import APIError

    result = _push_stage(tmp_path, FakeClient(APIError("unauthorized: authentication required")))
    login = next(c for c in result.checks if c.name == "registry login")
    assert login.verdict is Verdict.FAIL and "REGISTRY_PASSWORD" in login.fix
    assert [c.verdict for c in result.checks if c.name.startswith("push ")] == [Verdict.SKIP] * 2


# --- the pull Secret and imagePullSecrets ------------------------------------------------------


def pod_specs(objects: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {f"{o['kind']}/{o['metadata']['name']}": o["spec"]["template"]["spec"]
            for o in objects if o["kind"] in ("Deployment", "StatefulSet", "Job")}


def test_every_pod_spec_names_the_pull_secret(tmp_path: Path) -> None:
    settings = loaded(tmp_path, **CREDENTIALS).settings
    rendered = manifests.render_manifests(settings, IMAGES)
    specs = pod_specs(rendered)
    assert set(specs) >= {"Deployment/todo-chatbot-backend", "Deployment/todo-chatbot-frontend",
                          "StatefulSet/todo-chatbot-postgres"}
    assert any(k.startswith("Job/") for k in specs)
    for name, spec in specs.items():
        assert spec.get("imagePullSecrets") == [{"name": "todo-chatbot-registry"}], name
    assert PASSWORD not in json.dumps(rendered)  # never in YAML: only in the Secret


def test_no_credentials_no_pull_secret(tmp_path: Path) -> None:
    settings = loaded(tmp_path, IMAGE_REGISTRY=HOST).settings
    assert all("imagePullSecrets" not in spec
               for spec in pod_specs(manifests.render_manifests(settings, IMAGES)).values())
    assert "todo-chatbot-registry" not in chart_values.secret_data(settings)
    assert chart_values.helm_values(settings, IMAGES)["imagePullSecrets"] == []


def test_the_pull_secret_is_a_dockerconfigjson_for_the_registry_host(tmp_path: Path) -> None:
    settings = loaded(tmp_path, **CREDENTIALS).settings
    (secret,) = [s for s in chart_values.secret_manifests(settings)
                 if s["metadata"]["name"] == "todo-chatbot-registry"]
    assert secret["type"] == "kubernetes.io/dockerconfigjson"
    config = json.loads(secret["stringData"][".dockerconfigjson"])
    entry = config["auths"][HOST]
    assert entry["username"] == "ci" and entry["password"] == PASSWORD
    assert base64.b64decode(entry["auth"]).decode() == f"ci:{PASSWORD}"


def test_new_credentials_roll_the_pods(tmp_path: Path) -> None:
    """The pull Secret is in the pods' checksum: a wrong password shows at the deploy."""
    one = loaded(tmp_path, **CREDENTIALS).settings
    other = loaded(tmp_path, **{**CREDENTIALS, "REGISTRY_PASSWORD": "another-password"}).settings
    assert chart_values.secrets_checksum(one) != chart_values.secrets_checksum(other)


# --- the pods run the pushed digests ------------------------------------------------------------


def _pod_running(image: ImageRef, image_id: str) -> dict[str, Any]:
    return {"metadata": {"name": "backend-1"},
            "spec": {"containers": [{"name": "backend", "image": image.ref}]},
            "status": {"containerStatuses": [{"name": "backend", "imageID": image_id}]}}


def test_a_pulled_pod_matches_the_pushed_digest() -> None:
    digest = "sha256:" + "c" * 64
    pushed = ImageRef("backend", IMAGES["backend"].repository, "a1b2c3d4e5f6",
                      "sha256:" + "1" * 64, digest=digest)
    pulled = f"docker-pullable://{pushed.repository}@{digest}"
    check = image_check([_pod_running(pushed, pulled)], {"backend": pushed})
    assert check.verdict is Verdict.PASS and "pushed digests" in check.evidence
    other = f"docker-pullable://{pushed.repository}@sha256:" + "9" * 64
    assert image_check([_pod_running(pushed, other)], {"backend": pushed}).verdict is Verdict.FAIL


# --- an unauthorized pull: the wait stops, the doctor names the setting --------------------------


class FakeKube:
    def __init__(self, pods: list[dict[str, Any]]) -> None:
        self.pods = pods

    def list(self, *_: Any) -> list[dict[str, Any]]:
        return self.pods


def _refused_pod(reason: str = "ErrImagePull", message: str = REFUSED,
                 secrets: list[str] | None = None) -> dict[str, Any]:
    spec = {"imagePullSecrets": [{"name": n} for n in secrets]} if secrets else {}
    return pod("backend-1", [{"name": "backend", "image": IMAGES["backend"].ref}],
               [waiting("backend", reason, message)], phase="Pending", spec=spec)


def test_an_unauthorized_pull_stops_the_wait_at_once() -> None:
    assert "unauthorized" in stuck_reason(FakeKube([_refused_pod()]), "todo", "x")
    # a pull that may still succeed (a registry starting) is waited for
    slow = _refused_pod(message="dial tcp 10.0.0.1:5000: connect: connection refused")
    assert stuck_reason(FakeKube([slow]), "todo", "x") == ""


def test_doctor_names_registry_password_when_the_pod_sent_the_pull_secret() -> None:
    found = symptoms.container_symptoms(_refused_pod(secrets=["todo-chatbot-registry"]))
    (symptom,) = found
    assert symptom.kind == "registry refused the pull"
    assert f"ErrImagePull for image {IMAGES['backend'].ref}" in symptom.evidence
    assert "unauthorized" in symptom.evidence
    assert symptom.fix.startswith(f"the pull Secret todo-chatbot-registry holds credentials {HOST} "
                                  "refuses: fix REGISTRY_PASSWORD (and REGISTRY_USERNAME)")


def test_doctor_says_set_the_credentials_when_the_pod_sent_none() -> None:
    message = REFUSED.replace("unauthorized: authentication required", "no basic auth credentials")
    (symptom,) = symptoms.container_symptoms(_refused_pod(message=message))
    assert symptom.kind == "registry refused the pull"
    assert "set REGISTRY_USERNAME and REGISTRY_PASSWORD" in symptom.fix


def test_doctor_finds_the_refusal_of_a_backoff_in_the_kubelets_event() -> None:
    """ImagePullBackOff's own message only says "Back-off": the Failed event has the why."""
    p = _refused_pod("ImagePullBackOff", f'Back-off pulling image "{IMAGES["backend"].ref}"',
                     secrets=["todo-chatbot-registry"])
    failed = event("Pod", "backend-1", "Failed",
                   f'Failed to pull image "{IMAGES["backend"].ref}": {REFUSED}',
                   obj={"uid": "uid-backend-1"})
    (finding,) = doctor.diagnose(Snapshot("todo", NOW, pods=[p], events=[failed]))
    assert finding.kind == "registry refused the pull"
    assert "ImagePullBackOff" in finding.evidence and "unauthorized" in finding.evidence
    assert "fix REGISTRY_PASSWORD" in finding.fix


def test_a_missing_image_is_still_image_not_found() -> None:
    p = _refused_pod(message=REFUSED.replace("unauthorized: authentication required",
                                             "manifest unknown"))
    (symptom,) = symptoms.container_symptoms(p)
    assert symptom.kind == "image not found"


def test_the_cloud_doc_gives_the_pull_secret_settings_per_provider() -> None:
    """docs/cloud.md's pull-secret rows (the common one and DOKS, GKE, AKS, OKE) are
    today's and name the settings; none is left 'planned (item 2)'."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "cloud.md").read_text()
    rows = [line for line in text.splitlines()
            if line.startswith(("| pull secret |", "| a pull Secret |"))]
    assert len(rows) == 5
    assert not any("planned (item" in row for row in rows)
    assert "planned (item 2)" not in text and "until item 2" not in text
    assert sum("REGISTRY_PASSWORD" in row for row in rows) == 5


# --- an existing docker config (REGISTRY_AUTH_FILE) -------------------------------------------


def docker_config(**config: Any) -> str:
    return json.dumps(config)


def basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


OTHER_PASSWORD = "other-registry-password"
LOGGED_IN = docker_config(auths={
    HOST: {"auth": basic("ci", PASSWORD)},
    "ghcr.io": {"auth": basic("me", OTHER_PASSWORD)},
})


def with_auth_file(tmp_path: Path, text: str, **env: str):  # type: ignore[no-untyped-def]
    (tmp_path / "docker").mkdir(parents=True, exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(text)
    return loaded(tmp_path, IMAGE_REGISTRY=f"{HOST}/team", REGISTRY_AUTH_FILE="docker/config.json",
                  **env)


def test_the_auth_files_entry_logs_in_and_only_it_reaches_the_pull_secret(tmp_path: Path) -> None:
    settings = with_auth_file(tmp_path, LOGGED_IN).settings
    client, lines = FakeClient(), []
    assert images.registry_login(settings, client, lines.append)
    assert client.logins == [{"username": "ci", "password": PASSWORD, "registry": HOST,
                              "reauth": True}]
    assert lines == [f"logged in to {HOST} as ci (REGISTRY_AUTH_FILE (docker/config.json))"]
    (secret,) = [s for s in chart_values.secret_manifests(settings)
                 if s["metadata"]["name"] == "todo-chatbot-registry"]
    config = json.loads(secret["stringData"][".dockerconfigjson"])
    assert list(config["auths"]) == [HOST]  # the other registry's credentials stay home
    assert config["auths"][HOST]["password"] == PASSWORD
    assert OTHER_PASSWORD not in json.dumps(chart_values.secret_manifests(settings))
    assert PASSWORD in settings.secret_values() and basic("ci", PASSWORD) in settings.secret_values()
    pod_specs = [o["spec"]["template"]["spec"] for o in manifests.render_manifests(settings, IMAGES)
                 if o["kind"] == "Deployment"]
    assert all(s["imagePullSecrets"] == [{"name": "todo-chatbot-registry"}] for s in pod_specs)


@pytest.mark.parametrize(("auths_key", "entry"), [
    (f"https://{HOST}", {"auth": basic("ci", PASSWORD)}),
    (HOST, {"username": "ci", "password": PASSWORD}),
])
def test_the_entry_as_docker_writes_it(tmp_path: Path, auths_key: str, entry: dict[str, str]) -> None:
    login = with_auth_file(tmp_path, docker_config(auths={auths_key: entry})).settings.registry_login()
    assert login is not None and (login.host, login.username, login.password) == (HOST, "ci", PASSWORD)


@pytest.mark.parametrize(("text", "env", "needle"), [
    (docker_config(auths={}, credsStore="desktop"), {},
     f"keeps the credentials for {HOST} in the credential helper docker-credential-desktop"),
    (docker_config(auths={HOST: {}}, credHelpers={HOST: "ecr-login"}), {},
     "docker-credential-ecr-login, which the cluster cannot run"),
    (docker_config(auths={HOST: {"identitytoken": "abc"}}), {}, "only an identity token"),
    (docker_config(auths={"ghcr.io": {"auth": basic("me", "x")}}), {},
     f"has no credentials for {HOST} (IMAGE_REGISTRY's host; registries in it: ghcr.io)"),
    ("{not json", {}, "REGISTRY_AUTH_FILE=docker/config.json is not JSON"),
    (docker_config(auths={HOST: {"auth": "%%%"}}), {}, "is not base64 of user:password"),
    (LOGGED_IN, {"REGISTRY_USERNAME": "ci", "REGISTRY_PASSWORD": "x"}, "not both"),
])
def test_an_auth_file_that_cannot_give_credentials_is_one_line(
        tmp_path: Path, text: str, env: dict[str, str], needle: str) -> None:
    with pytest.raises(SettingsError) as info:
        with_auth_file(tmp_path, text, **env)
    assert needle in str(info.value)
    assert PASSWORD not in str(info.value)


def test_a_missing_auth_file_and_one_without_a_registry(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as info:
        loaded(tmp_path, IMAGE_REGISTRY=HOST, REGISTRY_AUTH_FILE="~/nowhere/config.json")
    assert "REGISTRY_AUTH_FILE=~/nowhere/config.json cannot be read" in str(info.value)
    with pytest.raises(SettingsError) as info:
        loaded(tmp_path, REGISTRY_AUTH_FILE="config.json")
    assert "REGISTRY_AUTH_FILE needs IMAGE_REGISTRY" in str(info.value)


def test_a_refused_login_from_the_auth_file_names_it(tmp_path: Path) -> None:
    from docker.errors import APIError

    client = FakeClient(APIError("401 Client Error: Unauthorized"))
    with pytest.raises(images.LoginError) as info:
        images.registry_login(with_auth_file(tmp_path, LOGGED_IN).settings, client)
    assert str(info.value).endswith(
        f"log in again to {HOST} with that config (`docker login {HOST}`), or fix "
        "REGISTRY_AUTH_FILE (docker/config.json)")
