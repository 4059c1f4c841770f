"""A kagent agent that knows this app: a RemoteMCPServer pointing at `inv mcp --http`,
an Agent that uses only its read-only tools, and namespace-scoped read-only RBAC.

kagent's API (kagent.dev/v1alpha2, as in kagent's CRDs; the copies the tests
validate against are in tests/fixtures/kagent/): an `Agent` of type Declarative
lists tools of type McpServer referencing a `RemoteMCPServer` by name, in the
same namespace (KAGENT_NAMESPACE). The agent runs under a ServiceAccount of its
own whose only rights are get/list/watch in the app's namespace: even a prompt
that talks it into using another tool cannot change the app.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from todo_deploy.kube import KubeError
from todo_deploy.mcp import crds
from todo_deploy.mcp.tools import READ_ONLY_TOOLS

if TYPE_CHECKING:
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube

API_VERSION = "kagent.dev/v1alpha2"
DEFAULT_PORT = 8765
# Where a pod finds the machine that runs `inv mcp --http`, per provider.
HOST_NAMES = {
    "minikube": "host.minikube.internal",
    "kind": "host.docker.internal",
    "docker-desktop": "host.docker.internal",
    "existing": "host.docker.internal",
}
READ_RULES = [
    {"apiGroups": [""], "resources": [
        "pods", "pods/log", "events", "services", "endpoints", "persistentvolumeclaims",
        "configmaps"], "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "replicasets"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "list", "watch"]},
]


def agent_name(settings: Settings) -> str:
    """The app-specific agent's name (`kagent invoke -a <this>`)."""
    return f"{settings.release_name}-agent"


def server_name(settings: Settings) -> str:
    return f"{settings.release_name}-workflow"


def default_url(settings: Settings, port: int = DEFAULT_PORT) -> str:
    host = HOST_NAMES.get(settings.cluster_provider, "host.docker.internal")
    return f"http://{host}:{port}/mcp"


def system_prompt(settings: Settings) -> str:
    release, ns = settings.release_name, settings.namespace
    database = (
        f"- database: PostgreSQL, StatefulSet `{release}-postgres` with a PersistentVolumeClaim "
        "(bundled mode)"
        if settings.database_mode == "bundled"
        else "- database: an external PostgreSQL (DATABASE_URL); no database pod in the namespace"
    )
    return f"""You are the operations assistant of the Todo chatbot, Helm/raw release `{release}` \
in namespace `{ns}`.

The app's components:
- backend: FastAPI service (tasks API, chat, MCP task tools), Deployment `{release}-backend`, \
port 8000; liveness /health, readiness /ready (needs the database)
- frontend: Python web UI that proxies /api to the backend server-side, Deployment \
`{release}-frontend`, port 8080
{database}
- migrate: the database migration Job, run before the backend rolls out

Your tools come from the project's own workflow (the checks its pipeline trusts):
- `status`: every stage gate (build, cluster, deploy, helm, aiops, verify, docs) with its checks
- `doctor`: the built-in doctor's findings grouped per object, each with kind \
(CrashLoopBackOff, image not found, OOMKilled, missing config, Pending, unbound PVC, \
readiness/liveness probe failing, Service without endpoints, failed Job), evidence and fix
- `logs`: recent lines of one component (backend, frontend, database, migrate) with restarts \
and Warning events
- `verify`: the end-to-end checks through the frontend (pass `only` for a subset)
- `app_url`: where the app answers; `config`: the effective settings (secrets masked)

To answer "why is X not working": call `status`, then `doctor`, then `logs` of the component \
the findings name; quote the evidence and give the fix the doctor gives. You are read-only: \
you cannot deploy, roll back or scale; say which `inv` command the user should run instead."""


def _labels(settings: Settings) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "todo-chatbot-agent",
        "app.kubernetes.io/instance": settings.release_name,
        "app.kubernetes.io/component": "aiops-agent",
        "app.kubernetes.io/part-of": "todo-chatbot",
        "app.kubernetes.io/managed-by": "todo-deploy",
    }


def rbac(settings: Settings) -> list[dict[str, Any]]:
    """ServiceAccount (kagent's namespace) + Role/RoleBinding (the app's namespace)."""
    name, labels = agent_name(settings), _labels(settings)
    agents, app = settings.kagent_namespace, settings.namespace
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": name, "namespace": agents, "labels": labels}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": f"{name}-read", "namespace": app, "labels": labels},
         "rules": READ_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": f"{name}-read", "namespace": app, "labels": labels},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": f"{name}-read"},
         "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": agents}]},
    ]


def remote_mcp_server(settings: Settings, url: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "RemoteMCPServer",
        "metadata": {"name": server_name(settings), "namespace": settings.kagent_namespace,
                     "labels": _labels(settings)},
        "spec": {
            "description": f"The todo-chatbot workflow's gates and doctor for release "
                           f"{settings.release_name} (`inv mcp --http`, read-only)",
            "url": url,
            "protocol": "STREAMABLE_HTTP",
            "timeout": "60s",
            # verify walks the whole app through its frontend: minutes, not seconds
            "sseReadTimeout": "10m0s",
            "terminateOnClose": True,
        },
    }


def agent(settings: Settings) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "Agent",
        "metadata": {"name": agent_name(settings), "namespace": settings.kagent_namespace,
                     "labels": _labels(settings)},
        "spec": {
            "type": "Declarative",
            "description": f"Diagnoses the Todo chatbot release {settings.release_name} in "
                           f"namespace {settings.namespace} with the workflow's own gates "
                           "and doctor (read-only).",
            "declarative": {
                "systemMessage": system_prompt(settings),
                "tools": [{
                    "type": "McpServer",
                    "mcpServer": {
                        "apiGroup": "kagent.dev",
                        "kind": "RemoteMCPServer",
                        "name": server_name(settings),
                        "toolNames": list(READ_ONLY_TOOLS),
                    },
                }],
                "deployment": {"serviceAccountName": agent_name(settings)},
                "a2aConfig": {"skills": [{
                    "id": "todo-chatbot-diagnosis",
                    "name": "Todo chatbot diagnosis",
                    "description": "Explains why a component of the Todo chatbot is not "
                                   "working, from the workflow's gates, doctor and logs.",
                    "tags": ["kubernetes", "diagnosis", "todo-chatbot"],
                    "examples": ["why is my backend not ready?",
                                 "which gate failed and how do I fix it?"],
                }]},
            },
        },
    }


def manifests(settings: Settings, url: str) -> list[dict[str, Any]]:
    """Everything `inv aiops install-agent` applies, in apply order."""
    return [*rbac(settings), remote_mcp_server(settings, url), agent(settings)]


# ---- installing it: `inv aiops install-agent` ------------------------------------------------

CRD_NAMES = {"RemoteMCPServer": "remotemcpservers.kagent.dev", "Agent": "agents.kagent.dev"}
CRD_PATH = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/"
INSTALL_KAGENT = ("install kagent (`inv aiops --install-kagent` runs `kagent install --profile "
                  "demo`; or Helm's kagent-crds and kagent charts)")


@dataclass
class Installed:
    """What install() did (or, dry run, would do): the objects, or the missing
    prerequisites and the schema problems that stopped it."""

    objects: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    agent: str = ""
    namespace: str = ""
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return bool(self.objects) and not self.missing and not self.problems

    def explain(self) -> str:
        if self.missing:
            return ("cannot install the agent: " + "; ".join(self.missing)
                    + ". Then run `inv aiops install-agent` again.")
        if self.problems:
            return "the manifests do not fit the cluster's kagent CRDs: " + "; ".join(self.problems)
        if self.dry_run:
            return (f"would apply {', '.join(self.objects)} (validated against the cluster's "
                    f"kagent CRDs, {API_VERSION}); nothing applied (--dry-run)")
        return (f"applied {', '.join(self.objects)}; ask it with `kagent invoke -a {self.agent} "
                f"-n {self.namespace} -t \"why is my backend not ready?\"` (`inv aiops` now "
                "uses it)")


def _crd(kube: Kube, name: str) -> dict[str, Any] | None:
    try:
        return kube.request("GET", CRD_PATH + name)
    except KubeError as exc:
        if exc.status == 404:
            return None
        raise


def install(settings: Settings, url: str, kube: Kube, *, dry_run: bool = False) -> Installed:
    """Apply the manifests when kagent's CRDs (serving v1alpha2) and both namespaces exist;
    validate them strictly against the cluster's CRDs first (dry run: only that)."""
    out = Installed(agent=agent_name(settings), namespace=settings.kagent_namespace,
                    dry_run=dry_run)
    objects = manifests(settings, url)
    version = API_VERSION.rsplit("/", 1)[1]
    found: dict[str, dict[str, Any]] = {}
    absent = []
    for kind, name in CRD_NAMES.items():
        crd = _crd(kube, name)
        if crd is None:
            absent.append(name)
        elif crds.version_schema(crd, version) is None:
            out.missing.append(f"CRD {name} does not serve {version} (serves "
                               f"{', '.join(crds.served_versions(crd)) or 'nothing'}): "
                               "upgrade kagent")
        else:
            found[kind] = crd
    if absent:
        out.missing.append(f"kagent's CRDs are not in the cluster ({', '.join(absent)}): "
                           f"{INSTALL_KAGENT}")
    if kube.get("v1", "Namespace", settings.kagent_namespace) is None:
        out.missing.append(f"kagent's namespace {settings.kagent_namespace} does not exist "
                           "(set KAGENT_NAMESPACE to where kagent runs)")
    if kube.get("v1", "Namespace", settings.namespace) is None:
        out.missing.append(f"the app's namespace {settings.namespace} does not exist "
                           "(deploy first: `inv up`)")
    if out.missing:
        return out
    for obj in objects:
        if obj["kind"] in found:
            out.problems += crds.problems(obj, found[obj["kind"]])
    if out.problems:
        return out
    for obj in objects:
        if not dry_run:
            kube.apply(obj)
        out.objects.append(f"{obj['kind']}/{obj['metadata']['name']}")
    return out


def installed_agent(settings: Settings, kube: Kube) -> str | None:
    """The app-specific agent's name when it is in the cluster, else None."""
    try:
        if _crd(kube, CRD_NAMES["Agent"]) is None:
            return None
        found = kube.get(API_VERSION, "Agent", agent_name(settings), settings.kagent_namespace)
    except KubeError:
        return None
    return agent_name(settings) if found else None
