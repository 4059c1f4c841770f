"""bench.stack's namespace deletion: waiting (the benchmarks' default: the volume is
Available again when it returns) or not (the drills' fixture: the namespace goes in the
background and the next module that needs a volume recycles it)."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest

from bench import stack


@pytest.fixture
def kubectl_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    calls: list[tuple[str, ...]] = []

    def fake(*args: str, **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(args)
        gone = args[:2] == ("get", "namespace")  # NotFound: already gone
        return subprocess.CompletedProcess(["kubectl", *args], 1 if gone else 0, "", "")

    monkeypatch.setattr(stack, "kubectl", fake)
    monkeypatch.setattr(stack, "release_volumes", lambda namespace, log: ["pv-1"])
    return calls


def test_without_wait_one_delete_that_does_not_wait(kubectl_calls: list[tuple[str, ...]]) -> None:
    stack.delete_namespace("drill-1", wait=False)
    assert kubectl_calls == [("delete", "namespace", "drill-1", "--ignore-not-found", "--wait=false")]


def test_by_default_it_waits_for_the_namespace(kubectl_calls: list[tuple[str, ...]]) -> None:
    stack.delete_namespace("bench-1")
    assert kubectl_calls[0][:5] == ("delete", "namespace", "bench-1", "--ignore-not-found", "--wait=true")
    assert ("get", "namespace", "bench-1") in kubectl_calls


def test_stack_down_passes_wait_on(kubectl_calls: list[tuple[str, ...]], tmp_path: Any) -> None:
    s = stack.Stack.__new__(stack.Stack)
    s.namespace, s.root, s.log = "drill-2", tmp_path / "root", lambda _: None
    s.down(wait=False)
    assert [c[:3] for c in kubectl_calls] == [("delete", "namespace", "drill-2")]
    assert "--wait=false" in kubectl_calls[0]
