"""One Helm facade, two engines: the `helm` CLI when it is on PATH, otherwise
the embedded Helm v4 Go SDK (`helm-python-sdk`).

Values never touch a file: the SDK takes dicts, the CLI gets YAML on stdin
(`-f -`) through the Runner's `input_text`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from todo_deploy.runner import Runner


@dataclass(frozen=True)
class HelmResult:
    """Outcome of an install/upgrade/rollback."""

    ok: bool
    message: str
    revision: int | None = None
    status: str = ""  # e.g. "deployed", "failed"
    details: dict[str, Any] = field(default_factory=dict)


class HelmEngine(Protocol):
    name: str  # "helm CLI" or "embedded Helm v4 (helm-python-sdk)"

    def template(
        self,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: dict[str, Any],
        kube_version: str | None = None,
        api_versions: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        """Render the chart offline (hooks and tests included) as objects."""
        ...

    def lint(self, chart_dir: Path, values: dict[str, Any], strict: bool = True) -> tuple[bool, str]:
        """`helm lint [--strict]`: (ok, the findings as text)."""
        ...

    def upgrade_install(
        self,
        release: str,
        chart_dir: Path,
        namespace: str,
        values: dict[str, Any],
        wait: bool = True,
        timeout_s: int = 300,
        rollback_on_failure: bool = True,
    ) -> HelmResult:
        """Install the release, or upgrade it when it exists; never raises for
        a failed release (ok=False, message says why)."""
        ...

    def test(self, release: str, namespace: str, timeout_s: int = 300) -> tuple[bool, str]:
        """`helm test`: (ok, output incl. the test pods' logs when available)."""
        ...

    def rollback(self, release: str, namespace: str, revision: int | None = None) -> HelmResult:
        """Roll back to `revision` (None: the previous one)."""
        ...

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        """Revisions oldest first: [{"revision": int, "status": str, "description": str, ...}];
        [] when the release does not exist."""
        ...

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        """{"name", "namespace", "revision", "status", ...} or None when absent."""
        ...

    def uninstall(self, release: str, namespace: str) -> None:
        """Remove the release (no error when it does not exist)."""
        ...


def engine(runner: Runner, kube_context: str) -> HelmEngine:
    """The helm CLI when `helm` is on PATH, else the embedded SDK.

    `kube_context` '' means the kubeconfig's current context.
    """
    raise NotImplementedError
