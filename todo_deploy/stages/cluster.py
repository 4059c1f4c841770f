"""Stage 2, `inv cluster`: bring up (or adopt) the cluster, deliver the built
images to where the kubelet looks, and prove the cluster can run the app.

Providers (CLUSTER_PROVIDER): minikube, kind, docker-desktop, existing. Every
outside command goes through the Runner, so tests check the exact command lines.
"""

from __future__ import annotations

import json
import math
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, cast

from todo_deploy import images as image_tools
from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import ingress, manifests
from todo_deploy.console import say
from todo_deploy.gate_details import ClusterDetails
from todo_deploy.gates import Check, GateResult, Verdict
from todo_deploy.images import context_cache, local_image_id
from todo_deploy.kube import Kube, KubeError, quantity
from todo_deploy.kube.transport import KubeconfigError, kubeconfig_paths, load_kubeconfig
from todo_deploy.tools.commands import Runner

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings, Settings
    from todo_deploy.tools.commands import CommandResult

STAGE = "cluster"


MINIKUBE_INSTALL = "install minikube: https://minikube.sigs.k8s.io/docs/start/"
KIND_INSTALL = "install kind: https://kind.sigs.k8s.io/docs/user/quick-start/#installation"
INSTALL = {"minikube": MINIKUBE_INSTALL, "kind": KIND_INSTALL}
START_TIMEOUT = 900


class RunnerLike(Protocol):
    def which(self, name: str) -> str | None: ...

    def run(
        self,
        argv: list[str] | tuple[str, ...],
        *,
        timeout: float = 600,
        env: dict[str, str] | None = None,
        input_text: str | None = None,
    ) -> CommandResult: ...


# ---- providers ----------------------------------------------------------------------


def current_context() -> str:
    """The kubeconfig's current-context ('' when there is no kubeconfig or none is set)."""
    try:
        return load_kubeconfig(kubeconfig_paths()).current_context
    except KubeconfigError:
        return ""


def missing_provider(
    settings: Settings,
    which: Callable[[str], str | None],
    context: Callable[[], str] | None = None,
) -> Check | None:
    """A failed check when the provider's binary (minikube, kind) is not on PATH, naming
    what works here instead: the other provider when it is installed, and the current
    kube context (CLUSTER_PROVIDER=existing); None when nothing is missing."""
    provider = settings.cluster_provider
    if provider not in INSTALL or which(provider):
        return None
    others = [f"set `CLUSTER_PROVIDER={other}` ({other} is installed)"
              for other in INSTALL if other != provider and which(other)]
    current = (context or current_context)()
    if current:
        others.append(f"set `CLUSTER_PROVIDER=existing` to use your current context '{current}'")
    fix = INSTALL[provider] + "".join(f"; or {other}" for other in others)
    name = (f"minikube profile {settings.minikube_profile}" if provider == "minikube"
            else f"kind cluster {settings.kind_cluster_name}")
    return Check.of(name, False, f"the {provider} binary is not on PATH", fix)


@dataclass(frozen=True)
class MinikubeStatus:
    """`minikube status -o json`, read the way minikube v1.38 writes it: one JSON
    object for one node, a list for several (the control plane decides), or, when
    it cannot report a status, CloudEvents lines (`data.message`) and an exit code
    (85: no such profile)."""

    state: str  # running | stopped | paused | nonexistent | absent | full | error | unknown
    host: str = ""
    apiserver: str = ""
    kubelet: str = ""
    messages: tuple[str, ...] = ()
    exit_code: int = 0

    @property
    def summary(self) -> str:
        if self.host:
            return f"Host={self.host}, APIServer={self.apiserver}, Kubelet={self.kubelet}"
        return " / ".join(self.messages) or f"no status (exit {self.exit_code})"


MINIKUBE_PROFILE_NOT_FOUND = 85  # reason.ExGuestNotFound


def _json_documents(text: str) -> list[Any]:
    """The whole text as one JSON document, else one per line (CloudEvents)."""
    try:
        return [json.loads(text)] if text.strip() else []
    except ValueError:
        pass
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def parse_minikube_status(result: CommandResult) -> MinikubeStatus:
    statuses: list[dict[str, Any]] = []
    messages: list[str] = []
    for doc in _json_documents(result.stdout):
        if isinstance(doc, list):
            statuses += [d for d in doc if isinstance(d, dict) and "Host" in d]
        elif isinstance(doc, dict) and "Host" in doc:
            statuses.append(doc)
        elif isinstance(doc, dict) and isinstance(doc.get("data"), dict):
            messages.append(str(doc["data"].get("message", "")))
    if not messages and result.stderr.strip():
        messages.append(result.stderr.strip().splitlines()[-1])
    code = result.returncode
    if not statuses:
        absent = code == MINIKUBE_PROFILE_NOT_FOUND or any("not found" in m for m in messages)
        return MinikubeStatus("absent" if absent else "unknown", messages=tuple(messages),
                              exit_code=code)
    control = next((st for st in statuses if not st.get("Worker")), statuses[0])
    host, apiserver, kubelet = (str(control.get(k, "")) for k in ("Host", "APIServer", "Kubelet"))
    if host == "Running" and apiserver == "Paused":
        state = "paused"
    elif host == "Running" and apiserver == "Running" and kubelet == "Running":
        state = "running"
    elif host in ("Running", "Stopped", "Saved", "Paused"):
        state = "stopped"  # host up with Kubernetes down counts too: `minikube start` repairs it
    else:
        state = {"Nonexistent": "nonexistent", "InsufficientStorage": "full",
                 "Error": "error"}.get(host, "unknown")
    return MinikubeStatus(state, host, apiserver, kubelet, tuple(messages), code)


def _minikube_status(settings: Settings, runner: RunnerLike) -> MinikubeStatus:
    profile = settings.minikube_profile
    return parse_minikube_status(
        runner.run(["minikube", "status", "-p", profile, "-o", "json"], timeout=60))


@dataclass(frozen=True)
class MinikubeProfile:
    listed: bool  # in `minikube profile list` at all
    valid: bool = True
    driver: str | None = None


def _minikube_profile(settings: Settings, runner: RunnerLike) -> MinikubeProfile:
    """Our profile in `minikube profile list -o json` ({"invalid": [...], "valid": [...]})."""
    result = runner.run(["minikube", "profile", "list", "-o", "json"], timeout=60)
    docs = _json_documents(result.stdout)
    data = docs[0] if docs and isinstance(docs[0], dict) else {}
    for group in ("valid", "invalid"):
        for entry in data.get(group) or []:
            if isinstance(entry, dict) and entry.get("Name") == settings.minikube_profile:
                driver = (entry.get("Config") or {}).get("Driver") or None
                return MinikubeProfile(True, group == "valid", driver)
    return MinikubeProfile(False)


def minikube_start_argv(settings: Settings) -> list[str]:
    return [
        "minikube",
        "start",
        "-p",
        settings.minikube_profile,
        f"--driver={settings.minikube_driver}",
        f"--cpus={settings.minikube_cpus}",
        f"--memory={settings.memory_mb}",
    ]


def _addons(settings: Settings) -> list[str]:
    listed = [a.strip() for a in settings.minikube_addons.split(",") if a.strip()]
    if ingress.wants_minikube_addon(settings) and ingress.MINIKUBE_ADDON not in listed:
        listed.append(ingress.MINIKUBE_ADDON)  # an Ingress is configured: its controller
    return ["storage-provisioner", *[a for a in listed if a != "storage-provisioner"]]


def _failure_lines(result: CommandResult, count: int = 3) -> str:
    """The lines that say why a minikube/kind command failed ("X Exiting due to ...",
    "ERROR: ...", "Command Output: ..."), else the last few."""
    lines = [ln.strip() for ln in (result.stderr or result.stdout).splitlines() if ln.strip()]
    telling = [ln for ln in lines
               if ln.startswith(("X ", "ERROR:", "Command Output:", "Error:", "❌", "💣"))]
    return " / ".join((telling or lines)[-count:]) or f"exit {result.returncode}"


def _minikube_unusable(settings: Settings, runner: RunnerLike,
                       status: MinikubeStatus) -> Check | None:
    """Why the profile cannot be used as it is (full, broken, another driver); None if it can."""
    profile = settings.minikube_profile
    name = f"minikube profile {profile}"
    delete = (f"`minikube delete -p {profile}` (this deletes the cluster and its data), "
              "then `inv cluster`")
    if status.state == "full":
        return Check.of(
            name, False, f"profile {profile}: the node's /var is almost full ({status.summary})",
            f"free space: `minikube ssh -p {profile} -- docker system prune -af`, or {delete}",
        )
    if status.state == "absent":
        return None
    listed = _minikube_profile(settings, runner)
    if listed.listed and not listed.valid:
        known = f": {status.summary}" if status.state in ("error", "unknown") else ""
        return Check.of(name, False, f"profile {profile} is invalid (its configuration is "
                        f"missing or incomplete){known}", delete)
    if status.state in ("error", "unknown"):
        return Check.of(
            name, False, f"`minikube status` gave no usable answer: {status.summary}",
            f"run `minikube status -p {profile}` and `minikube logs -p {profile}`",
        )
    if listed.driver and listed.driver != settings.minikube_driver:
        return Check.of(
            name, False,
            f"profile {profile} exists with driver {listed.driver}, "
            f"MINIKUBE_DRIVER={settings.minikube_driver}",
            f"keep it with MINIKUBE_DRIVER={listed.driver}, or recreate it: "
            f"`minikube delete -p {profile}` (this deletes the cluster and its data)",
        )
    return None


def _minikube_running(settings: Settings, runner: RunnerLike, status: MinikubeStatus,
                      log: Callable[[str], None]) -> tuple[str, Check | None]:
    """Leave a running profile alone, unpause a paused one, start any other: (what was
    done, or the failed check)."""
    profile = settings.minikube_profile
    name = f"minikube profile {profile}"
    if status.state == "running":
        log(f"minikube profile {profile} is already running: left alone")
        return f"{profile} already running (left alone)", None
    if status.state == "paused":
        log(f"minikube: profile {profile} is paused: unpausing it")
        resumed = runner.run(["minikube", "unpause", "-p", profile], timeout=300)
        if not resumed.ok:
            return "", Check.of(name, False, f"`minikube unpause` failed: "
                                f"{_failure_lines(resumed)}", f"read `minikube logs -p {profile}`")
        return f"{profile} was paused: unpaused", None
    creating = status.state in ("absent", "nonexistent")
    verb = "creating" if creating else f"starting stopped ({status.summary})"
    log(f"minikube: {verb} profile {profile}")
    started = runner.run(minikube_start_argv(settings), timeout=START_TIMEOUT)
    if not started.ok:
        return "", Check.of(
            name, False,
            f"`minikube start` failed (exit {started.returncode}): {_failure_lines(started)}",
            f"read `minikube logs -p {profile}`; if the profile is broken: "
            f"`minikube delete -p {profile}`",
        )
    return f"{profile} {'created' if creating else 'restarted'}", None


def ensure_minikube(settings: Settings, runner: RunnerLike, log: Callable[[str], None]) -> Check:
    profile = settings.minikube_profile
    name = f"minikube profile {profile}"
    missing = missing_provider(settings, runner.which)
    if missing is not None:
        return missing
    status = _minikube_status(settings, runner)
    unusable = _minikube_unusable(settings, runner, status)
    if unusable is not None:
        return unusable
    evidence, failed = _minikube_running(settings, runner, status, log)
    if failed is not None:
        return failed
    failed_addons = [
        addon for addon in _addons(settings)
        if not runner.run(["minikube", "addons", "enable", addon, "-p", profile], timeout=300).ok
    ]
    if failed_addons:
        return Check.of(
            name, False, f"{evidence}; addon(s) failed to enable: {', '.join(failed_addons)}",
            f"`minikube addons enable <addon> -p {profile}` and read its error",
        )
    return Check.of(name, True, f"{evidence}; addons: {', '.join(_addons(settings))}")


def ensure_kind(settings: Settings, runner: RunnerLike, log: Callable[[str], None]) -> Check:
    cluster = settings.kind_cluster_name
    name = f"kind cluster {cluster}"
    missing = missing_provider(settings, runner.which)
    if missing is not None:
        return missing
    listed = runner.run(["kind", "get", "clusters"], timeout=60)
    if not listed.ok:
        return Check.of(
            name, False, f"`kind get clusters` failed: {_failure_lines(listed)}",
            "is Docker running? `docker info`",
        )
    # Names are on stdout; "No kind clusters found." goes to stderr.
    clusters = {line.strip() for line in listed.stdout.splitlines() if line.strip()}
    if cluster not in clusters:
        log(f"kind: creating cluster {cluster}")
        created = runner.run(["kind", "create", "cluster", "--name", cluster], timeout=START_TIMEOUT)
        if not created.ok:
            return Check.of(
                name, False, f"`kind create cluster` failed: {_failure_lines(created)}",
                f"`kind delete cluster --name {cluster}` and retry; check `docker info`",
            )
        return Check.of(name, True, f"{cluster} created")
    node = f"{cluster}-control-plane"
    inspected = runner.run(["docker", "inspect", "-f", "{{.State.Status}}", node], timeout=30)
    node_state = inspected.stdout.strip()
    if not inspected.ok:
        log(f"kind cluster {cluster} exists but Docker has no container {node} "
            "(another KIND_EXPERIMENTAL_PROVIDER?): left alone")
        return Check.of(name, True, f"{cluster} listed by kind; its node is not a Docker "
                        f"container ({_failure_lines(inspected, 1)}): left alone")
    if node_state != "running":
        log(f"kind: node container {node} is {node_state}: starting it")
        started = runner.run(["docker", "start", node], timeout=120)
        if not started.ok:
            return Check.of(
                name, False, f"node container {node} is {node_state} and would not start: "
                f"{_failure_lines(started)}",
                f"`kind delete cluster --name {cluster}` then `inv cluster`",
            )
        return Check.of(name, True, f"{cluster} existed with its node {node_state}: restarted")
    log(f"kind cluster {cluster} already exists: left alone")
    return Check.of(name, True, f"{cluster} already running (left alone)")


def ensure_cluster(settings: Settings, runner: RunnerLike, log: Callable[[str], None] = say) -> Check:
    provider = settings.cluster_provider
    if provider == "minikube":
        return ensure_minikube(settings, runner, log)
    if provider == "kind":
        return ensure_kind(settings, runner, log)
    context = settings.context_name or "(current context)"
    return Check(
        f"{provider} cluster", Verdict.PASS, f"using kubeconfig context {context}; nothing to start"
    )


# ---- image delivery -----------------------------------------------------------------


def _normalize(ref: str) -> str:
    for prefix in ("docker.io/library/", "docker.io/", "localhost/"):
        if ref.startswith(prefix):
            return ref[len(prefix):]
    return ref


def node_image_refs(nodes: list[dict[str, Any]]) -> set[str]:
    refs: set[str] = set()
    for node in nodes:
        for image in node.get("status", {}).get("images", []) or []:
            refs.update(_normalize(n) for n in image.get("names", []) or [])
    return refs


def _is_local_address(ip: str) -> bool:
    """True when `ip` is one of this machine's own addresses (no packet is sent)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((ip, 9))
            return sock.getsockname()[0] == ip
    except OSError:
        return False


def _local_docker_images(refs: list[str]) -> dict[str, str]:
    """ref -> image ID in the local Docker daemon (missing refs left out)."""
    if context_cache.socket_path() is not None:
        return {ref: image_id for ref in refs if (image_id := local_image_id(ref))}
    try:
        import docker
        from docker.errors import DockerException

        client = docker.from_env(timeout=10)
    except (ImportError, DockerException):
        return {}
    found = {}
    for ref in refs:
        try:
            found[ref] = cast(str, client.images.get(ref).id)  # stub: optional; a got image has one
        except DockerException:  # ImageNotFound, APIError: not present here
            found.pop(ref, None)
    return found


@dataclass
class Delivery:
    check: Check
    method: str  # "minikube image load", "kind load", "shared daemon", "registry", "none"
    loaded: list[str] = field(default_factory=list)


def shares_host_daemon(
    nodes: list[dict[str, Any]],
    images: dict[str, ImageRef],
    local_images: Callable[[list[str]], dict[str, str]] = _local_docker_images,
    is_local: Callable[[str], bool] = _is_local_address,
) -> tuple[bool, str]:
    """Does every node run on this host's Docker daemon with the built images in it?"""
    wanted = [img.ref for img in images.values()]
    if wanted and set(map(_normalize, wanted)) <= node_image_refs(nodes):
        return True, "the node lists every built image"
    if not nodes:
        return False, "no nodes"
    for node in nodes:
        runtime = node.get("status", {}).get("nodeInfo", {}).get("containerRuntimeVersion", "")
        if not runtime.startswith("docker://"):
            return False, f"node {node['metadata']['name']} runs {runtime or 'an unknown runtime'}"
        ips = [
            a["address"]
            for a in node.get("status", {}).get("addresses", [])
            if a.get("type") == "InternalIP"
        ]
        if not any(is_local(ip) for ip in ips):
            return False, f"node {node['metadata']['name']} ({', '.join(ips)}) is not this host"
    present = local_images(wanted)
    missing = [
        img.ref for img in images.values()
        if img.ref not in present or (img.image_id and present[img.ref] != img.image_id)
    ]
    if missing:
        return False, f"not in the local Docker daemon: {', '.join(missing)}"
    return True, "the node runs on this host's Docker daemon, which holds every built image"


DELIVERY = "image delivery"


def _load_into_minikube(settings: Settings, runner: RunnerLike, refs: list[str],
                        log: Callable[[str], None]) -> Delivery:
    profile = settings.minikube_profile
    listed = runner.run(["minikube", "image", "ls", "-p", profile], timeout=120)
    present = {_normalize(line.strip()) for line in listed.stdout.splitlines() if line.strip()}
    missing = [r for r in refs if _normalize(r) not in present]
    failed = []
    for ref in missing:
        log(f"loading {ref} into minikube ({profile})")
        if not runner.run(["minikube", "image", "load", ref, "-p", profile], timeout=900).ok:
            failed.append(ref)
    tip = f"tip: build straight into minikube's daemon with `eval $(minikube -p {profile} docker-env)`"
    if failed:
        return Delivery(
            Check.of(DELIVERY, False, f"`minikube image load` failed for {', '.join(failed)}", tip),
            "minikube image load", missing,
        )
    what = f"loaded {', '.join(missing)}" if missing else "already in the node"
    return Delivery(Check(DELIVERY, Verdict.PASS, f"minikube image load: {what} ({tip})"),
                    "minikube image load", missing)


def _load_into_kind(settings: Settings, runner: RunnerLike, refs: list[str],
                    nodes: list[dict[str, Any]], log: Callable[[str], None]) -> Delivery:
    present = node_image_refs(nodes)
    missing = [r for r in refs if _normalize(r) not in present]
    failed = []
    for ref in missing:
        log(f"loading {ref} into kind ({settings.kind_cluster_name})")
        argv = ["kind", "load", "docker-image", ref, "--name", settings.kind_cluster_name]
        if not runner.run(argv, timeout=900).ok:
            failed.append(ref)
    if failed:
        return Delivery(
            Check.of(DELIVERY, False, f"`kind load docker-image` failed for {', '.join(failed)}",
                     "check `docker images` holds them (`inv build`)"),
            "kind load", missing,
        )
    what = f"loaded {', '.join(missing)}" if missing else "already in the node"
    return Delivery(Check(DELIVERY, Verdict.PASS, f"kind load docker-image: {what}"), "kind load",
                    missing)


def _from_registry(settings: Settings, refs: list[str]) -> Delivery:
    registry = settings.image_registry.rstrip("/")
    unpushed = [r for r in refs if not r.startswith(registry + "/")]
    if unpushed:
        return Delivery(
            Check.of(DELIVERY, False, f"IMAGE_REGISTRY={registry} but the built refs are local: "
                     f"{', '.join(unpushed)}", "run `inv build --push`"),
            "registry",
        )
    return Delivery(Check(DELIVERY, Verdict.PASS,
                          f"pulled from {registry} (pushed by inv build --push)"), "registry")


def deliver_images(
    settings: Settings,
    runner: RunnerLike,
    images: dict[str, ImageRef],
    nodes: list[dict[str, Any]],
    log: Callable[[str], None] = say,
    local_images: Callable[[list[str]], dict[str, str]] = _local_docker_images,
    is_local: Callable[[str], bool] = _is_local_address,
) -> Delivery:
    """Get the built images to where the kubelet looks, the way the provider allows."""
    refs = [img.ref for img in images.values()]
    if not refs:
        return Delivery(Check.of(DELIVERY, False, "no build recorded in .state/images.json",
                                 "run `inv build`"), "none")
    if settings.cluster_provider == "minikube":
        return _load_into_minikube(settings, runner, refs, log)
    if settings.cluster_provider == "kind":
        return _load_into_kind(settings, runner, refs, nodes, log)
    shared, why = shares_host_daemon(nodes, images, local_images, is_local)
    if shared:
        return Delivery(Check(DELIVERY, Verdict.PASS, f"shared daemon, nothing to load ({why})"),
                        "shared daemon")
    if settings.image_registry:
        return _from_registry(settings, refs)
    return Delivery(
        Check.of(
            DELIVERY, False, f"the node cannot see the built images ({why})",
            "build on the node's own Docker daemon (minikube: `eval $(minikube docker-env)`), "
            "or set IMAGE_REGISTRY and run `inv build --push`, or use CLUSTER_PROVIDER=minikube/kind "
            "so the images are loaded for you",
        ),
        "none",
    )


def _pull_to_host(ref: str, log: Callable[[str], None]) -> tuple[bool, str]:
    """Make the host's Docker daemon hold `ref` (pulling it with progress when missing)."""
    if image_tools.local_image_id(ref):
        return True, f"{ref} already present"
    try:
        seconds = image_tools.ensure_image(image_tools.engine(timeout=900), ref, log)
    except (image_tools.EngineUnavailable, image_tools.PullError) as exc:
        return False, str(exc)
    return True, f"pulled {ref} in {seconds:.1f} s" if seconds else f"{ref} already present"


def deliver_database_image(
    settings: Settings,
    runner: RunnerLike,
    method: str,
    nodes: list[dict[str, Any]],
    log: Callable[[str], None] = say,
    pull: Callable[[str, Callable[[str], None]], tuple[bool, str]] = _pull_to_host,
) -> Check:
    """The bundled PostgreSQL image, where the kubelet will look for it.

    minikube/kind nodes have their own image store: pull on the host, then load it
    (the node may have no route to Docker Hub's mirror or credentials). A node on
    the host's daemon gets it pulled here, with progress, instead of as a silent
    part of the rollout wait. Otherwise the kubelet pulls it (IfNotPresent).
    """
    name = "database image"
    ref = settings.postgres_image
    fix = (f"check POSTGRES_IMAGE={ref} (`inv config`) and that `docker pull {ref}` works, "
           "then `inv cluster`")
    if method in ("minikube image load", "kind load"):
        if method == "kind load":
            present = _normalize(ref) in node_image_refs(nodes)
        else:
            profile = settings.minikube_profile
            listed = runner.run(["minikube", "image", "ls", "-p", profile], timeout=120)
            present = _normalize(ref) in {_normalize(x.strip()) for x in listed.stdout.splitlines()}
        if present:
            return Check(name, Verdict.PASS, f"{ref} already in the node")
        ok, how = pull(ref, log)
        if not ok:
            return Check.of(name, False, how, fix)
        argv = (["kind", "load", "docker-image", ref, "--name", settings.kind_cluster_name]
                if method == "kind load"
                else ["minikube", "image", "load", ref, "-p", settings.minikube_profile])
        log(f"loading {ref} into the node ({' '.join(argv[:3])})")
        loaded = runner.run(argv, timeout=900)
        if not loaded.ok:
            why = (loaded.stderr or loaded.stdout).strip().splitlines()
            return Check.of(name, False, f"`{' '.join(argv)}` failed: {why[-1] if why else ''}", fix)
        return Check(name, Verdict.PASS, f"{how}; loaded into the node")
    if method == "shared daemon":
        ok, how = pull(ref, log)
        return Check.of(name, ok, how, fix)
    return Check(name, Verdict.PASS, f"the kubelet pulls {ref} (imagePullPolicy IfNotPresent)")


# ---- capacity -------------------------------------------------------------------------


def app_requests(objects: list[dict[str, Any]]) -> tuple[Decimal, Decimal, list[str]]:
    """Sum of cpu (cores) and memory (bytes) requests of the app's long-running pods."""
    cpu, mem, parts = Decimal(0), Decimal(0), []
    for obj in objects:
        if obj.get("kind") not in ("Deployment", "StatefulSet"):
            continue
        replicas = obj.get("spec", {}).get("replicas", 1)
        pod = obj["spec"]["template"]["spec"]
        c = sum(quantity((k.get("resources") or {}).get("requests", {}).get("cpu"))
                for k in pod.get("containers", []))
        m = sum(quantity((k.get("resources") or {}).get("requests", {}).get("memory"))
                for k in pod.get("containers", []))
        cpu += c * replicas
        mem += m * replicas
        parts.append(f"{obj['metadata']['name']} {replicas}x({c * 1000:.0f}m, {m / 2**20:.0f}Mi)")
    return cpu, mem, parts


def surge_requests(objects: list[dict[str, Any]]) -> tuple[Decimal, Decimal]:
    """What a rolling update adds while old and new pods run together (maxSurge pods of
    every Deployment: a settings change rolls them all)."""
    cpu, mem = Decimal(0), Decimal(0)
    for obj in objects:
        if obj.get("kind") != "Deployment":
            continue
        spec = obj.get("spec", {})
        replicas = spec.get("replicas", 1)
        surge = ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxSurge", "25%")
        extra = (math.ceil(replicas * int(surge[:-1]) / 100) if isinstance(surge, str)
                 and surge.endswith("%") else int(surge))
        pod = spec["template"]["spec"]
        for k in pod.get("containers", []):
            requests = (k.get("resources") or {}).get("requests", {})
            cpu += quantity(requests.get("cpu")) * extra
            mem += quantity(requests.get("memory")) * extra
    return cpu, mem


def capacity_check(
    kube: Kube, settings: Settings, objects: list[dict[str, Any]], nodes: list[dict[str, Any]]
) -> Check:

    need_cpu, need_mem, parts = app_requests(objects)
    ready = [n for n in nodes if _node_ready(n)]
    alloc_cpu = sum((quantity(n["status"]["allocatable"].get("cpu")) for n in ready), Decimal(0))
    alloc_mem = sum((quantity(n["status"]["allocatable"].get("memory")) for n in ready), Decimal(0))
    used_cpu, used_mem = Decimal(0), Decimal(0)
    ready_names = {n["metadata"]["name"] for n in ready}
    for pod in kube.list("v1", "Pod"):
        status = pod.get("status", {}).get("phase")
        if status in ("Succeeded", "Failed") or pod["spec"].get("nodeName") not in ready_names:
            continue
        meta = pod["metadata"]
        labels = meta.get("labels", {})
        if meta.get("namespace") == settings.namespace and labels.get(
            "app.kubernetes.io/instance") == settings.release_name:
            continue  # our own pods are replaced, not added
        for k in pod["spec"].get("containers", []):
            req = (k.get("resources") or {}).get("requests", {})
            used_cpu += quantity(req.get("cpu"))
            used_mem += quantity(req.get("memory"))
    free_cpu, free_mem = alloc_cpu - used_cpu, alloc_mem - used_mem
    ok = bool(ready) and need_cpu <= free_cpu and need_mem <= free_mem
    surge_cpu, surge_mem = surge_requests(objects)
    roomy = need_cpu + surge_cpu <= free_cpu and need_mem + surge_mem <= free_mem
    evidence = (
        f"app requests {need_cpu * 1000:.0f}m CPU, {need_mem / 2**20:.0f}Mi "
        f"({'; '.join(parts)}); free on {len(ready)} Ready node(s): {free_cpu * 1000:.0f}m CPU, "
        f"{free_mem / 2**20:.0f}Mi (allocatable {alloc_cpu * 1000:.0f}m/{alloc_mem / 2**20:.0f}Mi "
        f"minus {used_cpu * 1000:.0f}m/{used_mem / 2**20:.0f}Mi already requested)"
    )
    fix = ("give the node more: MINIKUBE_CPUS/MINIKUBE_MEMORY then `minikube delete -p "
           f"{settings.minikube_profile}` and `inv cluster`; or lower BACKEND_REPLICAS/FRONTEND_REPLICAS")
    if ok and not roomy:
        return Check(
            "capacity covers the app's requests", Verdict.WARN,
            f"{evidence}; a rolling update needs {surge_cpu * 1000:.0f}m CPU, "
            f"{surge_mem / 2**20:.0f}Mi more for its new pods (maxSurge), which do not fit: "
            "rollouts will wait until other pods free room", fix)
    return Check.of("capacity covers the app's requests", ok, evidence, fix)


def _node_ready(node: dict[str, Any]) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in node.get("status", {}).get("conditions", []) or []
    )


# ---- the stage ------------------------------------------------------------------------


def _node_checks(kube: Kube, version: dict[str, Any], details: ClusterDetails,
                 nodes: list[dict[str, Any]]) -> list[Check]:
    ready = [n for n in nodes if _node_ready(n)]
    kubelets = sorted({n["status"]["nodeInfo"]["kubeletVersion"] for n in nodes})
    details.kubelet_versions = kubelets
    return [
        Check.of(
            "nodes Ready", bool(ready) and len(ready) == len(nodes),
            f"{len(ready)}/{len(nodes)} Ready: " + ", ".join(n["metadata"]["name"] for n in nodes),
            "`kubectl describe node` shows why; minikube: `minikube start` again",
        ),
        Check("Kubernetes version", Verdict.PASS,
              f"API server {version.get('gitVersion')}, kubelet {', '.join(kubelets)}"),
    ]


def _capacity(loaded: LoadedSettings, kube: Kube, images: dict[str, ImageRef],
              nodes: list[dict[str, Any]]) -> Check:
    """The app's requests against the nodes', rendered as the deploy will (the live
    NodePort kept, this cluster's APIs): one render for both stages."""
    settings = loaded.settings
    if not images:
        return Check.of("capacity covers the app's requests", False,
                        "no build recorded, so the app's requests are unknown", "run `inv build`")
    try:
        node_port = live_node_port(kube, settings)
        capabilities = kube.capabilities()
    except KubeError:
        node_port, capabilities = 0, None  # the deploy reads them again and says what failed
    try:
        objects = manifests.render_manifests(settings, images, node_port,
                                             cache_dir=loaded.state_dir, capabilities=capabilities)
        return capacity_check(kube, settings, objects, nodes)
    except Exception as exc:  # noqa: BLE001 - any renderer error becomes a failed check
        return Check.of("capacity covers the app's requests", False,
                        f"could not render the manifests: {exc}",
                        "fix the chart or the settings, see the error")


def _default_storage_class(kube: Kube) -> Check:
    classes = kube.list("storage.k8s.io/v1", "StorageClass")
    marks = ("storageclass.kubernetes.io/is-default-class",
             "storageclass.beta.kubernetes.io/is-default-class")
    defaults = [c["metadata"]["name"] for c in classes
                if any((c["metadata"].get("annotations") or {}).get(m) == "true" for m in marks)]
    return Check.of(
        "default StorageClass", bool(defaults),
        f"default: {', '.join(defaults)}" if defaults else
        f"no default among: {', '.join(c['metadata']['name'] for c in classes) or 'none'}",
        "minikube: `minikube addons enable storage-provisioner`; or mark a class default; "
        "or use DATABASE_MODE=external",
    )


def run(
    loaded: LoadedSettings,
    *,
    runner: RunnerLike | None = None,
    kube: Kube | None = None,
    log: Callable[[str], None] = say,
) -> GateResult:

    settings = loaded.settings
    if runner is None:
        runner = Runner(log=log, secrets=settings.secret_values())
    result = GateResult(STAGE)
    details = ClusterDetails(provider=settings.cluster_provider)
    provider_check = ensure_cluster(settings, runner, log)
    result.checks.append(provider_check)
    context = settings.context_name
    try:
        if provider_check.verdict is Verdict.FAIL:
            return result
        details.context = context or "(current)"
        try:
            kube = kube or Kube(context)
            version = kube.server_version()
        except KubeError as exc:
            result.checks.append(Check.of(
                "context answers", False, f"context {context or '(current)'}: {exc}",
                "check `kubectl --context <ctx> get nodes`; set KUBE_CONTEXT or CLUSTER_PROVIDER",
            ))
            return result
        details.server_version = version.get("gitVersion", "")
        result.checks.append(Check.of(
            "context answers", True, f"context {context or '(current)'}: server "
            f"{version.get('gitVersion')} ({version.get('platform')})",
        ))
        nodes = kube.list("v1", "Node")
        result.checks.extend(_node_checks(kube, version, details, nodes))
        images = load_images(loaded.state_dir)
        result.checks.append(_capacity(loaded, kube, images, nodes))
        if settings.database_mode == "bundled":
            result.checks.append(_default_storage_class(kube))
        delivery = deliver_images(settings, runner, images, nodes, log)
        details.image_delivery = delivery.method
        result.checks.append(delivery.check)
        if settings.database_mode == "bundled":
            result.checks.append(deliver_database_image(settings, runner, delivery.method, nodes,
                                                        log))
        if images and delivery.check.verdict is not Verdict.FAIL:
            result.checks.append(images_present_check(kube, settings, images, delivery))
    finally:
        result.details = details.as_dict()
    return result


def images_present_check(
    kube: Kube, settings: Settings, images: dict[str, ImageRef], delivery: Delivery
) -> Check:
    """The built refs are where the kubelet looks (re-read after delivery)."""
    name = "images present on the node"
    refs = [img.ref for img in images.values()]
    if delivery.method == "registry":
        return Check(name, Verdict.PASS, f"pulled on demand from {settings.image_registry}")
    nodes = kube.list("v1", "Node")
    listed = node_image_refs(nodes)
    missing = [r for r in refs if _normalize(r) not in listed]
    if not missing:
        return Check.of(name, True, f"node status lists {', '.join(refs)}")
    if delivery.method == "shared daemon":
        # node.status.images holds only the 50 largest images; the daemon check stands.
        return Check(name, Verdict.PASS, f"{', '.join(refs)} in the shared Docker daemon")
    if delivery.method == "minikube image load":
        return Check(name, Verdict.PASS, f"{', '.join(refs)} listed by `minikube image ls`")
    if set(missing) <= set(delivery.loaded):
        # the kubelet refreshes node.status.images every few seconds; the load succeeded
        return Check(name, Verdict.PASS, f"just loaded {', '.join(missing)}")
    return Check.of(
        name, False, f"not listed by the node: {', '.join(missing)}",
        "re-run `inv cluster` to load them, or `inv build` first",
    )
