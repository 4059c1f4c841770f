"""Pod Security "restricted" (v1.30 rules) plus the project's read-only root
filesystem rule, checked on an object's pod spec: `inv lint` runs it on the
rendered manifests, `inv verify` on the live pods.
"""

from __future__ import annotations

from typing import Any

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


def pod_spec(obj: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
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
    found = pod_spec(obj)
    if found is None:
        return []
    base, pod = found
    who = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    problems = _pod_problems(base, pod)
    pod_ctx = pod.get("securityContext") or {}
    for field in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(pod.get(field) or []):
            problems += _container_problems(f"{base}.{field}[{index}]", container, pod_ctx,
                                            ephemeral=field == "ephemeralContainers")
    return [f"{who}: {path} {message}" for path, message in problems]


def _pod_problems(base: str, pod: dict[str, Any]) -> list[tuple[str, str]]:
    """(field path, what it must be) for the pod-level fields at fault."""
    problems: list[tuple[str, str]] = []
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append((f"{base}.{flag}", "must be unset or false"))
    pod_ctx = pod.get("securityContext") or {}
    for index, volume in enumerate(pod.get("volumes") or []):
        kinds = set(volume) - {"name"}
        for vtype in sorted(kinds - _ALLOWED_VOLUMES):
            problems.append((f"{base}.volumes[{index}].{vtype}", "is not an allowed volume type"))
    for index, sysctl in enumerate(pod_ctx.get("sysctls") or []):
        if sysctl.get("name") not in _SAFE_SYSCTLS:
            problems.append((f"{base}.securityContext.sysctls[{index}].name",
                             "must be a safe sysctl"))
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append((f"{base}.securityContext.seccompProfile.type",
                         "must be RuntimeDefault or Localhost"))
    if pod_ctx.get("runAsUser") == 0:
        problems.append((f"{base}.securityContext.runAsUser", "must not be 0"))
    return problems


def _container_problems(path: str, container: dict[str, Any], pod_ctx: dict[str, Any], *,
                        ephemeral: bool) -> list[tuple[str, str]]:
    """(field path, what it must be) for one container's fields at fault; runAsNonRoot and
    the seccomp profile may come from the pod's securityContext."""
    problems: list[tuple[str, str]] = []
    ctx = container.get("securityContext") or {}
    cpath = f"{path}.securityContext"
    if ctx.get("privileged"):
        problems.append((f"{cpath}.privileged", "must be false"))
    if ctx.get("allowPrivilegeEscalation") is not False:
        problems.append((f"{cpath}.allowPrivilegeEscalation", "must be false"))
    caps = ctx.get("capabilities") or {}
    if "ALL" not in (caps.get("drop") or []):
        problems.append((f"{cpath}.capabilities.drop", "must include ALL"))
    for cap_index, cap in enumerate(caps.get("add") or []):
        if cap != "NET_BIND_SERVICE":
            problems.append((f"{cpath}.capabilities.add[{cap_index}]",
                             "may only be NET_BIND_SERVICE"))
    if ctx.get("runAsNonRoot", pod_ctx.get("runAsNonRoot")) is not True:
        problems.append((f"{cpath}.runAsNonRoot",
                         "must be true (here or in the pod's securityContext)"))
    if ctx.get("runAsUser") == 0:
        problems.append((f"{cpath}.runAsUser", "must not be 0"))
    pod_seccomp = (pod_ctx.get("seccompProfile") or {}).get("type")
    seccomp = (ctx.get("seccompProfile") or {}).get("type", pod_seccomp)
    if seccomp not in ("RuntimeDefault", "Localhost"):
        problems.append((f"{cpath}.seccompProfile.type",
                         "must be RuntimeDefault or Localhost (here or in the pod's securityContext)"))
    if ctx.get("procMount") not in (None, "Default"):
        problems.append((f"{cpath}.procMount", "must be Default"))
    for port_index, port in enumerate(container.get("ports") or []):
        if port.get("hostPort"):
            problems.append((f"{path}.ports[{port_index}].hostPort", "must be unset or 0"))
    if not ephemeral and ctx.get("readOnlyRootFilesystem") is not True:
        problems.append((f"{cpath}.readOnlyRootFilesystem", "must be true (project rule)"))
    return problems
