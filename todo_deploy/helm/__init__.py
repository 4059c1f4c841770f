"""One Helm facade, two engines: the user's `helm` CLI (Helm 3.8+ or 4, each with
its own flags) when it is on PATH, otherwise the embedded Helm v4 Go SDK
(`helm-python-sdk`).

Why the CLI when there is one, rather than the embedded engine always: it is the
Helm the user already runs (their plugins, their credential helpers, their
version), and every command the workflow issues is logged and can be re-run by
hand. Its flags differ between majors (Helm 3 `--atomic` and boolean `--wait`;
Helm 4 `--rollback-on-failure` and `--wait=<strategy>`), so `helm version` is
read first and the flags come from `CLI_FLAGS`; a major the workflow does not
know falls back to the embedded engine, saying why.

Values never touch a file: the SDK takes dicts, the CLI gets YAML on stdin
(`-f -`) through the Runner's `input_text`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from todo_deploy.tools.commands import Runner

if TYPE_CHECKING:
    from todo_deploy.config import Settings

# helm_python (and helm_sdk, our adapter over its internals) load a ~60 MB Go
# library: imported inside the embedded engine's methods, so that a command that
# needs no Helm (a no-change deploy, `inv --list`) never pays for it.

SDK_NAME = "embedded Helm v4 (helm-python-sdk)"
CLI_NAME = "helm CLI"
VERSION_ARGV = ("helm", "version", "--template", "{{.Version}}")


class HelmUnavailable(RuntimeError):
    """Helm could not act at all (no cluster, no kubeconfig, a broken binary):
    one line that says why, never a traceback."""


def one_line(text: str, limit: int = 300) -> str:
    """The first non-empty line of an error, shortened."""
    line = next((ln.strip() for ln in text.strip().splitlines() if ln.strip()), "")
    return line if len(line) <= limit else line[: limit - 3] + "..."


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

    # libyaml's safe loader where PyYAML has it: the pure-Python one took ~55 ms of a
    # chart's ~75 ms render, three times the rendering itself.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    objects: list[dict[str, Any]] = []
    for text in texts:
        objects.extend(doc for doc in yaml.load_all(text, Loader=loader) if isinstance(doc, dict))
    return objects


def _normal_version(kube_version: str | None) -> str | None:
    if not kube_version:
        return None
    return kube_version if kube_version.startswith("v") else f"v{kube_version}"


def _release_summary(data: dict[str, Any]) -> dict[str, Any]:
    """Normalise a release summary from either engine (the SDK's summary, the
    CLI's `status -o json`, which is the stored release with `info` and a
    `chart` object, or a `history -o json` row) to name/namespace/revision/...
    """
    info = data.get("info") or {}
    chart = data.get("chart")
    app_version = data.get("app_version", "")
    if isinstance(chart, dict):
        meta = chart.get("metadata") or {}
        app_version = app_version or meta.get("appVersion", "")
        chart = "-".join(str(p) for p in (meta.get("name"), meta.get("version")) if p)
    elif not isinstance(chart, str):
        chart = "-".join(str(p) for p in (data.get("chart_name"), data.get("chart_version")) if p)
    return {
        "name": data.get("name", ""),
        "namespace": data.get("namespace", ""),
        "revision": int(data.get("revision") or data.get("version") or 0),
        "status": str(data.get("status") or info.get("status") or ""),
        "description": data.get("description") or info.get("description") or "",
        "updated": str(data.get("deployed_at") or data.get("updated") or info.get("last_deployed") or ""),
        "chart": chart,
        "app_version": app_version,
    }


class SdkHelm:
    """Helm v4 through helm-python-sdk (no helm binary needed). Public API only,
    except the two options `todo_deploy.helm.sdk_internals` adds (and alone knows how)."""

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

        from todo_deploy.helm import sdk_internals as helm_sdk

        with helm_python.Chart.load(chart_dir) as chart:
            chart.validate_schema(values)
            rendered = helm_sdk.render(
                chart, values, name=release, namespace=namespace,
                kube_version=_normal_version(kube_version), api_versions=api_versions,
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

        from todo_deploy.helm import sdk_internals as helm_sdk

        exists = False
        try:
            with self._config(namespace) as config, helm_python.Chart.load(chart_dir) as chart:
                exists = self._exists(config, release)
                options: dict[str, Any] = {"namespace": namespace, "timeout_seconds": timeout_s}
                if wait:
                    options.update(wait="watcher", wait_for_jobs=True)
                if rollback_on_failure:
                    options["rollback_on_failure"] = True
                # The deploy owns the fields it sets (as the raw path's forced apply does):
                # adopted raw objects' fields are the todo-deploy field manager's.
                options["force_conflicts"] = True
                data = helm_sdk.install_or_upgrade(
                    config, chart, release, values, options, upgrade=exists)
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
            return HelmResult(False, f"rollback of {release} failed: {one_line(str(exc))}")
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
                entries = sorted((_release_summary(e) for e in config.history(release)),
                                 key=lambda e: e["revision"])
                # The SDK's summaries carry no description; `helm get all` does.
                for entry in entries:
                    stored = config.get_all(release, revision=entry["revision"])
                    entry["description"] = (stored.get("info") or {}).get("description", "")
        except helm_python.HelmNotFoundError:
            return []
        except helm_python.HelmError as exc:
            raise HelmUnavailable(f"Helm could not read release {release}: {one_line(str(exc))}") from None
        return entries

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        import helm_python

        try:
            with self._config(namespace) as config:
                return _release_summary(config.status(release))
        except helm_python.HelmNotFoundError:
            return None
        except helm_python.HelmError as exc:
            raise HelmUnavailable(f"Helm could not read release {release}: {one_line(str(exc))}") from None

    def uninstall(self, release: str, namespace: str) -> None:
        import helm_python

        try:
            with self._config(namespace) as config:
                config.uninstall(release, ignore_not_found=True, wait="watcher", timeout=300)
        except helm_python.HelmError as exc:
            raise HelmUnavailable(f"helm uninstall {release} failed: {one_line(str(exc))}") from None


@dataclass(frozen=True)
class CliFlags:
    """The flags that differ between Helm majors, for the subcommands used here.

    Read from Helm's own source (the stand-ins in tests/fakes/helm_cli.py hold
    the full flag lists, with the file and tag each came from):
    - Helm 3 (v3.21.4 cmd/helm/upgrade.go, rollback.go, uninstall.go): `--wait`
      is a bool; `--atomic` rolls a failed upgrade back (uninstalls a failed
      install) and implies --wait.
    - Helm 4 (v4.2.4 pkg/cmd/upgrade.go, flags.go AddWaitFlag): `--wait` takes a
      strategy (watcher|hookOnly|legacy; bare `--wait` = watcher, omitted =
      hookOnly); `--atomic` is deprecated for `--rollback-on-failure`;
      `--force` became `--force-replace` (not used here).
    Everything else used here (`upgrade --install --timeout -f - --wait-for-jobs`,
    `test --timeout --logs`, `rollback REV --timeout`, `status|history -o json`,
    `template --kube-version --api-versions`, `lint --strict`, `version
    --template`, `--kube-context`, `--namespace`) is the same in both, since
    Helm 3.8. `uninstall --ignore-not-found` is not used: it only exists from
    3.13, so a missing release is checked with `status` first.
    """

    major: int
    wait: str
    rollback_on_failure: str
    force_conflicts: str = ""  # Helm 4's server-side apply; Helm 3's patches have no conflicts


CLI_FLAGS: dict[int, CliFlags] = {
    3: CliFlags(3, wait="--wait", rollback_on_failure="--atomic"),
    4: CliFlags(4, wait="--wait=watcher", rollback_on_failure="--rollback-on-failure",
                force_conflicts="--force-conflicts"),
}

_SEMVER = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text: str) -> tuple[int, int, int] | None:
    """'v3.21.4' (or `--short`'s 'v3.21.4+g1234567') -> (3, 21, 4)."""
    match = _SEMVER.search(text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


class CliHelm:
    """The `helm` binary through the Runner (every command logged exactly)."""

    def __init__(
        self, runner: Runner, kube_context: str = "", binary: str = "helm", version: str = "v3"
    ) -> None:
        self.runner = runner
        self.kube_context = kube_context
        self.binary = binary
        self.version = version
        parsed = parse_version(version)
        major = parsed[0] if parsed else int(version.lstrip("v").split(".")[0])
        self.flags = CLI_FLAGS[major]
        self.name = f"{CLI_NAME} {version}"

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
            raise HelmUnavailable(f"helm template failed: {one_line(result.stderr or result.stdout)}")
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
            argv += [self.flags.wait, "--wait-for-jobs"]
        if rollback_on_failure:
            argv += [self.flags.rollback_on_failure]
        if self.flags.force_conflicts:
            argv += [self.flags.force_conflicts]
        result = self.runner.run(argv, timeout=timeout_s + 60, input_text=self._yaml(values))
        current = self.status(release, namespace)
        revision = current["revision"] if current else None
        status = current["status"] if current else ""
        if not result.ok:
            detail = (result.stderr or result.stdout).strip()
            return HelmResult(False, f"helm upgrade --install {release} failed: {detail}", revision, status)
        return HelmResult(status == "deployed", f"{release}: revision {revision} {status}".strip(),
                          revision, status)

    def test(self, release: str, namespace: str, timeout_s: int = 300) -> tuple[bool, str]:
        argv = self._base(namespace) + ["test", release, "--timeout", f"{timeout_s}s", "--logs"]
        result = self.runner.run(argv, timeout=timeout_s + 60)
        return result.ok, (result.stdout + result.stderr).strip()

    def rollback(self, release: str, namespace: str, revision: int | None = None) -> HelmResult:
        argv = self._base(namespace) + ["rollback", release]
        if revision is not None:
            argv.append(str(revision))
        argv += [self.flags.wait, "--timeout", "300s"]
        result = self.runner.run(argv, timeout=360)
        current = self.status(release, namespace) or {}
        message = (result.stdout.strip() if result.ok
                   else f"rollback of {release} failed: {one_line(result.stderr or result.stdout)}")
        return HelmResult(result.ok, message, current.get("revision"), current.get("status", ""))

    def _read(self, argv: list[str], release: str) -> Any:
        """`status`/`history -o json` parsed; None when the release does not exist."""
        result = self.runner.run(argv, timeout=60)
        if result.ok:
            return json.loads(result.stdout or "null")
        if "not found" in result.stderr:  # "Error: release: not found"
            return None
        raise HelmUnavailable(f"helm could not read release {release}: "
                              f"{one_line(result.stderr or result.stdout)}")

    def history(self, release: str, namespace: str) -> list[dict[str, Any]]:
        rows = self._read(self._base(namespace) + ["history", release, "-o", "json"], release)
        return sorted((_release_summary(e) for e in rows or []), key=lambda e: e["revision"])

    def status(self, release: str, namespace: str) -> dict[str, Any] | None:
        data = self._read(self._base(namespace) + ["status", release, "-o", "json"], release)
        return _release_summary(data) if data else None

    def uninstall(self, release: str, namespace: str) -> None:
        if self.status(release, namespace) is None:
            return
        argv = self._base(namespace) + ["uninstall", release, self.flags.wait, "--timeout", "300s"]
        result = self.runner.run(argv, timeout=360)
        if not result.ok:
            raise HelmUnavailable(f"helm uninstall {release} failed: {one_line(result.stderr)}")


def engine(runner: Runner, kube_context: str) -> HelmEngine:
    """The helm CLI when `helm` is on PATH and its major is known, else the
    embedded SDK (and the log says why).

    `kube_context` '' means the kubeconfig's current context.
    """
    if not runner.which("helm"):
        return SdkHelm(kube_context)
    found = runner.run(list(VERSION_ARGV), timeout=30)
    parsed = parse_version(found.stdout) if found.ok else None
    if parsed and parsed[0] in CLI_FLAGS:
        return CliHelm(runner, kube_context, version=found.stdout.strip())
    why = (f"`helm version` failed: {one_line(found.stderr or found.stdout)}" if not found.ok
           else f"helm {found.stdout.strip() or '(no version)'} is neither Helm 3 nor 4")
    runner.log(f"{why}; using the {SDK_NAME} instead")
    return SdkHelm(kube_context)


def make_engine(settings: Settings, log: Callable[[str], None]) -> HelmEngine:
    """The engine for these settings' cluster; its commands' output scrubbed of the secrets."""
    return engine(Runner(log=log, secrets=settings.secret_values()), settings.context_name)


def embedded() -> SdkHelm:
    """The embedded engine alone: offline template/lint need no cluster or binary."""
    return SdkHelm()
