"""A smoke test is reused only for the exact image ID a passed gate proved."""

from todo_deploy.artifacts import ImageRef
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.stages.build import SMOKE_CHECKS, proven_smoke_checks

IMAGE = ImageRef("backend", "todo-backend", "abc", image_id="sha256:" + "1" * 64)


def _gate(image_id: str, verdict: Verdict = Verdict.PASS) -> GateResult:
    checks = [Check(f"{n} backend", verdict, "ok") for n in SMOKE_CHECKS]
    checks += [Check("size backend", Verdict.PASS, "fits"), Check("healthy frontend", verdict, "x")]
    return GateResult("build", checks, details={"images": {"backend": {"image_id": image_id}}})


def test_same_image_id_reuses_only_its_own_smoke_checks() -> None:
    proven = proven_smoke_checks(_gate(IMAGE.image_id), "backend", IMAGE)
    assert [c.name for c in proven] == [f"{n} backend" for n in SMOKE_CHECKS]
    assert all("same image ID" in c.evidence for c in proven)


def test_other_image_id_or_failed_gate_or_no_gate_reuses_nothing() -> None:
    assert proven_smoke_checks(_gate("sha256:" + "2" * 64), "backend", IMAGE) == []
    assert proven_smoke_checks(_gate(IMAGE.image_id, Verdict.FAIL), "backend", IMAGE) == []
    assert proven_smoke_checks(None, "backend", IMAGE) == []
    unbuilt = ImageRef("backend", "todo-backend", "abc", image_id="")
    assert proven_smoke_checks(_gate(""), "backend", unbuilt) == []
