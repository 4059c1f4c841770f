"""Gates as data: a stage returns checks; the CLI renders them; docs report them.

A gate result is persisted to `.state/<stage>.json` so that the next stage
can refuse to run while its predecessor's gate has not passed.

Each result says what it describes, so that a pass never outlives its subject:
`scope` is the cluster context (cluster) or context/namespace/release (every
stage from deploy on); `basis` is, for deploy/helm, the fingerprint of what was
deployed (settings, images, mode) and, for the stages after them, the basis of
the deployment they examined. A result whose scope differs from the current
settings is "not run" for them; one whose basis differs from the current
deployment's is stale.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self


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


class Details:
    """Base of each stage's typed gate details (a dataclass per stage).

    A gate stores them in its JSON as a plain dict; `Kind.of(result)` reads them
    back typed (unknown keys ignored, missing ones at their defaults), so a
    stage that reads another's details names its fields, never string keys.
    """

    @classmethod
    def of(cls, result: GateResult | None) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]  # each subclass is a dataclass
        data = (result.details if result is not None else {}) or {}
        return cls(**{k: v for k, v in data.items() if k in known})

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]  # each subclass is a dataclass


@dataclass
class GateResult:
    stage: str
    checks: list[Check] = field(default_factory=list)
    finished_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    details: dict[str, Any] = field(default_factory=dict)
    scope: str = ""  # what it describes: "" (this machine), a context, or context/ns/release
    basis: str = ""  # deploy/helm: what was deployed; later stages: the deployment examined

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
        return cls(data["stage"], checks, data["finished_at"], data.get("details", {}),
                   data.get("scope", ""), data.get("basis", ""))


@dataclass(frozen=True)
class StageInfo:
    command: str  # what runs it
    needs: tuple[str, ...]  # any one of these must have passed first
    number: int  # its number among the README's seven stages
    title: str


# Every stage (the order `inv up` runs them in is pipeline.registry.ORDER).
STAGES: dict[str, StageInfo] = {
    "build": StageInfo("inv build", (), 1, "containerize"),
    "cluster": StageInfo("inv cluster", ("build",), 2, "local cluster"),
    "deploy": StageInfo("inv deploy", ("cluster",), 3, "raw manifests"),
    "helm": StageInfo("inv deploy --helm", ("cluster",), 4, "Helm chart"),
    "aiops": StageInfo("inv aiops", ("deploy", "helm"), 5, "AIOps"),
    "verify": StageInfo("inv verify", ("deploy", "helm"), 6, "end-to-end"),
    "docs": StageInfo("inv docs", ("deploy", "helm"), 7, "docs"),
}


DEPLOY_STAGES = ("deploy", "helm")
AFTER_DEPLOY = ("aiops", "verify", "docs")


def scope_of(stage: str, context: str, namespace: str, release: str) -> str:
    """What a gate of `stage` describes under the given settings."""
    if stage == "build":
        return ""
    if stage == "cluster":
        return context or "(current context)"
    return f"{context or '(current context)'}/{namespace}/{release}"


def scopes_for(settings: Any) -> dict[str, str]:
    """stage -> what its gate describes under `settings` (a config.Settings)."""
    return {
        stage: scope_of(stage, settings.context_name, settings.namespace, settings.release_name)
        for stage in STAGES
    }


def fingerprint(*parts: str) -> str:
    """A short stable hash of the parts (what was deployed)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:16]


def current_deployment(state_dir: Path, scope: str) -> GateResult | None:
    """The latest passed deploy/helm gate of `scope`: the deployment that exists."""
    found = [r for r in (load(state_dir, s) for s in DEPLOY_STAGES)
             if r is not None and r.scope == scope and r.passed]
    return max(found, key=lambda r: r.finished_at, default=None)


def standing(state_dir: Path, stage: str, scope: str) -> tuple[GateResult | None, str]:
    """The gate of `stage` that describes `scope` now, and why an older one does not.

    Returns (result, "") when it stands, (None, reason) when there is none for
    this scope or it is stale (its deployment was replaced or removed).
    """
    result = load(state_dir, stage)
    if result is None:
        return None, ""
    if result.scope != scope:
        return None, f"last run for {result.scope or 'another target'}"
    if stage in DEPLOY_STAGES:
        latest = current_deployment(state_dir, scope)
        if result.passed and latest is not None and latest.stage != stage:
            return None, f"replaced by {STAGES[latest.stage].command} at {latest.finished_at}"
    if stage in AFTER_DEPLOY:
        latest = current_deployment(state_dir, scope)
        if latest is None:
            return None, "the deployment it examined is gone"
        if result.basis != latest.basis:
            return None, f"stale: the deployment changed at {latest.finished_at}"
    return result, ""


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


def refusal(state_dir: Path, stage: str, scopes: dict[str, str] | None = None) -> str | None:
    """Why `stage` may not run yet, or None when a predecessor's gate passed.

    `scopes` (stage -> the scope under the current settings) keeps a gate of
    another target or a replaced deployment from counting; None trusts any.
    """
    needs = STAGES[stage].needs
    if not needs:
        return None
    results = {
        name: (standing(state_dir, name, scopes[name])[0] if scopes else load(state_dir, name))
        for name in needs
    }
    if any(r is not None and r.passed for r in results.values()):
        return None
    ran = [r for r in results.values() if r is not None]
    if not ran:
        commands = " or ".join(f"`{STAGES[n].command}`" for n in needs)
        return f"`{STAGES[stage].command}` needs a passed {'/'.join(needs)} gate first: run {commands}."
    latest = max(ran, key=lambda r: r.finished_at)
    failed = latest.failures[0]
    hint = f" Fix: {failed.fix}" if failed.fix else ""
    rerun = STAGES[latest.stage].command
    if f"`{rerun}`" not in failed.fix:  # most hints end "…, then `inv build`" already
        hint = f"{hint.rstrip('.')}. Then re-run `{rerun}`." if hint else f" Then re-run `{rerun}`."
    return (
        f"`{STAGES[stage].command}` refuses to run: the {latest.stage} gate failed at "
        f"check '{failed.name}' ({failed.evidence}).{hint}"
    )
