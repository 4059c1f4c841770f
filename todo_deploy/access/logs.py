"""The app's logs in one stream: every pod of the release (and the migration Job),
container restarts and Warning events, merged by time and bounded.

Lines come from the API's log endpoint with timestamps, so pods of different
components interleave correctly; `--follow` polls each pod's log since the
last line seen (new pods join, deleted ones leave) instead of holding one
stream per pod.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from todo_deploy.components import LOG_SOURCES
from todo_deploy.kube import KubeError

if TYPE_CHECKING:
    from todo_deploy.config import Settings
    from todo_deploy.kube import Kube

COMPONENTS = LOG_SOURCES  # backend, frontend, database (pod labels) and migrate
COLOURS = {"backend": "cyan", "frontend": "magenta", "database": "yellow", "migrate": "green",
           "event": "bold red", "restart": "bold red"}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The kubelet's probes and the smoke tests: a few a second, all alike; left out unless asked.
PROBE_PATHS = frozenset({"/ready", "/health", "/healthz", "/readyz", "/started"})
# Without the probe lines, each pod's log is read this many times deeper, so that `tail`
# lines of the app's own remain (probes were 99 of every 100 lines of an idle app).
PROBE_HEADROOM = 10
_PLAIN_PROBE = re.compile(r'"GET (/[a-z]+)(?:\?[^ ]*)? HTTP/[0-9.]+" 2\d\d\b')


@dataclass(frozen=True, order=True)
class LogLine:
    at: datetime
    component: str  # backend | frontend | database | migrate | event | restart
    source: str  # pod name, or the object an event is about
    text: str


def readable(line: str) -> tuple[str, str]:
    """(level, text) of one log line: a JSON record becomes 'message METHOD /path -> 200 (3.1 ms)'."""
    line = line.rstrip("\n")
    try:
        record = json.loads(line)
    except ValueError:
        return "", line
    if not isinstance(record, dict) or not ({"msg", "method"} & set(record)):
        return "", line
    level = str(record.get("level", "")).lower()
    text = str(record.get("msg", ""))
    if "method" in record and "path" in record:
        text = f"{record['method']} {record['path']} -> {record.get('status', '?')}"
        if "duration_ms" in record:
            text += f" ({record['duration_ms']} ms)"
    elif record.get("logger") and not str(record["logger"]).startswith(("todo_", "uvicorn")):
        text = f"{record['logger']}: {text}"
    if record.get("error"):
        text += f" [{record['error']}]"
    return level, text


def is_probe(line: str) -> bool:
    """A successful GET of a health endpoint (/ready, /health, /healthz, /readyz, /started),
    as the apps log it (a JSON record) or as a plain access-log line."""
    try:
        record = json.loads(line)
    except ValueError:
        plain = _PLAIN_PROBE.search(line)
        return plain is not None and plain.group(1) in PROBE_PATHS
    if not isinstance(record, dict) or record.get("method") != "GET":
        return False
    path = str(record.get("path", "")).split("?", 1)[0]
    return path in PROBE_PATHS and str(record.get("status", "")).startswith("2")


def without_probes(lines: list[LogLine], keep: int | None) -> list[LogLine]:
    """The lines that are not probe lines, the last `keep` of them (all when None)."""
    kept = [line for line in lines if not is_probe(line.text)]
    return kept if keep is None else kept[max(len(kept) - keep, 0):]


def parse_time(value: str) -> datetime:
    """An RFC 3339 time as the API writes it (nanoseconds cut to microseconds)."""
    value = value.strip().replace("Z", "+00:00")
    if "." in value:
        head, _, rest = value.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits):]
        value = f"{head}.{digits[:6]}{zone}"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return EPOCH
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def component_of(pod: dict[str, Any]) -> str:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    if "job-name" in labels or "batch.kubernetes.io/job-name" in labels:
        return "migrate"
    component = labels.get("app.kubernetes.io/component", "")
    return component if component in COMPONENTS else "backend" if "backend" in component else (
        component or "pod")


def parse_log(text: str, component: str, pod: str) -> list[LogLine]:
    """`<RFC 3339 time> <line>` per line (the log endpoint with timestamps=true)."""
    lines = []
    for raw in text.splitlines():
        stamp, _, rest = raw.partition(" ")
        at = parse_time(stamp)
        lines.append(LogLine(at, component, pod, rest if at != EPOCH else raw))
    return lines


def restarts(pod: dict[str, Any]) -> list[LogLine]:
    """One line per container that restarted: when its last run ended, and why."""
    name = pod["metadata"]["name"]
    found = []
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        count = status.get("restartCount") or 0
        ended = ((status.get("lastState") or {}).get("terminated")) or {}
        if count and ended:
            why = ended.get("reason") or "exited"
            found.append(LogLine(
                parse_time(ended.get("finishedAt") or ""), "restart", name,
                f"container {status.get('name')} restarted ({count}x): {why}, exit code "
                f"{ended.get('exitCode')}",
            ))
    return found


def warning_events(events: list[dict[str, Any]]) -> list[LogLine]:
    lines = []
    for event in events:
        if event.get("type") != "Warning":
            continue
        involved = event.get("involvedObject") or {}
        when = event.get("lastTimestamp") or event.get("eventTime") or (
            event.get("metadata") or {}).get("creationTimestamp") or ""
        count = event.get("count") or 1
        lines.append(LogLine(
            parse_time(when), "event", f"{involved.get('kind')}/{involved.get('name')}",
            f"{event.get('reason')}: {event.get('message', '').strip()}"
            + (f" (x{count})" if count > 1 else ""),
        ))
    return lines


def _pods(kube: Kube, settings: Settings, only: str | None) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/instance={settings.release_name}"
    pods = kube.list("v1", "Pod", settings.namespace, selector)
    return [p for p in pods if only is None or component_of(p) == only]


def _pod_log(kube: Kube, namespace: str, pod: dict[str, Any], tail: int | None,
             since: datetime | None, probes: bool = False) -> list[LogLine]:
    """The pod's lines (the last `tail` of each container), probe lines left out
    unless `probes`."""
    name = pod["metadata"]["name"]
    lines: list[LogLine] = []
    for container in (pod.get("spec") or {}).get("containers") or []:
        query = [("container", container["name"]), ("timestamps", "true")]
        if tail is not None:
            depth = tail if probes else min(tail * PROBE_HEADROOM, 10_000)
            query.append(("tailLines", str(depth)))
        if since is not None:
            query.append(("sinceTime", since.strftime("%Y-%m-%dT%H:%M:%SZ")))
        try:
            text = kube.request("GET", f"/api/v1/namespaces/{quote(namespace)}/pods/"
                                f"{quote(name)}/log", query=query, raw=True)
        except KubeError:
            continue  # not started yet, or gone: the next poll sees it
        read = parse_log(text, component_of(pod), name)
        lines += read if probes else without_probes(read, tail)
    return lines


def snapshot(kube: Kube, settings: Settings, only: str | None = None,
             tail: int = 50, probes: bool = False) -> list[LogLine]:
    """The last `tail` lines of each pod (probe lines left out unless `probes`),
    restarts and Warning events, merged by time."""
    pods = _pods(kube, settings, only)
    lines: list[LogLine] = []
    for pod in pods:
        lines += _pod_log(kube, settings.namespace, pod, tail, None, probes)
        lines += restarts(pod)
    names = {p["metadata"]["name"] for p in pods}
    events = warning_events(kube.list("v1", "Event", settings.namespace))
    if only is not None:
        events = [e for e in events if e.source.split("/", 1)[-1] in names]
    oldest = min((line.at for line in lines), default=EPOCH)
    lines += [e for e in events if e.at >= oldest][-tail:]
    return sorted(lines)


def follow(kube: Kube, settings: Settings, only: str | None = None, tail: int = 20,
           interval: float = 1.0, stop: Callable[[], bool] = lambda: False,
           probes: bool = False) -> Iterator[LogLine]:
    """The snapshot, then every new line as it comes, until `stop()` says so (probe
    lines left out unless `probes`)."""
    seen: set[LogLine] = set()
    last: dict[str, datetime] = {}
    restart_counts: dict[str, int] = {}
    first = snapshot(kube, settings, only, tail, probes)
    for line in first:
        seen.add(line)
        last[line.source] = max(last.get(line.source, EPOCH), line.at)
        yield line
    started = datetime.now(UTC)
    while not stop():
        time.sleep(interval)
        fresh: list[LogLine] = []
        for pod in _pods(kube, settings, only):
            name = pod["metadata"]["name"]
            since = last.get(name)
            fresh += _pod_log(kube, settings.namespace, pod, None if since else tail, since, probes)
            count = sum((s.get("restartCount") or 0)
                        for s in (pod.get("status") or {}).get("containerStatuses") or [])
            if count > restart_counts.setdefault(name, count):
                fresh += restarts(pod)
            restart_counts[name] = count
        fresh += [e for e in warning_events(kube.list("v1", "Event", settings.namespace))
                  if e.at >= started]
        for line in sorted(fresh):
            if line in seen:
                continue
            seen.add(line)
            last[line.source] = max(last.get(line.source, EPOCH), line.at)
            yield line
        if len(seen) > 20_000:  # bounded memory on a long follow
            seen = set(sorted(seen)[-5_000:])
