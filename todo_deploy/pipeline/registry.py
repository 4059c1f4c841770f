"""The seven stages in the order `inv up` runs them, and where each one's code lives.

`gates.STAGES` (floor 0) keeps what the gates need per stage (the command that runs it,
the stages that must pass first, its number and title); this registry is the one place
that says "in this order, run this module". `steps()` is what `inv up` runs.

THE one place where stage modules are imported inside functions: `inv` imports every
task module to parse its command line, and `inv --list` or a no-change `inv build` must
not pay for the stages it does not run (the verify stage's HTTP client alone is ~50 ms
of imports). Each entry's loader imports its module on first use; everything else
reaches a stage through `stage_module()`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from todo_deploy.gates import STAGES


def _build() -> ModuleType:
    from todo_deploy.stages import build

    return build


def _cluster() -> ModuleType:
    from todo_deploy.stages import cluster

    return cluster


def _raw_deploy() -> ModuleType:
    from todo_deploy.stages import raw_deploy

    return raw_deploy


def _helm_deploy() -> ModuleType:
    from todo_deploy.stages import helm_deploy

    return helm_deploy


def _aiops() -> ModuleType:
    from todo_deploy.stages.aiops import stage

    return stage


def _verify() -> ModuleType:
    from todo_deploy.stages.verify import stage

    return stage


def _docs() -> ModuleType:
    from todo_deploy.stages.docs import stage

    return stage


def _lint() -> ModuleType:
    from todo_deploy.stages import lint

    return lint


def _teardown() -> ModuleType:
    from todo_deploy.stages import teardown

    return teardown


def _verify_checks() -> ModuleType:
    from todo_deploy.stages.verify import checks

    return checks


def _aiops_playbooks() -> ModuleType:
    from todo_deploy.stages.aiops import playbooks

    return playbooks


def _aiops_adapters() -> ModuleType:
    from todo_deploy.stages.aiops import adapters

    return adapters


# stage -> the loader of the module whose `run(loaded, ...)` returns its gate, in order.
ORDER: tuple[tuple[str, Callable[[], ModuleType]], ...] = (
    ("build", _build),
    ("cluster", _cluster),
    ("deploy", _raw_deploy),
    ("helm", _helm_deploy),
    ("aiops", _aiops),
    ("verify", _verify),
    ("docs", _docs),
)
# The stages' modules the front doors use beside the seven: `inv lint`'s and `inv down`'s
# runs, verify's check names and aiops' playbooks and agents.
PARTS: dict[str, Callable[[], ModuleType]] = {
    "lint": _lint,
    "teardown": _teardown,
    "verify.checks": _verify_checks,
    "aiops.playbooks": _aiops_playbooks,
    "aiops.adapters": _aiops_adapters,
}
_LOADERS = {**dict(ORDER), **PARTS}


@dataclass(frozen=True)
class Step:
    stage: str  # the gates.STAGES key
    number: int  # the README's stage number
    title: str
    command: str


def stage_module(stage: str) -> ModuleType:
    """The module that runs `stage`, or one of its PARTS (imported now, on first use)."""
    return _LOADERS[stage]()


def steps(helm: bool) -> list[Step]:
    """What `inv up` runs, in order: every stage but the deploy mode not chosen."""
    skipped = "deploy" if helm else "helm"
    return [
        Step(stage, STAGES[stage].number, STAGES[stage].title, STAGES[stage].command)
        for stage, _ in ORDER
        if stage != skipped
    ]
