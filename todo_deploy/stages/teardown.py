"""`inv down`: remove the Helm release or the raw objects (by label), optionally
the namespace; data (PVCs) only when the user says so."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from todo_deploy.access import app_url
from todo_deploy.console import say
from todo_deploy.kube import Kube, ObjectRef
from todo_deploy.release.objects import app_selector, helm_release_present

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings


@dataclass
class DownResult:
    helm_uninstalled: bool = False
    deleted: list[str] = field(default_factory=list)
    kept_pvcs: list[str] = field(default_factory=list)
    deleted_pvcs: list[str] = field(default_factory=list)
    namespace_deleted: bool = False
    leftovers: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def clean(self) -> bool:
        return not self.leftovers


def _confirm(question: str, ask: Callable[[str], str] | None) -> bool | None:
    """True/False from the user, or None when nobody can answer (no terminal)."""
    if ask is None:
        if not sys.stdin.isatty():
            return None
        ask = input
    return ask(f"{question} [y/N] ").strip().lower() in ("y", "yes")


def run(
    loaded: LoadedSettings,
    *,
    all_: bool = False,
    yes: bool = False,
    kube: Kube | None = None,
    ask: Callable[[str], str] | None = None,
    log: Callable[[str], None] = say,
) -> DownResult:

    settings = loaded.settings
    namespace, release = settings.namespace, settings.release_name
    kube = kube or Kube(settings.context_name)
    out = DownResult()
    selector = app_selector(settings)
    if kube.get("v1", "Namespace", namespace) is None:
        out.message = f"namespace {namespace} does not exist: nothing to remove"
        log(out.message)
        _forget_gates(loaded)
        return out

    if helm_release_present(kube, settings):
        engine = helm.make_engine(settings, log)
        log(f"uninstalling Helm release {release} ({engine.name})")
        engine.uninstall(release, namespace)
        out.helm_uninstalled = True

    refs = []
    for obj in kube.list_owned(namespace, selector):
        ref = ObjectRef.of(obj)
        if ref.kind in ("PersistentVolumeClaim", "Pod"):
            continue
        if kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace, "Foreground"):
            refs.append(ref)
            out.deleted.append(str(ref))
    if refs:
        log(f"deleted {len(refs)} objects of {release}: {', '.join(out.deleted)}")
    kube.wait_deleted(refs, timeout=180)
    _wait_pods_gone(kube, namespace, selector, timeout=120)

    pvcs = [ObjectRef.of(p) for p in kube.list("v1", "PersistentVolumeClaim", namespace, selector)]
    delete_data = False
    if pvcs:
        names = ", ".join(p.name for p in pvcs)
        if yes:
            delete_data = True
        else:
            answer = _confirm(f"Delete the app's data ({names})? This cannot be undone.", ask)
            if answer is None:
                log(f"kept the data ({names}): no terminal to confirm; "
                    "re-run `inv down --yes` to delete it too")
            delete_data = bool(answer)
        if delete_data:
            for ref in pvcs:
                kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
                out.deleted_pvcs.append(ref.name)
            kube.wait_deleted(pvcs, timeout=120)
            log(f"deleted the data: {names}")
        else:
            out.kept_pvcs = [p.name for p in pvcs]

    if all_:
        if out.kept_pvcs:
            log(f"namespace {namespace} kept: it still holds the data "
                f"({', '.join(out.kept_pvcs)}); `inv down --all --yes` removes both")
        else:
            kube.delete("v1", "Namespace", namespace)
            kube.wait_deleted([ObjectRef("v1", "Namespace", namespace)], timeout=300)
            out.namespace_deleted = True
            log(f"deleted namespace {namespace}")

    if not out.namespace_deleted:
        kept = set(out.kept_pvcs)
        for obj in kube.list_everything(namespace, selector):
            ref = ObjectRef.of(obj)
            if ref.kind == "PersistentVolumeClaim" and ref.name in kept:
                continue
            if ref.kind == "Event":
                continue
            out.leftovers.append(str(ref))
    out.message = (
        "nothing of the app is left" if out.clean else f"left behind: {', '.join(out.leftovers)}"
    ) + (f" (kept data: {', '.join(out.kept_pvcs)})" if out.kept_pvcs else "")
    log(out.message)
    _forget_gates(loaded)
    return out


def _wait_pods_gone(kube: Kube, namespace: str, selector: str, timeout: float) -> None:
    """Pods drain (DRAIN_SECONDS) before they go; wait so the final listing is true."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and kube.list("v1", "Pod", namespace, selector):
        time.sleep(1)


def _forget_gates(loaded: LoadedSettings) -> None:
    """The gates from deploy on, the last full verify and the app's URL describe a
    deployment that no longer exists; a port-forward to it is stopped."""
    app_url.stop(loaded.state_dir)
    for name in ("deploy", "helm", "aiops", "verify", "docs", "up"):
        (loaded.state_dir / f"{name}.json").unlink(missing_ok=True)
