"""The raw manifests: the chart rendered in-process, without Helm.

`inv deploy` applies `render_manifests(settings, images)`: the chart
(helm/todo-chatbot) rendered by the embedded Helm SDK with the settings' values
(`chart_values.raw_values`), minus Helm hooks and test pods. `k8s/` holds the same
chart rendered with its default values for release todo-chatbot in namespace
todo, plus the Namespace: plain YAML for readers and `kubectl apply -k k8s/`,
generated like ingress-nginx's static manifests are from its chart.
`python -m todo_deploy.chart.manifests` (or `inv manifests`) regenerates it; `--check`
(and tests/unit/test_manifests.py) fails when it has drifted from the chart.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml  # noqa: TID253 - loaded only where manifests are rendered or read

from todo_deploy.chart import values as chart_values

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import Settings
    from todo_deploy.kube import Capabilities

K8S_DIR = chart_values.PROJECT_ROOT / "k8s"
STATIC_RELEASE = "todo-chatbot"
STATIC_NAMESPACE = "todo"
KUSTOMIZATION = "kustomization.yaml"
HOOK = "helm.sh/hook"

# Helm's install order (pkg/release/util/kind_sorter.go), so that what a pod
# needs (its ServiceAccount, ConfigMap, Service) exists before the pod.
INSTALL_ORDER = (
    "PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange",
    "PodSecurityPolicy", "PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList",
    "ConfigMap", "StorageClass", "PersistentVolume", "PersistentVolumeClaim",
    "CustomResourceDefinition", "ClusterRole", "ClusterRoleList", "ClusterRoleBinding",
    "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding", "RoleBindingList", "Service",
    "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
    "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress",
    "APIService",
)
_DOCUMENT_SEPARATOR = re.compile(r"^---[ \t]*$", re.MULTILINE)
# libyaml's loader when PyYAML has it: parsing is most of a render's time.
YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def render_chart(
    values: dict[str, Any], release: str, namespace: str, chart_dir: Path = chart_values.CHART_DIR,
    capabilities: Capabilities | None = None,
) -> dict[str, str]:
    """Template path relative to the chart ('templates/backend.yaml') -> rendered
    text, offline (`lookup` finds nothing); values are validated by the schema.
    Without `capabilities` the chart sees the engine's defaults (the newest
    Kubernetes), as `helm template` does; with them, the cluster it will run on."""
    import helm_python

    from todo_deploy.helm import sdk_internals as helm_sdk

    with helm_python.Chart.load(chart_dir) as chart:
        chart.validate_schema(values)
        if capabilities is None:
            rendered = chart.render(values, name=release, namespace=namespace, is_install=True)
        else:
            rendered = helm_sdk.render(
                chart, values, name=release, namespace=namespace,
                kube_version=capabilities.kube_version or None,
                api_versions=capabilities.api_versions,
            )
    return {
        path.split("/", 1)[1]: text
        for path, text in rendered.items()
        if path.endswith((".yaml", ".yml"))
    }


def documents(text: str) -> list[tuple[str, dict[str, Any]]]:
    """A rendered template's YAML documents: (its text, comments kept; the object)."""
    out = []
    for chunk in _DOCUMENT_SEPARATOR.split(text):
        obj = yaml.load(chunk, Loader=YAML_LOADER)  # a safe loader (C or Python)
        if isinstance(obj, dict):
            out.append((chunk.strip("\n"), obj))
    return out


def is_hook(obj: dict[str, Any]) -> bool:
    """A Helm hook (the test pods, a hook migration Job): Helm's to run, not ours."""
    return HOOK in ((obj.get("metadata") or {}).get("annotations") or {})


def _order(obj: dict[str, Any]) -> int:
    kind = obj.get("kind", "")
    return INSTALL_ORDER.index(kind) if kind in INSTALL_ORDER else len(INSTALL_ORDER)


def render_objects(
    values: dict[str, Any], release: str, namespace: str, chart_dir: Path = chart_values.CHART_DIR,
    capabilities: Capabilities | None = None,
) -> list[dict[str, Any]]:
    """The chart's objects without hooks and test pods, in Helm's install order."""
    rendered = render_chart(values, release, namespace, chart_dir, capabilities)
    objects = [
        obj
        for _, text in sorted(rendered.items())
        for _, obj in documents(text)
        if not is_hook(obj)
    ]
    return sorted(objects, key=_order)


def render_manifests(
    settings: Settings, images: dict[str, ImageRef], node_port: int = 0,
    cache_dir: Path | None = None, capabilities: Capabilities | None = None, dev: bool = False,
) -> list[dict[str, Any]]:
    """What `inv deploy` applies (Secrets aside): the chart with the settings' values.

    `images` maps "backend"/"frontend" to the built ImageRef; the exact `.ref` is
    used. Bundled-database objects only when DATABASE_MODE=bundled. With `cache_dir`
    (a stage's .state/), a render is kept under the hash of its inputs: every file of
    the chart, the values, release and namespace. The same inputs render the same
    objects, and reading them back skips loading the Helm engine (0.1-0.3 s).
    `capabilities` (the target cluster's, `Kube.capabilities()`) choose the API
    versions the chart emits (HPA, PDB, Ingress) as a Helm install would; they are
    part of the cache key.
    """
    values = chart_values.raw_values(settings, images, node_port, dev)
    release, namespace = settings.release_name, settings.namespace
    if cache_dir is None:
        return render_objects(values, release, namespace, chart_values.CHART_DIR, capabilities)
    key = _render_key(values, release, namespace, capabilities)
    path = cache_dir / RENDER_CACHE
    try:
        cached = json.loads(path.read_text())
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    if key in cached:
        return cached[key]
    objects = render_objects(values, release, namespace, chart_values.CHART_DIR, capabilities)
    kept = dict(list(cached.items())[-(RENDERS_KEPT - 1):])  # the newest few, in order
    cache_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**kept, key: objects}))
    return objects


RENDER_CACHE = "rendered.json"
RENDERS_KEPT = 4  # the last renders of this settings root (the cluster and deploy stages')


def _render_key(
    values: dict[str, Any], release: str, namespace: str, capabilities: Capabilities | None
) -> str:
    target = [capabilities.kube_version, list(capabilities.api_versions)] if capabilities else None
    digest = hashlib.sha256(
        json.dumps([values, release, namespace, target], sort_keys=True).encode())
    for path in sorted(p for p in chart_values.CHART_DIR.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(chart_values.CHART_DIR)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def migration_job(objects: list[dict[str, Any]]) -> str:
    """The name of the migration Job among rendered objects (the chart names it)."""
    return next(o["metadata"]["name"] for o in objects if o["kind"] == "Job")


# ---- k8s/: the chart's defaults as committed plain manifests -----------------------------


def static_values() -> dict[str, Any]:
    """The chart's defaults plus what rendering without Helm needs: the Namespace,
    the raw path's managed-by label, and the Secrets' names (made by the user or by
    `inv deploy`, never stored in k8s/)."""
    return {
        "namespace": {"create": True},
        "managedBy": chart_values.MANAGED_BY,
        "secrets": {
            "existingSecret": {
                key: name.format(release=STATIC_RELEASE)
                for key, name in (
                    ("backend", chart_values.SECRET_BACKEND),
                    ("frontend", chart_values.SECRET_FRONTEND),
                    ("postgres", chart_values.SECRET_POSTGRES),
                )
            }
        },
    }


def _file_header(template: str) -> str:
    return (
        f"# Generated by `inv manifests` from helm/todo-chatbot/{template} (the chart's\n"
        f"# default values, release {STATIC_RELEASE}, namespace {STATIC_NAMESPACE}).\n"
        "# Do not edit: change the chart and run `inv manifests`.\n"
    )


def _kustomization(files: list[str], images: dict[str, str]) -> str:
    secrets = static_values()["secrets"]["existingSecret"]
    header = f"""\
# The Todo chatbot as plain manifests: helm/todo-chatbot rendered with its
# default values (release {STATIC_RELEASE}, namespace {STATIC_NAMESPACE}) plus the Namespace.
# Generated by `inv manifests`; tests/unit/test_manifests.py fails when these
# files drift from the chart. Do not edit them: change the chart and regenerate.
# `inv deploy` renders the same chart with your settings instead, and makes the
# Secrets from .env.
#
# To deploy them without the workflow:
# 1. Images. The tags below ("{next(iter(images.values()))}") are placeholders that
#    no build produces. `inv build` prints the real ones (12 hex characters, also
#    in .state/images.json). Set them in an overlay rather than here:
#      mkdir my-todo && cat > my-todo/kustomization.yaml <<EOF
#      resources: [../k8s]
#      images:
#        - {{name: todo-backend, newTag: <backend tag>}}
#        - {{name: todo-frontend, newTag: <frontend tag>}}
#      EOF
#    (or, in a copy of this directory: kustomize edit set image
#    todo-backend=todo-backend:<tag> todo-frontend=todo-frontend:<tag>).
# 2. Secrets, never stored here: in namespace {STATIC_NAMESPACE} (kubectl apply -f k8s/namespace.yaml)
#      kubectl -n {STATIC_NAMESPACE} create secret generic {secrets["postgres"]} \\
#        --from-literal=POSTGRES_PASSWORD=<password>
#      kubectl -n {STATIC_NAMESPACE} create secret generic {secrets["backend"]} \\
#        --from-literal=DATABASE_URL=postgresql://todo:<password>@{secrets["postgres"]}:5432/todo \\
#        --from-literal=AUTH_SECRET=<random, 32+ characters> --from-literal=OPENAI_API_KEY=
#      kubectl -n {STATIC_NAMESPACE} create secret generic {secrets["frontend"]} \\
#        --from-literal=SESSION_SECRET=<random, 32+ characters>
# 3. kubectl apply -k my-todo   (or -k k8s/ once the tags are real)
# The migration Job's name is fixed here (the chart names it after the backend
# tag it was rendered with), and a Job's pod template cannot change: before
# applying a new backend image, delete the finished Job so that it migrates
# again (kubectl -n {STATIC_NAMESPACE} delete job -l app.kubernetes.io/component=migration).
"""
    body = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": files,
        "images": [{"name": name, "newTag": tag} for name, tag in sorted(images.items())],
    }
    return header + yaml.safe_dump(body, sort_keys=False)


def generate(chart_dir: Path = chart_values.CHART_DIR) -> dict[str, str]:
    """File name -> text of everything in k8s/: one file per chart template that
    renders an object (hooks and test pods left out), and the kustomization."""
    values = static_values()
    rendered = render_chart(values, STATIC_RELEASE, STATIC_NAMESPACE, chart_dir)
    files: dict[str, tuple[int, str]] = {}
    images: dict[str, str] = {}
    for template, text in rendered.items():
        kept = [(doc, obj) for doc, obj in documents(text) if not is_hook(obj)]
        if not kept:
            continue
        name = Path(template).name
        if name in files or name == KUSTOMIZATION:
            raise ValueError(f"two chart templates would both write k8s/{name}")
        body = "\n---\n".join(doc for doc, _ in kept)
        files[name] = (min(_order(obj) for _, obj in kept), _file_header(template) + body + "\n")
        for _, obj in kept:
            for repository, tag in _app_images(obj):
                images.setdefault(repository, tag)
    order = sorted(files, key=lambda n: (files[n][0], n))
    out = {name: files[name][1] for name in order}
    out[KUSTOMIZATION] = _kustomization(order, images)
    return out


def _app_images(obj: dict[str, Any]) -> list[tuple[str, str]]:
    """(repository, tag) of the app's own images (the ones a build makes) in `obj`."""
    pod = ((obj.get("spec") or {}).get("template") or {}).get("spec") or {}
    found = []
    for container in pod.get("initContainers", []) + pod.get("containers", []):
        repository, tag = chart_values.split_image(container["image"])
        if repository in ("todo-backend", "todo-frontend"):
            found.append((repository, tag))
    return sorted(found)


def drift(k8s_dir: Path = K8S_DIR, chart_dir: Path = chart_values.CHART_DIR) -> list[str]:
    """What differs between k8s/ and the chart: one line per file, [] when none."""
    wanted = generate(chart_dir)
    present = {p.name for p in k8s_dir.glob("*.yaml")} if k8s_dir.is_dir() else set()
    problems = [f"k8s/{name}: missing" for name in wanted if name not in present]
    problems += [
        f"k8s/{name}: differs from the chart"
        for name, text in wanted.items()
        if name in present and (k8s_dir / name).read_text() != text
    ]
    problems += [f"k8s/{name}: not rendered by the chart" for name in sorted(present - set(wanted))]
    return problems


def write(k8s_dir: Path = K8S_DIR, chart_dir: Path = chart_values.CHART_DIR) -> list[str]:
    """Regenerate k8s/ (stale YAML files removed); returns the files changed."""
    wanted = generate(chart_dir)
    k8s_dir.mkdir(parents=True, exist_ok=True)
    changed = []
    for stale in sorted(p for p in k8s_dir.glob("*.yaml") if p.name not in wanted):
        stale.unlink()
        changed.append(f"removed {stale.name}")
    for name, text in wanted.items():
        path = k8s_dir / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
            changed.append(f"wrote {name}")
    return changed


def load_dir(k8s_dir: Path = K8S_DIR) -> list[dict[str, Any]]:
    """The objects in a kustomize directory's resources, as written there."""
    kustomization = yaml.safe_load((k8s_dir / KUSTOMIZATION).read_text())
    return [
        obj
        for resource in kustomization["resources"]
        for obj in yaml.load_all((k8s_dir / resource).read_text(), Loader=YAML_LOADER)
        if isinstance(obj, dict)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m todo_deploy.chart.manifests",
        description="Regenerate k8s/ from the Helm chart (default values).",
    )
    parser.add_argument("--check", action="store_true",
                        help="only report drift between k8s/ and the chart; exit 1 if any")
    parser.add_argument("--dir", type=Path, default=K8S_DIR, help="the directory (default k8s/)")
    args = parser.parse_args(argv)
    if args.check:
        problems = drift(args.dir)
        for line in problems:
            print(line)
        if problems:
            print("k8s/ is stale: run `inv manifests` and commit the result")
            return 1
        print("k8s/ matches the chart")
        return 0
    changed = write(args.dir)
    print("\n".join(changed) if changed else "k8s/ already matches the chart")
    return 0


if __name__ == "__main__":
    sys.exit(main())
