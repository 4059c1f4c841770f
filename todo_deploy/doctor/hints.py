"""Fix hints that depend on the cluster provider: how an image reaches the kubelet, how
the cluster gets more CPU or memory, where a default StorageClass comes from."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal

from todo_deploy.components import BACKEND, BY_LABEL, FRONTEND
from todo_deploy.doctor.model import Target, Workload, fmt_amount

# The setting that sets a part's replicas, by its pod label.
REPLICA_SETTINGS = {BACKEND.label: "BACKEND_REPLICAS", FRONTEND.label: "FRONTEND_REPLICAS"}
CHART_VALUES = "helm/todo-chatbot/values.yaml"


def delivery_step(target: Target) -> str:
    """The step that puts a built image where this provider's kubelet looks for it."""
    if target.registry:
        return (f"`inv build --push` (IMAGE_REGISTRY={target.registry}) so the kubelet "
                "pulls it from the registry")
    return {
        "minikube": "`inv build` then `inv cluster` (it runs `minikube image load` so the "
        "node's runtime has the image)",
        "kind": "`inv build` then `inv cluster` (it runs `kind load docker-image` into the "
        "kind node)",
        "docker-desktop": "`inv build` (Docker Desktop's Kubernetes shares the Docker daemon: "
        "the exact tag must be in `docker images`)",
    }.get(
        target.provider,
        "`inv build` then `inv cluster`: a node that shares the Docker daemon needs the exact "
        "tag in `docker images`; a node that does not needs IMAGE_REGISTRY and "
        "`inv build --push`",
    )


def delivery_fix(reason: str, image: str, target: Target) -> str:
    """How to make a missing image reach the kubelet, for this provider."""
    if target.registry:
        never = (
            " and let the kubelet pull it: imagePullPolicy Never only looks in the node's "
            "local images, so deploy with IfNotPresent"
            if reason == "ErrImageNeverPull"
            else ""
        )
        return (
            f"push the image: `inv build --push` (IMAGE_REGISTRY={target.registry}){never}, "
            "then `inv deploy`; check the tag in the manifest matches the pushed one"
        )
    policy = ""
    if reason == "ErrImageNeverPull":
        policy = " (imagePullPolicy Never: the kubelet only looks in the node's local images)"
    elif reason in ("ImagePullBackOff", "ErrImagePull"):
        policy = " (the kubelet tried to pull it from a registry and could not)"
    return (f"make {image} present where the kubelet looks{policy}: {delivery_step(target)}, "
            "then `inv deploy`")


def grow_hint(resources: Iterable[str], target: Target) -> str:
    """How to give the cluster more of `resources` on this provider."""
    wanted = [r for r in resources if r in ("cpu", "memory")]
    what = " and ".join(wanted) or "room"
    if target.provider == "minikube" and wanted:
        knobs = "/".join({"cpu": "MINIKUBE_CPUS", "memory": "MINIKUBE_MEMORY"}[r] for r in wanted)
        return (f"give minikube more {what}: {knobs}, then `minikube delete -p "
                f"{target.minikube_profile}` and `inv cluster`")
    return {
        "minikube": "give minikube a bigger node (`minikube delete`, then `inv cluster`)",
        "kind": f"give Docker more {what}: the kind node is a container sharing the Docker "
        "host's resources (Docker Desktop: Settings → Resources)",
        "docker-desktop": f"give Docker Desktop more {what}: Settings → Resources, then "
        "Apply & restart",
    }.get(target.provider, f"add a node with more {what} to the cluster (its administrator's step)")


def capacity_fix(
    shortages: Mapping[str, tuple[Decimal, Decimal, Decimal]],
    workload: Workload,
    scheduled: int,
    target: Target,
) -> str:
    """shortages: resource -> (per pod, allocatable on the largest node, free there)."""
    steps: list[str] = []
    where = (f"the {workload.component}'s resources.requests in {CHART_VALUES}"
             if workload.component in BY_LABEL
             else f"the requests of {workload.title}'s containers")
    knob = REPLICA_SETTINGS.get(workload.component)
    too_big = {r: v for r, v in shortages.items() if v[0] > v[1]}
    if too_big:
        below = ", ".join(f"{r} below {fmt_amount(r, v[1])}" for r, v in too_big.items())
        steps.append(f"each pod asks for more than a node has: lower {where} ({below})")
    else:
        fits = min(
            (scheduled + int(free // per) if per > 0 else scheduled)
            for per, _, free in shortages.values()
        )
        if knob and workload.replicas:
            steps.append(f"run fewer replicas: {knob} (now {workload.replicas}; about "
                         f"{max(fits, 0)} fit next to what the node already runs)")
        per_pod = ", ".join(f"{fmt_amount(r, v[0])} {r}" for r, v in shortages.items())
        steps.append(f"lower {where} ({per_pod} per pod)")
    steps.append(grow_hint(shortages, target))
    return "; or ".join(steps)


def storage_hint(target: Target) -> str:
    return {
        "minikube": "`minikube addons enable default-storageclass storage-provisioner`",
        "kind": "kind ships a default class `standard` (rancher local-path): check "
        "`kubectl get storageclass`",
        "docker-desktop": "Docker Desktop ships a default class `hostpath`: check "
        "`kubectl get storageclass`",
    }.get(target.provider, "install a provisioner or ask the cluster's administrator")
