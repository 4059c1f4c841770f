"""`inv logs`: pods' lines merged by time, restarts and warning events interleaved."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from todo_deploy.access import logs
from todo_deploy.config import Settings

T = "2026-11-29T12:00:0{}.{}Z"


def pod(name: str, component: str, restarts: int = 0, job: bool = False) -> dict[str, Any]:
    labels = {"app.kubernetes.io/instance": "todo-chatbot", "app.kubernetes.io/component": component}
    if job:
        labels["job-name"] = "todo-chatbot-migrate-abc"
    statuses = [{"name": "app", "restartCount": restarts}]
    if restarts:
        statuses[0]["lastState"] = {"terminated": {"reason": "OOMKilled", "exitCode": 137,
                                                   "finishedAt": "2026-11-29T12:00:03Z"}}
    return {"metadata": {"name": name, "labels": labels},
            "spec": {"containers": [{"name": "app"}]}, "status": {"containerStatuses": statuses}}


class FakeKube:
    def __init__(self, pods: list[dict[str, Any]], texts: dict[str, str],
                 events: list[dict[str, Any]]) -> None:
        self.pods, self.texts, self.events, self.queries = pods, texts, events, []

    def list(self, api_version: str, kind: str, namespace: str = "", selector: str = "") -> list:
        if kind == "Pod":
            assert selector == "app.kubernetes.io/instance=todo-chatbot"
            return self.pods
        return self.events

    def request(self, method: str, path: str, *, query=None, raw=False, **_: Any) -> str:
        self.queries.append(dict(query))
        return self.texts[path.split("/pods/")[1].split("/")[0]]


def test_parse_time_handles_nanoseconds_zones_and_garbage() -> None:
    assert logs.parse_time("2026-11-29T12:00:01.123456789Z") == datetime(
        2026, 11, 29, 12, 0, 1, 123456, tzinfo=UTC)
    assert logs.parse_time("2026-11-29T12:00:01+00:00").tzinfo is not None
    assert logs.parse_time("not a time") == logs.EPOCH


def test_snapshot_merges_pods_by_time_with_restarts_and_warnings() -> None:
    kube = FakeKube(
        [pod("be-1", "backend", restarts=2), pod("fe-1", "frontend"),
         pod("mig-1", "backend", job=True)],
        {"be-1": f"{T.format(1, 1)} backend one\n{T.format(4, 0)} backend two\n",
         "fe-1": f"{T.format(2, 0)} frontend one\n",
         "mig-1": f"{T.format(0, 5)} migrating\n"},
        [{"type": "Warning", "reason": "BackOff", "message": "Back-off restarting",
          "count": 3, "lastTimestamp": "2026-11-29T12:00:03Z",
          "involvedObject": {"kind": "Pod", "name": "be-1"}},
         {"type": "Normal", "reason": "Pulled", "message": "ok",
          "lastTimestamp": "2026-11-29T12:00:03Z", "involvedObject": {"kind": "Pod", "name": "x"}}],
    )
    lines = logs.snapshot(kube, Settings(), tail=7)
    assert [(line.component, line.text) for line in lines] == [
        ("migrate", "migrating"),
        ("backend", "backend one"),
        ("frontend", "frontend one"),
        ("event", "BackOff: Back-off restarting (x3)"),
        ("restart", "container app restarted (2x): OOMKilled, exit code 137"),
        ("backend", "backend two"),
    ]
    assert all(q["tailLines"] == "70" and q["timestamps"] == "true" for q in kube.queries)  # 10x: probes left out
    only = logs.snapshot(kube, Settings(), only="frontend")
    assert [line.source for line in only] == ["fe-1"]  # and no event of another pod


def test_follow_yields_only_new_lines_once() -> None:
    kube = FakeKube([pod("be-1", "backend")], {"be-1": f"{T.format(1, 0)} a\n"}, [])
    polls = iter([False, False, True])
    stream = logs.follow(kube, Settings(), interval=0, stop=lambda: next(polls))
    assert next(stream).text == "a"
    kube.texts["be-1"] = f"{T.format(1, 0)} a\n{T.format(2, 0)} b\n"  # sinceTime repeats a second
    rest = [line.text for line in stream]
    assert rest == ["b"]
    since = [q.get("sinceTime") for q in kube.queries]
    assert since == [None, "2026-11-29T12:00:01Z", "2026-11-29T12:00:02Z"]


def test_json_records_are_shown_readably() -> None:
    assert logs.readable('{"level": "warning", "msg": "slow", "logger": "todo_api.db"}') == (
        "warning", "slow")
