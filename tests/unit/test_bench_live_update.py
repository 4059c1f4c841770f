"""bench/live_update.py: the dev-mode scenario's edit, its "new code serving" check, its
percentiles, ratios and targets, and the hand-typed sequence's command lines."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.live_update import (
    EDITED,
    MARK,
    CodeProbe,
    WatchProcess,
    hand_commands,
    one_line_edit,
    ratios,
    targets,
)
from bench.pipeline import quantiles


def test_an_edit_appends_the_marker_line_once_then_changes_only_that_line() -> None:
    first = one_line_edit("a = 1\nb = 2", "t1")
    assert first == f"a = 1\nb = 2\n{MARK}t1\n"
    second = one_line_edit(first, "t2")
    changed = [(x, y) for x, y in zip(first.splitlines(), second.splitlines(), strict=True) if x != y]
    assert changed == [(f"{MARK}t1", f"{MARK}t2")]


def replies(codes: list[str | None], kind: str) -> tuple[httpx.MockTransport, list[int]]:
    """A frontend whose /api/meta answers these codes in turn (None: a 503)."""
    served = iter(codes)
    asked = [0]

    def handle(request: httpx.Request) -> httpx.Response:
        asked[0] += 1
        code = next(served)
        if code is None:
            return httpx.Response(503)
        if kind == "frontend":
            return httpx.Response(200, json={"code": "backend-code"}, headers={"X-Code-Version": code})
        return httpx.Response(200, json={"version": "1", "code": code})

    return httpx.MockTransport(handle), asked


@pytest.mark.parametrize("kind", ["backend", "frontend"])
def test_new_code_counts_only_after_three_answers_in_a_row(kind: str) -> None:
    transport, asked = replies(["old", "g1", "old", "g1", None, "g1", "g1", "g1", "never asked"], kind)
    probe = CodeProbe("http://frontend/api/meta", EDITED[kind], transport)
    assert probe.wait_new({"old"}, pause=0) == "g1"
    assert asked[0] == 8  # the old pod and the 503 each broke the streak


def test_a_streak_must_be_one_code_and_the_expected_one_when_known() -> None:
    transport, asked = replies(["g1", "g2", "g1", "hand-1", "hand-1", "hand-1"], "backend")
    probe = CodeProbe("http://frontend/api/meta", EDITED["backend"], transport)
    assert probe.wait_new({"old"}, expected="hand-1", pause=0) == "hand-1"
    assert asked[0] == 6
    transport, asked = replies(["g1", "g2", "g1", "g2", "g2", "g2"], "backend")
    probe = CodeProbe("http://frontend/api/meta", EDITED["backend"], transport)
    assert probe.wait_new({"old"}, pause=0) == "g2"
    assert asked[0] == 6


def test_no_new_code_within_the_timeout_is_an_error() -> None:
    def ticks() -> Iterator[float]:
        yield from range(100)

    clock = ticks()
    transport, _ = replies(["old"] * 100, "frontend")
    probe = CodeProbe("http://frontend/api/meta", EDITED["frontend"], transport)
    with pytest.raises(RuntimeError, match="no new frontend code within 5 s"):
        probe.wait_new({"old"}, timeout=5, pause=0, clock=lambda: float(next(clock)))


def test_percentiles_ratios_and_the_issue_targets() -> None:
    q = quantiles([float(v) for v in range(1, 11)])
    assert (q["p50"], q["p90"]) == (5.5, 9.1)
    summaries = {"ours_backend": {"p50": 1.0, "p90": 2.5}, "hand_backend": {"p50": 2.0, "p90": 5.0},
                 "ours_frontend": {"p50": 1.9, "p90": 3.1}, "hand_frontend": {"p50": 1.9, "p90": 3.1}}
    assert ratios(summaries) == {"backend": {"p50": 0.5, "p90": 0.5}, "frontend": {"p50": 1.0, "p90": 1.0}}
    verdicts = {t["target"].split(": ")[0].split(", ")[1] + " " + t["target"][-3:]: t["met"]
                for t in targets(summaries)}
    assert verdicts == {"one-line backend edit p50": True, "one-line backend edit p90": True,
                        "one-line frontend edit p50": True, "one-line frontend edit p90": False}


def test_the_hand_typed_sequence_copies_then_reloads_each_pod() -> None:
    argv = hand_commands("ns", EDITED["backend"], ["p1", "p2"], "backend", Path("/tmp/tasks.py"), "hand-ab")
    assert argv[0] == ["kubectl", "cp", "-c", "backend", "/tmp/tasks.py", "ns/p1:/opt/app/todo_api/routes/tasks.py"]
    assert argv[1][:8] == ["kubectl", "-n", "ns", "exec", "p1", "-c", "backend", "--"]
    assert argv[1][-1] == ("mkdir -p /opt/app/.dev && printf %s hand-ab > /opt/app/.dev/generation && kill -HUP 1")
    assert [a[4] if a[1] == "-n" else a[-1].split(":")[0] for a in argv] == ["ns/p1", "p1", "ns/p2", "p2"]


def test_the_watch_process_is_ready_when_it_watches_and_stops_on_ctrl_c() -> None:
    script = ("import signal, sys, time\n"
              "print('watch --dev: deploying in dev mode', flush=True)\n"
              "print('watching app (Ctrl-C to stop)', flush=True)\n"
              "print('watch: changed x.py -> backend', flush=True)\n"
              "print('watch: new code serving 0.9 s after the save', flush=True)\n"
              "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n"
              "    print('watch: stopped (1 change(s) handled)', flush=True)\n")
    watch = WatchProcess([sys.executable, "-c", script], dict(os.environ))
    assert watch.since(2, settle_s=5) == ["watch: changed x.py -> backend",
                                          "watch: new code serving 0.9 s after the save"]
    assert watch.stop() == (0, "watch: stopped (1 change(s) handled)")
