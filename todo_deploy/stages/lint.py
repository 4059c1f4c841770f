"""`inv lint`: static checks that need no cluster.

- hadolint on docker/backend.Dockerfile and docker/frontend.Dockerfile;
- `helm lint --strict` of the chart (embedded Helm v4) with the default and the
  production-like values;
- strict schema validation (kubernetes-validate: unknown fields are errors) of
  the plain manifests in k8s/ as committed, and of the chart rendered with
  the default, the production-like and the settings' values, against Kubernetes 1.30 and the
  newest version the package ships (the chart rendered for that version with
  policy/v1 and autoscaling/v2 so the PDB and HPA are validated too);
- a Pod Security "restricted" check (plus the project's read-only root
  filesystem rule) that names the object and the field at fault.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from todo_deploy.config import LoadedSettings
from todo_deploy.console import say
from todo_deploy.gates import Check, GateResult
from todo_deploy.images import source_root
from todo_deploy.runner import Runner

STAGE = "lint"
BASELINE_VERSION = "1.30"
CAPABILITIES = ("policy/v1", "autoscaling/v2")
PRODUCTION_VALUES = "ci/production-values.yaml"
DOCKERFILES = ("backend", "frontend")

_POD_TEMPLATE_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"}
# Volume types the restricted profile allows.
_ALLOWED_VOLUMES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
    "persistentVolumeClaim", "projected", "secret",
}
_SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


# --- Pod Security "restricted" -----------------------------------------------------


def _pod_spec(obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(path to the pod spec, the pod spec) of a workload, or None."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    if kind == "Pod":
        return "spec", spec
    if kind == "CronJob":
        return "spec.jobTemplate.spec.template.spec", spec["jobTemplate"]["spec"]["template"]["spec"]
    if kind in _POD_TEMPLATE_KINDS:
        return "spec.template.spec", spec["template"]["spec"]
    return None


def pss_violations(obj: dict[str, Any]) -> list[str]:
    """Every way `obj`'s pods break Pod Security "restricted" (v1.30 rules) or
    the project's readOnlyRootFilesystem rule, one line per field at fault."""
    found = _pod_spec(obj)
    if found is None:
        return []
    base, pod = found
    who = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    problems: list[str] = []

    def bad(path: str, message: str) -> None:
        problems.append(f"{who}: {path} {message}")

    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            bad(f"{base}.{flag}", "must be unset or false")
    pod_ctx = pod.get("securityContext") or {}
    for index, volume in enumerate(pod.get("volumes") or []):
        kinds = set(volume) - {"name"}
        for vtype in sorted(kinds - _ALLOWED_VOLUMES):
            bad(f"{base}.volumes[{index}].{vtype}", "is not an allowed volume type")
    for index, sysctl in enumerate(pod_ctx.get("sysctls") or []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            bad(f"{base}.securityContext.sysctls[{index}].name", "must be a safe sysctl")
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        bad(f"{base}.securityContext.seccompProfile.type", "must be RuntimeDefault or Localhost")
    if pod_ctx.get("runAsUser") == 0:
        bad(f"{base}.securityContext.runAsUser", "must not be 0")

    for field in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(pod.get(field) or []):
            path = f"{base}.{field}[{index}]"
            ctx = container.get("securityContext") or {}
            cpath = f"{path}.securityContext"
            if ctx.get("privileged"):
                bad(f"{cpath}.privileged", "must be false")
            if ctx.get("allowPrivilegeEscalation") is not False:
                bad(f"{cpath}.allowPrivilegeEscalation", "must be false")
            caps = ctx.get("capabilities") or {}
            if "ALL" not in (caps.get("drop") or []):
                bad(f"{cpath}.capabilities.drop", "must include ALL")
            for cap_index, cap in enumerate(caps.get("add") or []):
                if cap != "NET_BIND_SERVICE":
                    bad(f"{cpath}.capabilities.add[{cap_index}]", "may only be NET_BIND_SERVICE")
            non_root = ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot"))
            if non_root is not True:
                bad(f"{cpath}.runAsNonRoot", "must be true (here or in the pod's securityContext)")
            if ctx.get("runAsUser") == 0:
                bad(f"{cpath}.runAsUser", "must not be 0")
            seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
            if seccomp not in ("RuntimeDefault", "Localhost"):
                bad(f"{cpath}.seccompProfile.type",
                    "must be RuntimeDefault or Localhost (here or in the pod's securityContext)")
            if ctx.get("procMount") not in (None, "Default"):
                bad(f"{cpath}.procMount", "must be Default")
            for port_index, port in enumerate(container.get("ports") or []):
                if port.get("hostPort"):
                    bad(f"{path}.ports[{port_index}].hostPort", "must be unset or 0")
            if field != "ephemeralContainers" and ctx.get("readOnlyRootFilesystem") is not True:
                bad(f"{cpath}.readOnlyRootFilesystem", "must be true (project rule)")
    return problems


# --- schema validation ---------------------------------------------------------


def schema_problems(objects: Iterable[dict[str, Any]], version: str) -> list[str]:
    """Strict kubernetes-validate of each object; one line per object at fault."""
    import kubernetes_validate

    problems = []
    for obj in objects:
        who = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path) or "(top level)"
            problems.append(f"{who}: {where}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{who}: {exc.message}")
    return problems


def latest_version() -> str:
    import kubernetes_validate

    return ".".join(kubernetes_validate.latest_version().split(".")[:2])


# --- the stage --------------------------------------------------------------------


def _summary(problems: list[str], limit: int = 8) -> str:
    shown = "; ".join(problems[:limit])
    return shown + (f" (+{len(problems) - limit} more)" if len(problems) > limit else "")


def _targets(
    loaded: LoadedSettings, k8s_dir: Path, chart_dir: Path, versions: list[str]
) -> Iterator[tuple[str, str, Callable[[], list[dict[str, Any]]]]]:
    """(target name, kubernetes version, a thunk rendering its objects)."""
    import yaml

    from todo_deploy import helm, manifests, render

    settings = loaded.settings
    images = render.default_images()
    engine = helm.embedded()
    production = yaml.safe_load((chart_dir / PRODUCTION_VALUES).read_text())
    chart_values = {
        "chart (default values)": {},
        "chart (production values)": production,
        "chart (settings values)": render.helm_values(settings, images),
    }
    for version in versions:
        yield "raw manifests", version, lambda: manifests.load_dir(k8s_dir)
        for name, values in chart_values.items():
            yield name, version, (
                lambda values=values, version=version: engine.template(
                    chart_dir, settings.release_name, settings.namespace, values,
                    kube_version=f"v{version}.0", api_versions=CAPABILITIES,
                )
            )


def run(
    loaded: LoadedSettings,
    *,
    runner: Runner | None = None,
    k8s_dir: Path | None = None,
    chart_dir: Path | None = None,
    docker_dir: Path | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:
    """Run every static check; one Check per tool and target."""
    from todo_deploy import helm, render

    root = source_root(loaded)
    k8s_dir = k8s_dir or root / "k8s"
    chart_dir = chart_dir or root / "helm" / "todo-chatbot"
    docker_dir = docker_dir or root / "docker"
    runner = runner or Runner(log=log, secrets=loaded.settings.secret_values())
    result = GateResult(STAGE)

    # hadolint (the helper is shared with the build stage)
    from todo_deploy.stages.build import _lint as hadolint

    for name in DOCKERFILES:
        dockerfile = docker_dir / f"{name}.Dockerfile"
        if not dockerfile.is_file():
            result.checks.append(Check.of(
                f"hadolint {name}", False, f"{dockerfile} does not exist",
                f"write docker/{name}.Dockerfile",
            ))
            continue
        check = hadolint(runner, dockerfile, name)
        result.checks.append(Check(f"hadolint {name}", check.verdict, check.evidence, check.fix))

    # helm lint --strict
    import yaml

    engine = helm.embedded()
    production = yaml.safe_load((chart_dir / PRODUCTION_VALUES).read_text())
    for label, values in (("default values", {}), ("production values", production)):
        ok, output = engine.lint(chart_dir, values, strict=True)
        result.checks.append(Check.of(
            f"helm lint --strict ({label})", ok, output.replace("\n", "; "),
            f"fix the chart in {chart_dir.relative_to(root) if chart_dir.is_relative_to(root) else chart_dir}",
        ))

    # strict schemas + Pod Security restricted
    from helm_python import HelmError

    versions = sorted({BASELINE_VERSION, latest_version()}, key=lambda v: tuple(map(int, v.split("."))))
    pss_done: set[str] = set()
    for target, version, objects_of in _targets(loaded, k8s_dir, chart_dir, versions):
        try:
            objects = objects_of()
        except (HelmError, yaml.YAMLError, OSError, ValueError, KeyError) as exc:  # does not render
            result.checks.append(Check.of(
                f"render {target} (k8s {version})", False, f"{type(exc).__name__}: {exc}",
                "fix the manifests/chart so they render",
            ))
            continue
        problems = schema_problems(objects, version)
        kinds = sorted({o.get("kind", "?") for o in objects})
        result.checks.append(Check.of(
            f"schema {target} (k8s {version}, strict)",
            not problems,
            _summary(problems) if problems else f"{len(objects)} objects valid ({', '.join(kinds)})",
            "fix the named field (unknown fields are errors in strict mode)",
        ))
        if target not in pss_done:
            pss_done.add(target)
            violations = [v for obj in objects for v in pss_violations(obj)]
            workloads = sum(1 for o in objects if _pod_spec(o) is not None)
            result.checks.append(Check.of(
                f"pod security restricted: {target}",
                not violations,
                _summary(violations) if violations else f"{workloads} workloads meet 'restricted'",
                "set the named securityContext field as the message says",
            ))
    result.details = {"versions": versions, "secret_names": sorted(render.secret_data(loaded.settings))}
    return result
