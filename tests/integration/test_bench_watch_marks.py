"""bench.watch_serving's account of a new backend pod's start (issue 22 item 4: where the
seconds between the save and the new code serving go)."""

from __future__ import annotations

import json

from bench.watch_serving import MARKS, epoch, first_after, median_marks, pod_marks

SAVED = epoch("2026-12-07T06:31:46.500Z")


def _log(ts: str, **fields: object) -> str:
    return json.dumps({"ts": ts, "level": "info", **fields})


def _pod(started_at: str) -> dict:
    return {"metadata": {"name": "b", "creationTimestamp": "2026-12-07T06:31:47Z"},
            "status": {"containerStatuses": [{"state": {"running": {"startedAt": started_at}}}]}}


LOGS = [
    "not json",
    _log("2026-12-07T06:31:50.680+00:00", msg="serving"),
    _log("2026-12-07T06:31:50.800+00:00", msg="started"),
    _log("2026-12-07T06:31:50.900+00:00", msg="request", path="/started", status=503),
    _log("2026-12-07T06:31:51.097+00:00", msg="request", path="/started", status=200),
    _log("2026-12-07T06:31:51.487+00:00", msg="request", path="/ready", status=200),
    _log("2026-12-07T06:31:52.487+00:00", msg="request", path="/ready", status=200),
]


def test_epoch_reads_the_apis_the_engines_and_the_apps_times() -> None:
    assert epoch("2026-12-07T06:31:47Z") == 1796625107.0
    assert epoch("2026-12-07T06:31:48.218576923Z") == 1796625108.218576  # nanoseconds cut
    assert epoch("2026-12-07T06:31:50.680+00:00") == 1796625110.68
    assert epoch(None) is None


def test_a_pods_marks_come_from_its_logs_and_the_engines_start_first() -> None:
    marks = pod_marks(_pod("2026-12-07T06:31:48Z"), LOGS, "2026-12-07T06:31:48.218576923Z")
    assert list(marks) == list(MARKS)
    after = {k: round(v - SAVED, 3) for k, v in marks.items()}  # type: ignore[operator]
    assert after == {"pod created": 0.5, "container started": 1.719, "app imported": 4.18,
                     "app started": 4.3, "/started 200": 4.597, "/ready 200": 4.987}
    # Without the engine's time, the kubelet's (whole seconds).
    assert pod_marks(_pod("2026-12-07T06:31:48Z"), LOGS, None)["container started"] == epoch("2026-12-07T06:31:48Z")
    # A pod that never answered /ready has no such mark.
    assert pod_marks(_pod("2026-12-07T06:31:48Z"), LOGS[:3], None)["/ready 200"] is None


def test_the_pod_ready_first_counts_and_none_ready_is_unknown() -> None:
    early = dict.fromkeys(MARKS, SAVED + 3.0)  # type: ignore[operator]
    early["/ready 200"] = SAVED + 3.5  # type: ignore[operator]
    late = dict.fromkeys(MARKS, SAVED + 1.0)  # type: ignore[operator]
    late["/ready 200"] = SAVED + 4.0  # type: ignore[operator]
    not_ready = {**late, "/ready 200": None}
    after = first_after(SAVED, [late, early, not_ready])  # type: ignore[arg-type]
    assert after == {**dict.fromkeys(MARKS, 3.0), "/ready 200": 3.5}
    assert first_after(SAVED, [not_ready]) == dict.fromkeys(MARKS)  # type: ignore[arg-type]
    assert median_marks([after, dict.fromkeys(MARKS, 2.0), dict.fromkeys(MARKS, None)]) == {
        **dict.fromkeys(MARKS, 2.5), "/ready 200": 2.75}
