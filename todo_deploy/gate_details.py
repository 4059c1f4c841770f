"""Each stage's gate details: what its gate records beside the checks (a dataclass per
stage, stored as a plain dict in `.state/<stage>.json`). They live below the stages because
other floors read them: a later stage, `inv status`, `inv prune`, the docs report.
`Kind.of(result)` reads one back typed (gates.Details)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from todo_deploy.gates import Details


@dataclass
class BuildDetails(Details):
    # component -> ref, image_id, size_bytes, added_bytes, base_image, base_size_bytes,
    # skipped, seconds
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    gordon: dict[str, Any] = field(default_factory=dict)  # available, advice | message, problems
    timings: dict[str, Any] = field(default_factory=dict)  # timing.Timeline.as_details()
    smoke_pending: list[str] = field(default_factory=list)  # run(smoke=False): still to test


@dataclass
class ClusterDetails(Details):
    provider: str = ""
    context: str = ""
    server_version: str = ""
    kubelet_versions: list[str] = field(default_factory=list)
    image_delivery: str = ""  # minikube image load | kind load | shared daemon | registry | none


@dataclass
class DeployDetails(Details):
    namespace: str = ""
    release: str = ""
    images: dict[str, str] = field(default_factory=dict)  # component -> the ref deployed
    uninstalled_helm_release: bool = False  # switched from Helm: its objects taken over
    rolled_back_to: str = ""  # a failed deploy put back the last passing one (its images)
    applied: int = 0  # objects written
    unchanged: int = 0  # objects skipped: the same as recorded and live
    changed: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    timings_s: dict[str, float] = field(default_factory=dict)  # the waits
    duration_s: float = 0.0
    timings: dict[str, Any] = field(default_factory=dict)  # every phase (timing.Timeline)
    diagnosis: str = ""  # the doctor's explanation of a failed rollout
    dev: bool = False  # rendered for live update (`inv watch --dev`): pods take synced code


@dataclass
class HelmDetails(Details):
    namespace: str = ""
    release: str = ""
    engine: str = ""  # the helm CLI (major version) or the embedded Helm v4
    adopted_raw_objects: list[str] = field(default_factory=list)  # the raw path's, taken over
    duration_s: float = 0.0
    revision: int | None = None
    diagnosis: str = ""  # why a failed upgrade failed (before it was rolled back)
    helm_test: str = ""  # `helm test`'s output, its last 2000 characters
    dev: bool = False  # rendered for live update (`inv up --dev --helm`): pods take synced code


@dataclass
class LintDetails(Details):
    versions: list[str] = field(default_factory=list)  # Kubernetes versions validated against
    secret_names: list[str] = field(default_factory=list)  # made at deploy time, never in k8s/


@dataclass
class AiopsDetails(Details):
    playbook: str = ""
    kagent_agent: str = ""
    namespace: str = ""
    release: str = ""
    allow_changes: bool = False
    findings: list[dict[str, Any]] = field(default_factory=list)  # Finding.to_dict(), causes first
    tools: list[dict[str, Any]] = field(default_factory=list)  # ToolRun.to_dict()


@dataclass
class VerifyDetails(Details):
    checks_selected: list[str] = field(default_factory=list)
    access: dict[str, Any] = field(default_factory=dict)  # kind, url, detail[, connections]
    test_users: list[str] = field(default_factory=list)
    full: bool = False  # every check ran, the pod-deleting ones too
    live: str = ""  # live_identity() of the objects verified
    duration_s: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)  # verdict -> number of checks


@dataclass
class DocsDetails(Details):
    out_dir: str = ""
    report: str = ""  # the Markdown report's path
    json: str = ""
    svg: str | None = None
    objects: int = 0  # live objects described
    access: dict[str, str] = field(default_factory=dict)
