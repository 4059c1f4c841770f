"""One Helm facade, two engines: the `helm` CLI when it is on PATH, otherwise
the embedded Helm v4 Go SDK (`helm-python-sdk`).

Values never touch a file: the SDK takes dicts, the CLI gets YAML on stdin
(`-f -`) through the Runner's `input_text`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from todo_deploy.runner import Runner

SDK_NAME = "embedded Helm v4 (helm-python-sdk)"
CLI_NAME = "helm CLI"


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


def parse_documents(texts: Sequence[str]) -> list[dict[str, Any]]:
    """YAML streams -> the non-empty objects they hold."""
    import yaml

    objects: list[dict[str, Any]] = []
    for text in texts:
        objects.extend(doc for doc in yaml.safe_load_all(text) if isinstance(doc, dict))
    return objects


def _normal_version(kube_version: str | None) -> str | None:
    if not kube_version:
        return None
    return kube_version if kube_version.startswith("v") else f"v{kube_version}"


def _release_summary(data: dict[str, Any]) -> dict[str, Any]:
    """Normalise a release summary from either engine (the SDK's summary, or the
    CLI's `status`/`history -o json`) to name/namespace/revision/status/..."""
    info = data.get("info") or {}
    chart = data.get("chart")
    if not isinstance(chart, str):
        chart = "-".join(str(p) for p in (data.get("chart_name"), data.get("chart_version")) if p)
    return {
        "name": data.get("name", ""),
        "namespace": data.get("namespace", ""),
        "revision": int(data.get("revision") or data.get("version") or 0),
        "status": str(data.get("status") or info.get("status") or ""),
        "description": data.get("description") or info.get("description") or "",
        "updated": str(data.get("deployed_at") or data.get("updated") or info.get("last_deployed") or ""),
        "chart": chart,
        "app_version": data.get("app_version", ""),
    }


class SdkHelm:
    """Helm v4 through helm-python-sdk (no helm binary needed)."""

    name = SDK_NAME

    def __init__(self, kube_context: str = "", kubeconfig: str | None = None) -> None:
        self.kube_context = kube_context
        self.kubeconfig = kubeconfig

    def _config(self, namespace: str) -> Any:
        import helm_python

        return helm_python.Config(
            kubeconfig_path=self.kubeconfig,
            kube_context=self.kube_context or None,
            namespace=namespace,
        )

    def template(
        self,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: dict[str, Any],
        kube_version: str | None = None,
        api_versions: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        import helm_python
        from helm_python import _native

        # Chart.render() exposes only name/namespace/revision/is_install; the
        # library's render options also take kube_version and api_versions
        # (like `helm template --kube-version --api-versions`).
        options: dict[str, Any] = {"name": release, "namespace": namespace, "is_install": True}
        if _normal_version(kube_version):
            options["kube_version"] = _normal_version(kube_version)
        if api_versions:
            options["api_versions"] = list(api_versions)
        with helm_python.Chart.load(chart_dir) as chart:
            chart.validate_schema(values)
            rendered: dict[str, str] = json.loads(
                _native.call_string("helm_render", chart._raw(), json.dumps(values), json.dumps(options))
            )
        return parse_documents(
            [text for path, text in sorted(rendered.items()) if not path.endswith("NOTES.txt")]
        )

    def notes(self, chart_dir: Path, release: str, namespace: str, values: dict[str, Any]) -> str:
        """The rendered NOTES.txt."""
        import helm_python

        with helm_python.Chart.load(chart_dir) as chart:
            rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
        return next((text for path, text in rendered.items() if path.endswith("NOTES.txt")), "")

    def lint(self, chart_dir: Path, values: dict[str, Any], strict: bool = True) -> tuple[bool, str]:
        import helm_python

        try:
            report = helm_python.lint(chart_dir, values, strict=strict)
        except helm_python.HelmError as exc:
            return False, f"lint could not run: {exc}"
        severities = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}
        lines = [
            f"[{severities.get(m.get('severity', 0), '?')}] {m.get('path', '')}: {m.get('error', '')}"
            for m in report.get("messages", [])
        ]
        lines += [f"[ERROR] {e}" for e in report.get("errors", [])]
        worst = max((m.get("severity", 0) for m in report.get("messages", [])), default=0)
        failed = bool(report.get("errors")) or worst >= (2 if strict else 3)
        summary = f"{report.get('total_charts_linted', 0)} chart(s) linted, " + (
            "failed" if failed else "0 chart(s) failed"
        )
        return not failed, "\n".join([*lines, summary])

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
        import helm_python

        exists = False
        try:
            with self._config(namespace) as config, helm_python.Chart.load(chart_dir) as chart:
                exists = self._exists(config, release)
                options: dict[str, Any] = {"namespace": namespace, "timeout_seconds": timeout_s}
                if wait:
                    # Config.install/upgrade do not expose wait_for_jobs, but the
                    # library's options take it (`helm --wait --wait-for-jobs`):
                    # without it the migration Job is not waited for.
                    options.update(wait="watcher", wait_for_jobs=True)
                if rollback_on_failure:
                    options["rollback_on_failure"] = True
                data = self._release_action(config, chart, release, values, options, exists)
        except helm_python.HelmError as exc:
            current = self.status(release, namespace)
            return HelmResult(
                False,
                f"{'upgrade' if exists else 'install'} of {release} failed: {exc}",
                current["revision"] if current else None,
                current["status"] if current else "",
            )
        summary = _release_summary(data)
        return HelmResult(
            summary["status"] == "deployed",
            f"{'upgraded' if exists else 'installed'} {release}: revision {summary['revision']} "
            f"{summary['status']}",
            summary["revision"],
            summary["status"],
            {"manifest": data.get("manifest", "")},
        )

    @staticmethod
    def _release_action(
        config: Any, chart: Any, release: str, values: dict[str, Any],
        options: dict[str, Any], upgrade: bool,
    ) -> dict[str, Any]:
        """Config.install/upgrade with the full option set of the library."""
        from helm_python import _native

        payload = _native.call_string(
            "helm_upgrade" if upgrade else "helm_install",
            config._raw(), config._context_arg(None), chart._raw(), None, release,
            json.dumps(values), json.dumps(options),
        )
        result: dict[str, Any] = json.loads(payload)
        return result

    @staticmethod
    def _exists(config: Any, release: str) -> bool:
        import helm_python

        try:
            return bool(config.history(release))
        except helm_python.HelmNotFoundError:
            return False

    def test(self, release: str, namespace: str, timeout_s: int = 300) -> tuple[bool, str]:
        import helm_python

        try:
            with self._config(namespace) as config:
                data = config.test(release, timeout=timeout_s, logs=True)
        except helm_python.HelmError as exc:
            return False, f"helm test {release} failed: {exc}"
        hooks = (data.get("release") or {}).get("hooks") or []
        phases = [f"{h.get('name')}: {(h.get('last_run') or {}).get('phase', '')}" for h in hooks]
        return True, "\n".join(["helm test passed", *phases, data.get("logs") or ""]).strip()

    def rollback(self, release: str, namespace: str, revision: int | None = None) -> HelmResult:
        import helm_python

        try:
            with self._config(namespace) as config:
                config.rollback(release, version=revision, wait="watcher", timeout=300)
        except helm_python.HelmError as exc:
            return HelmResult(False, f"rollback of {release} failed: {exc}")
        current = self.status(release, namespace) or {}
        return HelmResult(
            current.get("status") == "deployed",
            f"rolled back {release} to {revision or 'the previous revision'}: "
            f"now revision {current.get('revision')} {current.get('status')}",
            current.get("revision"),
            current.get("status", ""),
        )

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        import helm_python

        try:
            with self._config(namespace) as config:
                entries = config.history(release)
        except helm_python.HelmNotFoundError:
            return []
        return sorted((_release_summary(e) for e in entries), key=lambda e: e["revision"])

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        import helm_python

        try:
            with self._config(namespace) as config:
                return _release_summary(config.status(release))
        except helm_python.HelmNotFoundError:
            return None

    def uninstall(self, release: str, namespace: str) -> None:
        with self._config(namespace) as config:
            config.uninstall(release, ignore_not_found=True, wait="watcher", timeout=300)


class CliHelm:
    """The `helm` binary through the Runner (every command logged exactly)."""

    name = CLI_NAME

    def __init__(self, runner: Runner, kube_context: str = "", binary: str = "helm") -> None:
        self.runner = runner
        self.kube_context = kube_context
        self.binary = binary

    def _base(self, namespace: str | None = None) -> list[str]:
        argv = [self.binary]
        if self.kube_context:
            argv += ["--kube-context", self.kube_context]
        if namespace:
            argv += ["--namespace", namespace]
        return argv

    @staticmethod
    def _yaml(values: dict[str, Any]) -> str:
        import yaml

        return yaml.safe_dump(values, sort_keys=True)

    def template(
        self,
        chart_dir: Path,
        release: str,
        namespace: str,
        values: dict[str, Any],
        kube_version: str | None = None,
        api_versions: Sequence[str] = (),
    ) -> list[dict[str, Any]]:
        argv = [self.binary, "template", release, str(chart_dir), "--namespace", namespace, "-f", "-"]
        if kube_version:
            argv += ["--kube-version", kube_version]
        for api in api_versions:
            argv += ["--api-versions", api]
        result = self.runner.run(argv, timeout=120, input_text=self._yaml(values))
        if not result.ok:
            raise RuntimeError(f"helm template failed: {result.stderr.strip() or result.stdout.strip()}")
        return parse_documents([result.stdout])

    def lint(self, chart_dir: Path, values: dict[str, Any], strict: bool = True) -> tuple[bool, str]:
        argv = [self.binary, "lint", str(chart_dir), "-f", "-"] + (["--strict"] if strict else [])
        result = self.runner.run(argv, timeout=120, input_text=self._yaml(values))
        return result.ok, (result.stdout + result.stderr).strip()

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
        argv = self._base(namespace) + ["upgrade", "--install", release, str(chart_dir)]
        argv += ["--timeout", f"{timeout_s}s", "-f", "-"]
        if wait:
            argv += ["--wait", "--wait-for-jobs"]
        if rollback_on_failure:
            argv += ["--rollback-on-failure"]
        result = self.runner.run(argv, timeout=timeout_s + 60, input_text=self._yaml(values))
        current = self.status(release, namespace)
        revision = current["revision"] if current else None
        status = current["status"] if current else ""
        if not result.ok:
            detail = (result.stderr or result.stdout).strip()
            return HelmResult(False, f"helm upgrade --install {release} failed: {detail}", revision, status)
        return HelmResult(True, f"{release}: revision {revision} {status}".strip(), revision, status)

    def test(self, release: str, namespace: str, timeout_s: int = 300) -> tuple[bool, str]:
        argv = self._base(namespace) + ["test", release, "--timeout", f"{timeout_s}s", "--logs"]
        result = self.runner.run(argv, timeout=timeout_s + 60)
        return result.ok, (result.stdout + result.stderr).strip()

    def rollback(self, release: str, namespace: str, revision: int | None = None) -> HelmResult:
        argv = self._base(namespace) + ["rollback", release]
        if revision is not None:
            argv.append(str(revision))
        argv += ["--wait", "--timeout", "300s"]
        result = self.runner.run(argv, timeout=360)
        current = self.status(release, namespace) or {}
        return HelmResult(
            result.ok,
            (result.stdout + result.stderr).strip(),
            current.get("revision"),
            current.get("status", ""),
        )

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        result = self.runner.run(self._base(namespace) + ["history", release, "-o", "json"], timeout=60)
        if not result.ok:
            return []
        return sorted((_release_summary(e) for e in json.loads(result.stdout or "[]")),
                      key=lambda e: e["revision"])

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        result = self.runner.run(self._base(namespace) + ["status", release, "-o", "json"], timeout=60)
        if not result.ok:
            return None
        return _release_summary(json.loads(result.stdout))

    def uninstall(self, release: str, namespace: str) -> None:
        argv = self._base(namespace) + ["uninstall", release, "--ignore-not-found", "--wait"]
        result = self.runner.run(argv, timeout=360)
        if not result.ok:
            raise RuntimeError(f"helm uninstall {release} failed: {result.stderr.strip()}")


def engine(runner: Runner, kube_context: str) -> HelmEngine:
    """The helm CLI when `helm` is on PATH, else the embedded SDK.

    `kube_context` '' means the kubeconfig's current context.
    """
    if runner.which("helm"):
        return CliHelm(runner, kube_context)
    return SdkHelm(kube_context)


def embedded() -> SdkHelm:
    """The embedded engine alone: offline template/lint need no cluster or binary."""
    return SdkHelm()
