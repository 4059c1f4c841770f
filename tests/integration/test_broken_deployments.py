"""A real release broken the ways users break it, and what the workflow says then.

- a failed raw_deploy, then `inv aiops doctor` (no gate refuses it);
- (the database StatefulSet scaled to 0, the doctor naming it first, and `inv deploy`
  restoring it: test_mcp_cluster's, on its deployment that is at 0 anyway);
- an image set by hand that is not the one `inv build` recorded;
- 20 backend replicas that cannot fit: one finding with a pod count, no minikube hint
  on an `existing` cluster;
- `inv down --all` then a new deploy with identical settings and images: verify's
  "nothing changed" shortcut does not apply to the new objects.

The doctor runs through the CLI (`python3 -m invoke aiops doctor`) with the scratch
settings root as TODO_DEPLOY_ROOT, as a user runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import ROOT, Scratch, drop_namespace, poll_until
from todo_deploy import doctor
from todo_deploy.artifacts import ImageRef, load_images
from todo_deploy.config import Settings
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.kube import Kube
from todo_deploy.stages import raw_deploy, teardown
from todo_deploy.stages.aiops.stage import doctor_checks

pytestmark = pytest.mark.cluster

SETTING_KEYS = {name.upper() for name in Settings.model_fields}
QUIET: Callable[[str], None] = lambda _: None


def inv(s: Scratch, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTING_KEYS}
    env.update(s.env, TODO_DEPLOY_ROOT=str(s.root), COLUMNS="220", NO_COLOR="1")
    return subprocess.run(
        [sys.executable, "-m", "invoke", *args], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=timeout, check=False,
    )


def kubectl(*args: str) -> str:
    done = subprocess.run(["kubectl", *args], capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, f"kubectl {' '.join(args)}: {done.stderr}"
    return done.stdout


def wait_for_findings(
    s: Scratch, ready: Callable[[list[doctor.Finding]], bool], deadline_s: float = 240,
    interval_s: float = 1.0,
) -> list[doctor.Finding]:
    """The doctor (in-process, as the CLI calls it) every `interval_s` until
    `ready(findings)` or the deadline."""
    loaded = s.settings()

    def findings() -> list[doctor.Finding]:
        return doctor_checks(loaded.settings, s.namespace, images=load_images(loaded.state_dir))[1]

    return poll_until(findings, ready, deadline_s, interval_s)


def stored_findings(s: Scratch) -> list[dict[str, Any]]:
    return json.loads((s.root / ".state" / "aiops.json").read_text())["details"]["findings"]


# --- a failed raw_deploy, then the doctor ---------------------------------------------------------


def test_a_failed_deploy_is_explained_and_the_doctor_still_runs(
    scratch: Callable[[], Scratch], built_images: dict[str, ImageRef], broken_backend: ImageRef
) -> None:
    s = scratch()
    s.set_images({**built_images, "backend": broken_backend})
    s.env["DEPLOY_TIMEOUT_SECONDS"] = "150"
    deployed = inv(s, "deploy", "--force")
    output = deployed.stdout + deployed.stderr
    print(output[-4000:])
    assert deployed.returncode != 0, output[-2000:]
    assert "deploy gate failed" in output
    # the rollout's failure is explained by the doctor's engine: the cause, once, with the log
    assert "the doctor's diagnosis of namespace" in output
    assert f"CrashLoopBackOff: Deployment/{s.release}-backend" in output
    assert "broken on purpose" in output
    assert f"pods of Deployment {s.release}-backend: CrashLoopBackOff" in output

    done = inv(s, "aiops", "doctor")
    said = done.stdout + done.stderr
    print(said)
    assert "refuse" not in said and "--force" not in said, said
    assert f"doctor: reading namespace {s.namespace}" in said
    assert done.returncode == 1  # findings fail the aiops gate; the doctor did run
    findings = stored_findings(s)
    crash = [f for f in findings if f["object"] == f"Deployment/{s.release}-backend"]
    assert crash and crash[0]["kind"] == "CrashLoopBackOff", findings
    assert "broken on purpose" in crash[0]["evidence"]
    assert all(f["observed_at"] for f in findings)


# --- one healthy release, broken by hand two ways -------------------------------------------


@pytest.fixture(scope="module")
def release(
    tmp_path_factory: pytest.TempPathFactory, built_images: dict[str, ImageRef]
) -> Iterator[Scratch]:
    s = Scratch(tmp_path_factory.mktemp("broken"), built_images)
    try:
        first = raw_deploy.run(s.settings(), log=print)
        assert first.passed, [(c.name, c.evidence) for c in first.failures]
        yield s
    finally:
        drop_namespace(s.settings())


def restore(s: Scratch) -> None:
    """`inv deploy` puts back what was changed by hand (server-side apply takes the fields back)."""
    again = raw_deploy.run(s.settings(), log=print)
    assert again.passed, [(c.name, c.evidence) for c in again.failures]
    _, findings = doctor_checks(s.settings().settings, s.namespace,
                                images=load_images(s.root / ".state"))
    assert findings == [], [f.to_dict() for f in findings]


def test_an_image_set_by_hand_is_not_the_recorded_build(
    release: Scratch, changed_backend: ImageRef
) -> None:
    s = release
    backend = f"{s.release}-backend"
    recorded = load_images(s.root / ".state")["backend"]
    kubectl("-n", s.namespace, "set", "image", f"deployment/{backend}",
            f"backend={changed_backend.ref}")
    kubectl("-n", s.namespace, "rollout", "status", f"deployment/{backend}", "--timeout=200s")

    done = inv(s, "aiops", "doctor")
    said = done.stdout + done.stderr
    print(said)
    assert done.returncode == 1
    [finding] = stored_findings(s)
    assert finding["kind"] == "image differs from the build"
    assert finding["object"] == f"Deployment/{backend}"
    assert f"is set to {changed_backend.ref}, but `inv build` recorded {recorded.ref}" in (
        finding["evidence"])
    assert "`inv deploy` puts the recorded image back" in finding["fix"]
    restore(s)


def test_twenty_replicas_that_cannot_fit_are_one_finding(release: Scratch) -> None:
    s = release
    backend = f"{s.release}-backend"
    # Nothing of this may take CPU others on the shared node need: the old pods go first,
    # and each new pod asks for more CPU than the node has, so none is ever placed.
    kubectl("-n", s.namespace, "scale", f"deployment/{backend}", "--replicas=0")
    kubectl("-n", s.namespace, "rollout", "status", f"deployment/{backend}", "--timeout=120s")
    kubectl("-n", s.namespace, "patch", f"deployment/{backend}", "--type=strategic", "-p", json.dumps(
        {"spec": {"replicas": 20, "template": {"spec": {"containers": [
            {"name": "backend", "resources": {"requests": {"cpu": "3"}, "limits": {"cpu": "3"}}}
        ]}}}}))
    wanted = f"20 of 20 pods of Deployment {backend}: Pending, Insufficient cpu"
    wait_for_findings(s, lambda fs: any(f.evidence.startswith(wanted) for f in fs))

    done = inv(s, "aiops", "doctor")
    said = done.stdout + done.stderr
    print(said)
    assert done.returncode == 1
    stored = stored_findings(s)
    pending = [f for f in stored if f["kind"] == "Pending: insufficient cpu"]
    assert len(pending) == 1 and pending[0]["evidence"].startswith(wanted), stored
    assert pending[0]["object"] == f"Deployment/{backend}"
    assert "each pod requests 3 cpu, the largest node allocates" in pending[0]["evidence"]
    assert "each pod asks for more than a node has" in pending[0]["fix"]
    assert "add a node with more cpu to the cluster" in pending[0]["fix"]
    assert f"Service/{backend} has no ready endpoint" in pending[0]["consequences"]
    assert "MINIKUBE" not in said and "minikube" not in said
    assert len(stored) == 1, stored
    # one finding, not a line per pod: one pod is named as the example, the rest counted
    assert len(set(re.findall(rf"{backend}-[a-z0-9]+-[a-z0-9]+", said))) == 1
    assert len(said.splitlines()) < 60, len(said.splitlines())


# --- down, then up again ---------------------------------------------------------------------


def test_down_then_up_is_a_new_deployment_for_verify(scratch: Callable[[], Scratch]) -> None:
    from todo_deploy.gate_details import VerifyDetails
    from todo_deploy.gates import scopes_for, standing
    from todo_deploy.pipeline import deployed_basis, record
    from todo_deploy.pipeline.conductor import same_deployment_fully_verified
    from todo_deploy.stages.verify.stage import live_identity

    s = scratch()
    loaded = s.settings()
    kube = Kube(loaded.settings.context_name)
    first = raw_deploy.run(loaded, log=QUIET)
    assert first.passed, [(c.name, c.evidence) for c in first.failures]
    record(loaded, first)
    before = live_identity(kube, loaded.settings)
    # what a full `inv verify` leaves behind (its checks themselves are test_verify's)
    verified = GateResult("verify", [Check("journey", Verdict.PASS, "recorded by the test")],
                          details=VerifyDetails(full=True, live=before).as_dict())
    record(loaded, verified)
    assert same_deployment_fully_verified(loaded)  # the shortcut applies to the same objects
    basis = deployed_basis(loaded, "deploy")

    down = teardown.run(loaded, all_=True, yes=True, log=QUIET)
    assert down.namespace_deleted, down.message
    again = raw_deploy.run(s.settings(), log=QUIET)
    assert again.passed, [(c.name, c.evidence) for c in again.failures]
    record(loaded, again)
    assert deployed_basis(loaded, "deploy") == basis  # identical settings and images
    assert not same_deployment_fully_verified(loaded)
    # Even with the old verify record still standing (a namespace deleted with kubectl, not
    # `inv down`: same scope, same basis), the new objects are not the ones that passed.
    record(loaded, verified)
    assert standing(loaded.state_dir, "verify", scopes_for(loaded.settings)["verify"])[0] is not None
    assert live_identity(kube, loaded.settings) != before
    assert not same_deployment_fully_verified(loaded)
