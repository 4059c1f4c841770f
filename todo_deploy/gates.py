"""Gates as data: a stage returns checks; the CLI renders them; docs report them.

A gate result is persisted to `.state/<stage>.json` so that the next stage
can refuse to run while its predecessor's gate has not passed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any


class Verdict(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    WARN = "warn"
    SKIP = "skip"


@dataclass(frozen=True)
class Check:
    name: str
    verdict: Verdict
    evidence: str = ""
    fix: str = ""

    @classmethod
    def of(cls, name: str, ok: bool, evidence: str, fix: str = "") -> Check:
        """A pass/fail check; the fix hint is kept only when it failed."""
        return cls(name, Verdict.PASS if ok else Verdict.FAIL, evidence, "" if ok else fix)


@dataclass
class GateResult:
    stage: str
    checks: list[Check] = field(default_factory=list)
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(c.verdict is not Verdict.FAIL for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.verdict is Verdict.FAIL]

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passed"] = self.passed
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        checks = [Check(c["name"], Verdict(c["verdict"]), c["evidence"], c["fix"]) for c in data["checks"]]
        return cls(data["stage"], checks, data["finished_at"], data.get("details", {}))


# Stage name -> (the command that runs it, the stages any one of which must have passed first).
STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "build": ("inv build", ()),
    "cluster": ("inv cluster", ("build",)),
    "deploy": ("inv deploy", ("cluster",)),
    "helm": ("inv deploy --helm", ("cluster",)),
    "aiops": ("inv aiops", ("deploy", "helm")),
    "verify": ("inv verify", ("deploy", "helm")),
    "docs": ("inv docs", ("deploy", "helm")),
}


def save(state_dir: Path, result: GateResult) -> Path:
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / f"{result.stage}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2))
    tmp.replace(path)
    return path


def load(state_dir: Path, stage: str) -> GateResult | None:
    path = state_dir / f"{stage}.json"
    try:
        return GateResult.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError):
        return None


def load_all(state_dir: Path) -> dict[str, GateResult | None]:
    return {stage: load(state_dir, stage) for stage in STAGES}


def refusal(state_dir: Path, stage: str) -> str | None:
    """Why `stage` may not run yet, or None when a predecessor's gate passed."""
    needs = STAGES[stage][1]
    if not needs:
        return None
    results = {name: load(state_dir, name) for name in needs}
    if any(r is not None and r.passed for r in results.values()):
        return None
    ran = [r for r in results.values() if r is not None]
    if not ran:
        commands = " or ".join(f"`{STAGES[n][0]}`" for n in needs)
        return f"`{STAGES[stage][0]}` needs a passed {'/'.join(needs)} gate first: run {commands}."
    latest = max(ran, key=lambda r: r.finished_at)
    failed = latest.failures[0]
    hint = f" Fix: {failed.fix}" if failed.fix else ""
    return (
        f"`{STAGES[stage][0]}` refuses to run: the {latest.stage} gate failed at "
        f"check '{failed.name}' ({failed.evidence}).{hint} Then re-run `{STAGES[latest.stage][0]}`."
    )
