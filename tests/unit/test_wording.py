"""Issue 22 item 9: messages that said something untrue or said it twice."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from todo_deploy.access import REQUESTED
from todo_deploy.cli.open import describe
from todo_deploy.timing import Timeline


def test_a_phase_that_raised_is_not_printed_as_done() -> None:
    """Before: "base image python:3.11-slim present" was printed right after its pull failed."""
    printed: list[str] = []
    timeline = Timeline(printed.append)
    with pytest.raises(RuntimeError), timeline.phase("base image python:3.11-slim present"):
        raise RuntimeError("pull failed")
    assert printed[-1].endswith("] base image python:3.11-slim present: failed")
    with timeline.phase("apply app"):
        pass
    assert printed[-1].endswith("] apply app")


def test_inv_open_forward_does_not_name_another_tasks_flag() -> None:
    """Before: `inv open --forward` answered "... no direct way: port-forward requested
    (--access port-forward)", a flag of `inv verify`, and no direct way was even tried."""
    app = SimpleNamespace(kind="port-forward", pid=42, detail=REQUESTED)
    text = describe(app)
    assert text == "port-forward asked for, pid 42, kept until `inv open --stop` or `inv down`"
    fallback = describe(SimpleNamespace(kind="port-forward", pid=42, detail="Service x not found"))
    assert fallback.endswith("; no direct way: Service x not found")
