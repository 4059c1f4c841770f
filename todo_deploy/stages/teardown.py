"""`inv down`: remove the Helm release or the raw objects (by label), optionally
the namespace; data (PVCs) only when the user says so."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from todo_deploy import helm
from todo_deploy.access import app_url
from todo_deploy.console import say
from todo_deploy.kube import Kube, ObjectRef
from todo_deploy.release.objects import app_selector, helm_release_present

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings, Settings


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


def _delete_objects(kube: Kube, settings: Settings, out: DownResult,
                    log: Callable[[str], None]) -> None:
    """The Helm release (when one is installed), then every object of the app but its data
    and pods, waited for until gone, pods included."""
    namespace, release = settings.namespace, settings.release_name
    selector = app_selector(settings)
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


def _delete_data(kube: Kube, settings: Settings, out: DownResult, yes: bool,
                 ask: Callable[[str], str] | None, log: Callable[[str], None]) -> None:
    """The app's volumes, once confirmed (`--yes` or a terminal's answer); else kept."""
    selector = app_selector(settings)
    pvcs = [ObjectRef.of(p) for p in kube.list("v1", "PersistentVolumeClaim",
                                               settings.namespace, selector)]
    if not pvcs:
        return
    names = ", ".join(p.name for p in pvcs)
    delete_data = True
    if not yes:
        answer = _confirm(f"Delete the app's data ({names})? This cannot be undone.", ask)
        if answer is None:
            log(f"kept the data ({names}): no terminal to confirm; "
                "re-run `inv down --yes` to delete it too")
        delete_data = bool(answer)
    if not delete_data:
        out.kept_pvcs = [p.name for p in pvcs]
        return
    for ref in pvcs:
        kube.delete(ref.api_version, ref.kind, ref.name, ref.namespace)
        out.deleted_pvcs.append(ref.name)
    kube.wait_deleted(pvcs, timeout=120)
    log(f"deleted the data: {names}")


def _delete_namespace(kube: Kube, namespace: str, out: DownResult,
                      log: Callable[[str], None]) -> None:
    if out.kept_pvcs:
        log(f"namespace {namespace} kept: it still holds the data "
            f"({', '.join(out.kept_pvcs)}); `inv down --all --yes` removes both")
        return
    kube.delete("v1", "Namespace", namespace)
    kube.wait_deleted([ObjectRef("v1", "Namespace", namespace)], timeout=300)
    out.namespace_deleted = True
    log(f"deleted namespace {namespace}")


def _leftovers(kube: Kube, settings: Settings, out: DownResult) -> list[str]:
    """What of the app is still there, but the data kept on purpose and events."""
    kept = set(out.kept_pvcs)
    found = []
    for obj in kube.list_everything(settings.namespace, app_selector(settings)):
        ref = ObjectRef.of(obj)
        if (ref.kind == "PersistentVolumeClaim" and ref.name in kept) or ref.kind == "Event":
            continue
        found.append(str(ref))
    return found


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
    namespace = settings.namespace
    kube = kube or Kube(settings.context_name)
    out = DownResult()
    if kube.get("v1", "Namespace", namespace) is None:
        out.message = f"namespace {namespace} does not exist: nothing to remove"
        log(out.message)
        _forget_gates(loaded)
        return out
    _delete_objects(kube, settings, out, log)
    _delete_data(kube, settings, out, yes, ask, log)
    if all_:
        _delete_namespace(kube, namespace, out, log)
    if not out.namespace_deleted:
        out.leftovers = _leftovers(kube, settings, out)
    out.message = (
        "nothing of the app is left" if out.clean else f"left behind: {', '.join(out.leftovers)}"
    ) + (f" (kept data: {', '.join(out.kept_pvcs)})" if out.kept_pvcs else "")
    log(out.message)
    _forget_gates(loaded)
    return out


def _wait_pods_gone(kube: Kube, namespace: str, selector: str, timeout: float) -> None:
    """Pods drain (DRAIN_SECONDS) before they go; wait so the final listing is true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and kube.list("v1", "Pod", namespace, selector):
        time.sleep(1)


def _forget_gates(loaded: LoadedSettings) -> None:
    """The gates from deploy on, the last full verify and the app's URL describe a
    deployment that no longer exists; a port-forward to it is stopped."""
    app_url.stop(loaded.state_dir)
    for name in ("deploy", "helm", "aiops", "verify", "docs", "up"):
        (loaded.state_dir / f"{name}.json").unlink(missing_ok=True)
