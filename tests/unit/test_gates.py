"""Gates as data: persisted, rendered, enforced (refusal, --force, exit codes)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from invoke.exceptions import Exit

from todo_deploy.cli import finish, guard
from todo_deploy.config import load_settings
from todo_deploy.gates import Check, GateResult, Verdict, load, refusal, save


@pytest.fixture
def loaded(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_settings(root=tmp_path, environ={})


def _failed_build() -> GateResult:
    return GateResult(
        "build",
        [
            Check.of("lint backend", True, "no findings", "never shown"),
            Check.of("size backend", False, "181.0 MB above base; budget 150 MB",
                     "reduce dependencies in app/backend/requirements.txt"),
            Check("gordon", Verdict.SKIP, "Gordon (docker ai) not found"),
        ],
        details={"images": {"backend": {"ref": "todo-backend:0123456789ab", "added_bytes": 1}}},
    )


def test_check_of_keeps_the_fix_only_when_it_failed() -> None:
    assert Check.of("a", True, "ok", "do this").fix == ""
    failed = Check.of("a", False, "bad", "do this")
    assert (failed.verdict, failed.fix) == (Verdict.FAIL, "do this")


def test_skip_and_warn_do_not_fail_a_gate() -> None:
    result = GateResult("build", [Check("g", Verdict.SKIP, "absent"), Check("w", Verdict.WARN, "")])
    assert result.passed and result.failures == []
    result.checks.append(Check.of("x", False, "broken", "fix it"))
    assert not result.passed and [c.name for c in result.failures] == ["x"]


def test_persistence_round_trip(tmp_path: Path) -> None:
    original = _failed_build()
    path = save(tmp_path / ".state", original)
    assert path == tmp_path / ".state" / "build.json"
    data = json.loads(path.read_text())
    assert data["passed"] is False and data["stage"] == "build"
    restored = load(tmp_path / ".state", "build")
    assert restored == original
    assert restored is not None and restored.details["images"]["backend"]["added_bytes"] == 1
    assert load(tmp_path / ".state", "cluster") is None


def test_a_corrupt_state_file_reads_as_not_run(tmp_path: Path) -> None:
    (tmp_path / "build.json").write_text("{not json")
    assert load(tmp_path, "build") is None


def test_stage_one_never_refuses(tmp_path: Path) -> None:
    assert refusal(tmp_path, "build") is None


def test_refusal_when_the_predecessor_never_ran(tmp_path: Path) -> None:
    reason = refusal(tmp_path, "cluster")
    assert reason is not None
    assert "`inv cluster`" in reason and "`inv build`" in reason


def test_refusal_names_the_failed_check_and_the_fixing_command(tmp_path: Path) -> None:
    save(tmp_path, _failed_build())
    reason = refusal(tmp_path, "cluster")
    assert reason is not None
    assert "'size backend'" in reason
    assert "181.0 MB above base" in reason
    assert "reduce dependencies in app/backend/requirements.txt" in reason
    assert "re-run `inv build`" in reason


def test_any_passed_predecessor_lets_a_stage_run(tmp_path: Path) -> None:
    save(tmp_path, GateResult("deploy", [Check.of("rollout", False, "timed out", "see pods")]))
    assert refusal(tmp_path, "verify") is not None
    save(tmp_path, GateResult("helm", [Check.of("release", True, "deployed")]))
    assert refusal(tmp_path, "verify") is None


def test_guard_refuses_with_exit_1_and_the_reason(loaded) -> None:  # type: ignore[no-untyped-def]
    save(loaded.state_dir, _failed_build())
    with pytest.raises(Exit) as caught:
        guard(loaded, "cluster", force=False)
    assert caught.value.code == 1
    assert "'size backend'" in str(caught.value.message)
    assert "--force" in str(caught.value.message)


def test_guard_force_runs_anyway_and_says_why(
    loaded, capsys: pytest.CaptureFixture[str]  # type: ignore[no-untyped-def]
) -> None:
    save(loaded.state_dir, _failed_build())
    guard(loaded, "cluster", force=True)  # no exception
    out = capsys.readouterr().out
    assert "--force" in out and "size backend" in out


def test_finish_persists_and_exits_non_zero_on_failure(loaded) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(Exit) as caught:
        finish(loaded, _failed_build())
    assert caught.value.code == 1
    assert "size backend" in str(caught.value.message)
    stored = load(loaded.state_dir, "build")
    assert stored is not None and not stored.passed


def test_finish_returns_a_passed_result(loaded, capsys) -> None:  # type: ignore[no-untyped-def]
    result = GateResult("build", [Check.of("lint backend", True, "no findings")])
    assert finish(loaded, result) is result
    assert "PASSED" in capsys.readouterr().out
    assert refusal(loaded.state_dir, "cluster") is None


def _at(stage: str, when: str, scope: str = "ctx/todo/rel", basis: str = "", ok: bool = True):
    from todo_deploy.gates import GateResult as G

    return G(stage, [Check.of("c", ok, "e")], when, {}, scope, basis)


def test_a_gate_stands_only_for_what_it_describes(tmp_path: Path) -> None:
    from todo_deploy.gates import standing

    state = tmp_path / ".state"
    save(state, _at("deploy", "2026-01-01T10:00:00+00:00", basis="raw-1"))
    save(state, _at("verify", "2026-01-01T10:05:00+00:00", basis="raw-1"))
    assert standing(state, "verify", "ctx/todo/rel")[0] is not None
    # another namespace: not this deployment's gate
    result, why = standing(state, "verify", "ctx/other/rel")
    assert result is None and why == "last run for ctx/todo/rel"
    # switching raw -> Helm: the raw gate is replaced, the old verify is stale
    save(state, _at("helm", "2026-01-01T11:00:00+00:00", basis="helm-1"))
    result, why = standing(state, "deploy", "ctx/todo/rel")
    assert result is None and why.startswith("replaced by inv deploy --helm")
    result, why = standing(state, "verify", "ctx/todo/rel")
    assert result is None and why.startswith("stale: the deployment changed")
    assert standing(state, "helm", "ctx/todo/rel")[0] is not None
    # a failed helm upgrade does not replace the standing raw deployment's record
    save(state, _at("deploy", "2026-01-01T12:00:00+00:00", basis="raw-2"))
    save(state, _at("helm", "2026-01-01T12:30:00+00:00", basis="helm-2", ok=False))
    assert standing(state, "deploy", "ctx/todo/rel")[0] is not None
    # nothing deployed any more (inv down removes the deploy gates): later gates are gone too
    (state / "deploy.json").unlink()
    (state / "helm.json").unlink()
    save(state, _at("docs", "2026-01-01T13:00:00+00:00", basis="raw-2"))
    result, why = standing(state, "docs", "ctx/todo/rel")
    assert result is None and why == "the deployment it examined is gone"


def test_refusal_ignores_a_gate_of_another_target(tmp_path: Path) -> None:
    from todo_deploy.gates import STAGES

    save(tmp_path, _at("cluster", "2026-01-01T10:00:00+00:00", scope="other-context"))
    scopes = dict.fromkeys(STAGES, "ctx")
    assert refusal(tmp_path, "deploy") is None  # without scopes: any pass counts
    assert refusal(tmp_path, "deploy", scopes) is not None
    assert refusal(tmp_path, "deploy", {**scopes, "cluster": "other-context"}) is None


# ---- the image check of the deploy gates ------------------------------------------------------


def _pod(name: str, image: str, image_id: str) -> dict:
    return {"metadata": {"name": name},
            "spec": {"containers": [{"name": "backend", "image": image}]},
            "status": {"containerStatuses": [{"name": "backend", "imageID": image_id}]}}


def test_image_check_fails_a_wrong_image_and_passes_over_unstarted_containers():
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.release.checks import image_check

    built = ImageRef("backend", "todo-backend", "abc", image_id="sha256:" + "1" * 64)
    images = {"backend": built}
    right = _pod("b-1", built.ref, "docker-pullable://todo-backend@sha256:" + "1" * 64)
    other = _pod("b-2", built.ref, "docker://sha256:" + "2" * 64)
    surplus = _pod("b-3", built.ref, "")  # scaled away before it started: runs nothing

    ok = image_check([right, surplus], images)
    assert ok.verdict is Verdict.PASS, ok.evidence
    assert "not started yet, not counted: b-3" in ok.evidence
    assert image_check([right, other], images).verdict is Verdict.FAIL
    assert "b-2 runs docker://sha256:2222" in image_check([right, other], images).evidence
    # Nothing started at all proves nothing.
    assert image_check([surplus], images).verdict is Verdict.FAIL
