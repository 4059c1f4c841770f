"""A smoke test is reused only for the exact image ID a passed gate proved."""

from todo_deploy.artifacts import ImageRef
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.stages.build import SMOKE_CHECKS, proven_smoke_checks, reused_evidence

IMAGE = ImageRef("backend", "todo-backend", "abc", image_id="sha256:" + "1" * 64)


def _gate(image_id: str, verdict: Verdict = Verdict.PASS) -> GateResult:
    checks = [Check(f"{n} backend", verdict, "ok") for n in SMOKE_CHECKS]
    checks += [Check("size backend", Verdict.PASS, "fits"), Check("healthy frontend", verdict, "x")]
    return GateResult("build", checks, details={"images": {"backend": {"image_id": image_id}}})


def test_same_image_id_reuses_only_its_own_smoke_checks() -> None:
    proven = proven_smoke_checks(_gate(IMAGE.image_id), "backend", IMAGE)
    assert [c.name for c in proven] == [f"{n} backend" for n in SMOKE_CHECKS]
    assert all("same image ID" in c.evidence for c in proven)


def test_reused_evidence_names_the_proving_run_once_however_often_reused() -> None:
    gate = _gate(IMAGE.image_id)
    gate.finished_at = "2026-01-01T00:00:00+00:00"
    for n in range(3):
        proven = proven_smoke_checks(gate, "backend", IMAGE)
        gate = GateResult("build", proven, details=gate.details, finished_at=f"2026-01-0{n + 2}")
    assert {c.evidence for c in proven} == {"ok (at 2026-01-01T00:00:00+00:00, same image ID)"}
    # A gate written before the rule, with the note repeated: the first run's note stays.
    assert reused_evidence("ok (at T1, same image ID) (at T2, same image ID)", "T3") == \
        "ok (at T1, same image ID)"


def test_other_image_id_or_failed_gate_or_no_gate_reuses_nothing() -> None:
    assert proven_smoke_checks(_gate("sha256:" + "2" * 64), "backend", IMAGE) == []
    assert proven_smoke_checks(_gate(IMAGE.image_id, Verdict.FAIL), "backend", IMAGE) == []
    assert proven_smoke_checks(None, "backend", IMAGE) == []
    unbuilt = ImageRef("backend", "todo-backend", "abc", image_id="")
    assert proven_smoke_checks(_gate(""), "backend", unbuilt) == []
