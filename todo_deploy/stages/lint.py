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
from functools import partial
from pathlib import Path
from typing import Any

from todo_deploy import helm
from todo_deploy.chart import manifests
from todo_deploy.chart import values as chart_values
from todo_deploy.components import BUILT_NAMES
from todo_deploy.config import LoadedSettings
from todo_deploy.console import say
from todo_deploy.gate_details import LintDetails
from todo_deploy.gates import Check, GateResult
from todo_deploy.images import source_root
from todo_deploy.images.dockerfile_lint import lint as hadolint
from todo_deploy.kube.pod_security import pod_spec, pss_violations
from todo_deploy.tools.commands import Runner

STAGE = "lint"


BASELINE_VERSION = "1.30"
CAPABILITIES = ("policy/v1", "autoscaling/v2")
PRODUCTION_VALUES = "ci/production-values.yaml"
DOCKERFILES = BUILT_NAMES

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

    settings = loaded.settings
    images = chart_values.default_images()
    engine = helm.embedded()
    production = yaml.safe_load((chart_dir / PRODUCTION_VALUES).read_text())
    value_sets = {
        "chart (default values)": {},
        "chart (production values)": production,
        "chart (settings values)": chart_values.helm_values(settings, images),
    }
    for version in versions:
        yield "raw manifests", version, lambda: manifests.load_dir(k8s_dir)
        for name, values in value_sets.items():
            yield name, version, partial(
                engine.template, chart_dir, settings.release_name, settings.namespace, values,
                kube_version=f"v{version}.0", api_versions=CAPABILITIES,
            )


def _dockerfile_checks(runner: Runner, docker_dir: Path) -> list[Check]:
    """hadolint on each Dockerfile (the helper is shared with the build stage)."""
    checks = []
    for name in DOCKERFILES:
        dockerfile = docker_dir / f"{name}.Dockerfile"
        if not dockerfile.is_file():
            checks.append(Check.of(f"hadolint {name}", False, f"{dockerfile} does not exist",
                                   f"write docker/{name}.Dockerfile"))
            continue
        check = hadolint(runner, dockerfile, name)
        checks.append(Check(f"hadolint {name}", check.verdict, check.evidence, check.fix))
    return checks


def _chart_lint_checks(root: Path, chart_dir: Path) -> list[Check]:
    """`helm lint --strict` with the default and the production values."""
    import yaml

    engine = helm.embedded()
    production = yaml.safe_load((chart_dir / PRODUCTION_VALUES).read_text())
    shown = chart_dir.relative_to(root) if chart_dir.is_relative_to(root) else chart_dir
    checks = []
    for label, values in (("default values", {}), ("production values", production)):
        ok, output = engine.lint(chart_dir, values, strict=True)
        checks.append(Check.of(f"helm lint --strict ({label})", ok, output.replace("\n", "; "),
                               f"fix the chart in {shown}"))
    return checks


def _schema_and_security_checks(
    loaded: LoadedSettings, k8s_dir: Path, chart_dir: Path, versions: list[str]
) -> list[Check]:
    """Each target rendered for each Kubernetes version: strict schemas, and Pod Security
    "restricted" once per target."""
    import yaml
    from helm_python import HelmError

    checks = []
    pss_done: set[str] = set()
    for target, version, objects_of in _targets(loaded, k8s_dir, chart_dir, versions):
        try:
            objects = objects_of()
        except (HelmError, yaml.YAMLError, OSError, ValueError, KeyError) as exc:  # does not render
            checks.append(Check.of(f"render {target} (k8s {version})", False,
                                   f"{type(exc).__name__}: {exc}",
                                   "fix the manifests/chart so they render"))
            continue
        problems = schema_problems(objects, version)
        kinds = sorted({o.get("kind", "?") for o in objects})
        checks.append(Check.of(
            f"schema {target} (k8s {version}, strict)", not problems,
            _summary(problems) if problems else f"{len(objects)} objects valid ({', '.join(kinds)})",
            "fix the named field (unknown fields are errors in strict mode)",
        ))
        if target not in pss_done:
            pss_done.add(target)
            violations = [v for obj in objects for v in pss_violations(obj)]
            workloads = sum(1 for o in objects if pod_spec(o) is not None)
            checks.append(Check.of(
                f"pod security restricted: {target}", not violations,
                _summary(violations) if violations else f"{workloads} workloads meet 'restricted'",
                "set the named securityContext field as the message says",
            ))
    return checks


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
    root = source_root(loaded)
    k8s_dir = k8s_dir or root / "k8s"
    chart_dir = chart_dir or root / "helm" / "todo-chatbot"
    docker_dir = docker_dir or root / "docker"
    runner = runner or Runner(log=log, secrets=loaded.settings.secret_values())
    versions = sorted({BASELINE_VERSION, latest_version()},
                      key=lambda v: tuple(map(int, v.split("."))))
    result = GateResult(STAGE)
    result.checks += _dockerfile_checks(runner, docker_dir)
    result.checks += _chart_lint_checks(root, chart_dir)
    result.checks += _schema_and_security_checks(loaded, k8s_dir, chart_dir, versions)
    details = LintDetails(versions, sorted(chart_values.secret_data(loaded.settings)))
    result.details = details.as_dict()
    return result
