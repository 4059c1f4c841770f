"""How to reach the frontend the way a user would on this cluster.

Ingress    -> https://<the Ingress's address>/ with Host: INGRESS_HOST, when INGRESS_HOST
              is set and an ingress controller gave the Ingress an address
minikube   -> `minikube service <svc> -n <ns> --url -p <profile>` (through the Runner)
NodePort   -> http://<node InternalIP>:<nodePort>
LoadBalancer with an ingress address -> http://<ip or hostname>:<port>
otherwise  (LoadBalancer pending, ClusterIP, or an address that does not answer)
           -> a port-forward opened here and always closed in a `finally`.

The port-forward is the kubernetes client's `portforward` wrapped in a local
socket server: every accepted connection is forwarded to a Ready pod behind the
Service, chosen afresh, so it keeps working while pods are replaced (the
self-healing and persistence checks delete pods).
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlparse

from todo_deploy.chart import ingress as ingresses
from todo_deploy.kube import Kube

if TYPE_CHECKING:
    from todo_deploy.config import Settings
    from todo_deploy.tools.commands import Runner

MINIKUBE = "minikube-service"
NODEPORT = "nodeport"
LOADBALANCER = "loadbalancer"
PORT_FORWARD = "port-forward"
INGRESS = "ingress"
# The detail of a port-forward asked for (`inv open --forward`, `--access port-forward`),
# not chosen for want of a direct way: no flag named, since either task asks.
REQUESTED = "port-forward asked for"
ACCESS_MODES = ("auto", PORT_FORWARD)


@dataclass(frozen=True)
class AccessPlan:
    """Which path reaches the frontend: `url` is empty for a port-forward still to open."""

    kind: str
    url: str = ""
    detail: str = ""
    # The Host header to send (the Ingress's host, the URL naming its address); set, the
    # certificate (self-signed, or for the host, not the address) is not verified.
    host: str = ""


def frontend_service_name(settings: Settings) -> str:
    return f"{settings.release_name}-frontend"


def live_node_port(kube: Kube, settings: Settings) -> int:
    """The frontend Service's NodePort now (0: none), to keep it when the Service is remade."""
    service = kube.get("v1", "Service", frontend_service_name(settings), settings.namespace)
    if not service or (service.get("spec") or {}).get("type") != "NodePort":
        return 0
    return int(_service_port(service).get("nodePort") or 0)


def tcp_reachable(url: str, timeout: float = 3.0, retry_every: float = 0.25) -> bool:
    """Whether a TCP connection to `url` opens within `timeout` seconds. A refused
    connection is tried again until then: right after a rollout the Service's node rules
    follow its new endpoints by a moment (kube-proxy's sync), and until they do a NodePort
    refuses, though it will answer."""
    parsed = urlparse(url)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            with socket.create_connection((parsed.hostname or "", port), timeout=max(remaining, 0.1)):
                return True
        except ConnectionRefusedError:
            if deadline - time.monotonic() <= retry_every:
                return False
            time.sleep(retry_every)
        except OSError:
            return False


def _service_port(service: dict[str, Any]) -> dict[str, Any]:
    ports = (service.get("spec") or {}).get("ports") or []
    for port in ports:
        if port.get("port") == 80 or port.get("name") == "http":
            return port
    return ports[0] if ports else {}


def _node_address(nodes: list[dict[str, Any]]) -> str:
    def ready(node: dict[str, Any]) -> bool:
        conditions = (node.get("status") or {}).get("conditions") or []
        return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)

    for node in sorted(nodes, key=lambda n: not ready(n)):
        for address in (node.get("status") or {}).get("addresses") or []:
            if address.get("type") == "InternalIP" and address.get("address"):
                return str(address["address"])
    return ""


def _minikube_url(settings: Settings, runner: Runner) -> tuple[str, str]:
    argv = [
        "minikube", "service", frontend_service_name(settings),
        "-n", settings.namespace, "--url", "-p", settings.minikube_profile,
    ]  # fmt: skip
    result = runner.run(argv, timeout=60)
    urls = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("http")]
    if result.ok and urls:
        return urls[0], ""
    why = (result.stderr or result.stdout).strip().splitlines()
    return "", f"`minikube service --url` gave no URL ({why[-1] if why else result.returncode})"


def minikube_service_blocks(settings: Settings, platform: str | None = None) -> bool:
    """On macOS and Windows the docker/podman drivers cannot route to the node, so
    `minikube service --url` opens a tunnel and blocks until interrupted."""
    return (platform or sys.platform) in ("darwin", "win32") and settings.minikube_driver in ("docker", "podman")


def choose_access(
    settings: Settings,
    service: dict[str, Any] | None,
    nodes: list[dict[str, Any]],
    runner: Runner | None = None,
    reachable: Callable[[str], bool] = tcp_reachable,
    mode: str = "auto",
    ingress: dict[str, Any] | None = None,
) -> AccessPlan:
    """Decide how to reach the frontend; falls back to a port-forward, saying why."""
    name = frontend_service_name(settings)
    if mode == PORT_FORWARD:
        return AccessPlan(PORT_FORWARD, detail=REQUESTED)
    reasons: list[str] = []
    if settings.ingress_host:
        plan, why = _through_ingress(settings, ingress, reachable)
        if plan:
            return plan
        reasons.append(why)
    if service is None:
        return AccessPlan(PORT_FORWARD, detail="; ".join([*reasons, f"Service {name} not found"]))
    if settings.cluster_provider == "minikube" and runner is not None:
        plan, why = _through_minikube(settings, runner, reachable, name)
        if plan:
            return plan
        reasons.append(why)
    plan, why = _through_service(settings, service, nodes, reachable)
    if plan:
        return plan
    reasons.append(why)
    return AccessPlan(PORT_FORWARD, detail="; ".join(reasons))


def _through_minikube(settings: Settings, runner: Runner, reachable: Callable[[str], bool],
                      name: str) -> tuple[AccessPlan | None, str]:
    """The URL `minikube service --url` gives when it answers, else why not."""
    if minikube_service_blocks(settings):
        return None, (
            f"`minikube service --url` keeps a tunnel open with the {settings.minikube_driver} "
            f"driver on {sys.platform} (minikube issues 7644, 14039), so it is not called"
        )
    url, why = _minikube_url(settings, runner)
    if url and reachable(url):
        return AccessPlan(MINIKUBE, url, f"minikube service {name} --url"), ""
    return None, why or f"{url} did not answer"


def _through_service(settings: Settings, service: dict[str, Any], nodes: list[dict[str, Any]],
                     reachable: Callable[[str], bool]) -> tuple[AccessPlan | None, str]:
    """The Service's own NodePort or LoadBalancer address when it answers, else why not."""
    kind = (service.get("spec") or {}).get("type") or "ClusterIP"
    port = _service_port(service)
    if kind == "NodePort":
        address, node_port = _node_address(nodes), port.get("nodePort")
        if not (address and node_port):
            return None, "NodePort service without a node address or nodePort"
        url = f"http://{address}:{node_port}"
        if reachable(url):
            return AccessPlan(NODEPORT, url, f"NodePort {node_port} on node {address}"), ""
        return None, f"NodePort {url} did not answer"
    if kind == "LoadBalancer":
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        host = next((i.get("ip") or i.get("hostname") for i in ingress if i), None)
        if not host:
            return None, "LoadBalancer has no ingress address yet (pending)" + (
                f"; `minikube tunnel -p {settings.minikube_profile}` in another terminal gives it one"
                if settings.cluster_provider == "minikube" else ""
            )
        url = f"http://{host}:{port.get('port', 80)}"
        if reachable(url):
            return AccessPlan(LOADBALANCER, url, f"LoadBalancer ingress {host}"), ""
        return None, f"LoadBalancer {url} did not answer"
    return None, f"Service type {kind} is not reachable from outside the cluster"


def _through_ingress(
    settings: Settings, ingress: dict[str, Any] | None, reachable: Callable[[str], bool]
) -> tuple[AccessPlan | None, str]:
    """The Ingress's way in when its controller gave it an address that answers, else
    (None, why not)."""
    name = frontend_service_name(settings)
    if ingress is None:
        return None, f"Ingress {name} not found"
    address = ingresses.ingress_address(ingress)
    if not address:
        return None, f"Ingress {name} has no address (no ingress controller serves its class?)"
    url = f"{ingresses.scheme(settings)}://{address}/"
    if not reachable(url):
        return None, f"Ingress {url} did not answer"
    return AccessPlan(INGRESS, url, f"Ingress {settings.ingress_host} at {address}",
                      host=settings.ingress_host), ""


def read_ingress(settings: Settings, kube: Kube) -> dict[str, Any] | None:
    """The frontend's Ingress when one is configured (None otherwise, or not there)."""
    if not settings.ingress_host:
        return None
    return kube.get("networking.k8s.io/v1", "Ingress", frontend_service_name(settings),
                    settings.namespace)


class PortForwarder:
    """A local TCP server forwarding each connection to a Ready pod behind a Service.

    It owns its ApiClient: the kubernetes client's websocket helpers swap the
    client's transport during a call, so they must not share one with other threads.
    """

    def __init__(
        self, settings: Settings, api_client: Any, service_name: str, port: int = 0
    ) -> None:
        from kubernetes import client

        self.namespace = settings.namespace
        self.service_name = service_name
        self.core = client.CoreV1Api(api_client)
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.connections = 0
        self.errors: list[str] = []
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._server: socket.socket | None = None
        self.port = port  # 0: any free port
        self.url = ""

    # -- lifecycle ----------------------------------------------------------------
    def start(self) -> str:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        server.settimeout(0.5)
        self._server = server
        self.url = f"http://127.0.0.1:{server.getsockname()[1]}"
        thread = threading.Thread(target=self._accept_loop, name="verify-port-forward", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self.url

    def close(self) -> None:
        self.stop.set()
        if self._server is not None:
            with contextlib.suppress(OSError):
                self._server.close()
        for thread in list(self._threads):
            thread.join(timeout=3)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding ----------------------------------------------------------------
    def _target(self) -> tuple[str, int]:
        """A Ready, not-terminating pod behind the Service and its container port."""
        # Any: the client's models type every field Optional; a served Service and Pod have
        # these (a missing one fails here as it did before mypy).
        service: Any = self.core.read_namespaced_service(self.service_name, self.namespace)
        selector = ",".join(f"{k}={v}" for k, v in sorted((service.spec.selector or {}).items()))
        port = next(
            (p for p in service.spec.ports if p.port == 80 or p.name == "http"),
            service.spec.ports[0],
        )
        listed: Any = self.core.list_namespaced_pod(self.namespace, label_selector=selector)
        pods: list[Any] = [
            pod
            for pod in listed.items
            if pod.metadata.deletion_timestamp is None
            and any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])
        ]
        if not pods:
            raise RuntimeError(f"no Ready pod behind Service {self.service_name}")
        pods.sort(key=lambda p: p.metadata.name)
        pod = pods[next(self._counter) % len(pods)]
        target = port.target_port if port.target_port is not None else port.port
        if isinstance(target, str) and not target.isdigit():
            named = [
                cp.container_port
                for c in pod.spec.containers
                for cp in c.ports or []
                if cp.name == target
            ]
            if not named:
                raise RuntimeError(f"pod {pod.metadata.name} has no port named {target}")
            target = named[0]
        return pod.metadata.name, int(target)

    def _accept_loop(self) -> None:
        assert self._server is not None
        while not self.stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]

    def _serve(self, conn: socket.socket) -> None:
        from kubernetes.stream import portforward

        forward = None
        try:
            with self.lock:
                pod, port = self._target()
                forward = portforward(
                    self.core.connect_get_namespaced_pod_portforward,
                    pod,
                    self.namespace,
                    ports=str(port),
                )
            remote = forward.socket(port)
            remote.setblocking(True)
            self._relay(conn, remote)
        except Exception as exc:  # noqa: BLE001 - one failed connection must not stop the server
            self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
        finally:
            with contextlib.suppress(OSError):
                conn.close()
            if forward is not None:
                with contextlib.suppress(Exception):
                    forward.close()

    def _relay(self, conn: socket.socket, remote: Any) -> None:
        peers = {conn: remote, remote: conn}
        while not self.stop.is_set():
            readable, _, _ = select.select(list(peers), [], [], 0.5)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    return
                peers[sock].sendall(data)


@dataclass
class Access:
    """An open way to the frontend; `forwarder` is set when a port-forward is in use."""

    plan: AccessPlan
    url: str
    forwarder: PortForwarder | None = None

    @property
    def kind(self) -> str:
        return self.plan.kind

    def describe(self) -> str:
        detail = f" ({self.plan.detail})" if self.plan.detail else ""
        return f"{self.plan.kind} {self.url}{detail}"


def read_service_and_nodes(
    settings: Settings, kube: Kube
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The frontend Service and the nodes, as the API's JSON."""
    service = kube.get("v1", "Service", frontend_service_name(settings), settings.namespace)
    return service, kube.list("v1", "Node")


def plan_access(
    settings: Settings, kube: Kube, runner: Runner | None = None, mode: str = "auto"
) -> AccessPlan:
    """How a user reaches the frontend right now (for verify and the docs report)."""
    service, nodes = read_service_and_nodes(settings, kube)
    return choose_access(settings, service, nodes, runner=runner, mode=mode,
                         ingress=read_ingress(settings, kube))


@contextlib.contextmanager
def open_access(
    settings: Settings,
    kube: Kube,
    runner: Runner | None = None,
    mode: str = "auto",
) -> Iterator[Access]:
    """Reach the frontend; a port-forward opened here is closed when the block ends."""
    service, nodes = read_service_and_nodes(settings, kube)
    plan = choose_access(settings, service, nodes, runner=runner, mode=mode,
                         ingress=read_ingress(settings, kube))
    if plan.kind != PORT_FORWARD:
        yield Access(plan, plan.url)
        return
    if service is None:
        raise RuntimeError(plan.detail)
    # Its own ApiClient: the websocket helpers are not safe to share across threads.
    own = Kube(kube.context).api
    forwarder = PortForwarder(settings, own, frontend_service_name(settings))
    try:
        url = forwarder.start()
        yield Access(plan, url, forwarder)
    finally:
        forwarder.close()
