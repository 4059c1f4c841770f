"""`inv watch`: save -> new code answering THROUGH THE FRONTEND (issue 22 item 4), alone.

`python -m bench.watch_serving [--edits N] [--source DIR] [--name NAME]`: a scratch namespace
deployed from a private copy of DIR's app/ and docker/ (default: this repository), `inv watch`
in the background, N one-line backend edits (its `__version__`). Each is timed from the save
until the frontend Service answers /api/meta with the new version 3 times in a row, a new
connection each (bench.pipeline.serving), and beside it the seconds `inv watch` itself
printed for "serving". `--source` a checkout of an older commit measures that code's apps
(the workflow is this repository's). Per edit, where the new backend pods' start went, in
seconds after the save (the first new pod ready: see first_after): pod created, container
started (the engine's own time when the cluster runs on this Docker engine, else the
kubelet's, whole seconds), app imported (its "serving" log line), app started (lifespan
done), first /started 200 (startup probe), first /ready 200 (readiness probe); the medians
over the edits beside. Writes bench/results/<NAME>.json.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import say, write_result
from bench.pipeline import Workspace, load1, measure_watch
from bench.stack import kubectl, kubectl_json

# A new backend pod's start, in order (see the docstring).
MARKS = ("pod created", "container started", "app imported", "app started", "/started 200", "/ready 200")

# The line may be cut where the console wrapped it (an edit's output is kept up to this line).
SAID = re.compile(r"serving (?:through the frontend |\(rollout done\) )?([0-9.]+) s(?:\s+after|\s*$)")


def said_seconds(lines: list[str]) -> float | None:
    """What `inv watch` printed as its save-to-serving time, in one edit's output (the
    console may have wrapped the line)."""
    found = SAID.search(" ".join(lines))
    return float(found.group(1)) if found else None


def phase_seconds(lines: list[str], phase: str) -> float | None:
    """A phase's duration from `inv watch`'s timeline lines (`[ start + duration] phase`)."""
    for line in lines:
        found = re.search(r"\+\s*([0-9.]+)s\] " + re.escape(phase) + "$", line.strip())
        if found:
            return float(found.group(1))
    return None


def epoch(stamp: str | None) -> float | None:
    """An RFC 3339 time (the API's, Docker's with nanoseconds, the app's logs') in epoch seconds."""
    if not stamp:
        return None
    whole, _, rest = stamp.replace("Z", "+00:00").partition(".")
    if rest:  # at most microseconds for fromisoformat
        digits = re.match(r"[0-9]*", rest).group(0)  # type: ignore[union-attr]
        whole = f"{whole}.{digits[:6]}{rest[len(digits):]}"
    return datetime.fromisoformat(whole).timestamp()


def pod_marks(pod: dict[str, Any], log_lines: list[str], container_started: str | None) -> dict[str, float | None]:
    """When one backend pod reached each of MARKS (epoch seconds; None: not seen)."""
    logs = []
    for line in log_lines:
        try:
            logs.append(json.loads(line))
        except ValueError:
            continue

    def first(**fields: Any) -> float | None:
        return next((epoch(entry.get("ts")) for entry in logs
                     if all(entry.get(k) == v for k, v in fields.items())), None)

    statuses = pod.get("status", {}).get("containerStatuses") or [{}]
    kubelet_started = ((statuses[0].get("state") or {}).get("running") or {}).get("startedAt")
    return {
        "pod created": epoch(pod["metadata"]["creationTimestamp"]),
        "container started": epoch(container_started or kubelet_started),
        "app imported": first(msg="serving"),
        "app started": first(msg="started"),
        "/started 200": first(path="/started", status=200),
        "/ready 200": first(path="/ready", status=200),
    }


def engine_started_at(pod_name: str, container: str) -> str | None:
    """The container's start from this Docker engine (ns precision), when the cluster runs on it."""
    try:
        found = subprocess.run(
            ["docker", "ps", "-q", "--filter", f"label=io.kubernetes.pod.name={pod_name}",
             "--filter", f"label=io.kubernetes.container.name={container}"],
            capture_output=True, text=True, timeout=10, check=False).stdout.split()
        if not found:
            return None
        return subprocess.run(["docker", "inspect", "-f", "{{.State.StartedAt}}", found[0]],
                              capture_output=True, text=True, timeout=10, check=False).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        return None


def first_after(saved_at: float, per_pod: list[dict[str, float | None]]) -> dict[str, float | None]:
    """Each mark of the pod that answered /ready first (the new code can serve from then
    on: the old ReplicaSet gives up a pod for each new one ready, so the frontend may show
    it before the last new pod is ready), in seconds after the save."""
    ready = [p for p in per_pod if p.get("/ready 200") is not None]
    if not ready:
        return dict.fromkeys(MARKS)
    first = min(ready, key=lambda p: p["/ready 200"])  # type: ignore[arg-type, return-value]
    return {mark: None if first.get(mark) is None else round(first[mark] - saved_at, 2)  # type: ignore[operator]
            for mark in MARKS}


def backend_start(namespace: str, saved_at: float) -> dict[str, float | None]:
    """The backend pods created after the save: MARKS in seconds after it."""
    pods = [pod for pod in kubectl_json("-n", namespace, "get", "pods",
                                        "-l", "app.kubernetes.io/component=backend")["items"]
            if (epoch(pod["metadata"]["creationTimestamp"]) or 0) >= int(saved_at)
            and not pod["metadata"].get("deletionTimestamp")]
    per_pod = []
    for pod in pods:
        name, container = pod["metadata"]["name"], pod["spec"]["containers"][0]["name"]
        lines = kubectl("-n", namespace, "logs", name, "-c", container).stdout.splitlines()
        per_pod.append(pod_marks(pod, lines, engine_started_at(name, container)))
    return first_after(saved_at, per_pod)


def median_marks(per_edit: list[dict[str, float | None]]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for mark in MARKS:
        seen = [edit[mark] for edit in per_edit if edit.get(mark) is not None]
        out[mark] = round(statistics.median(seen), 2) if seen else None  # type: ignore[type-var]
    return out


def use_source(ws: Workspace, source: Path) -> None:
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.db", ".venv", "*.egg-info")
    for part in ("app", "docker"):
        shutil.rmtree(ws.root / part)
        shutil.copytree(source / part, ws.root / part, ignore=ignore)


def run(edits: int, source: Path | None) -> dict[str, Any]:
    ws = Workspace()
    try:
        if source is not None:
            use_source(ws, source)
        say(f"workspace {ws.root} (apps from {source or 'this repository'}); namespace {ws.ours_ns}; "
            f"load {load1()}")
        ws.inv("build")
        ws.inv("cluster")
        ws.inv("deploy")
        watch = measure_watch(ws, edits, after_edit=lambda saved_at: backend_start(ws.ours_ns, saved_at))
        watch["backend_start_s_after_save_median"] = median_marks(watch["details_per_edit"])
        outputs = watch.pop("watch_output_per_edit")
        watch["watch_said_s"] = [said_seconds(lines) for lines in outputs]
        for phase in ("docker build backend", "wait rollout", "new code through the frontend"):
            watch[f"phase_s: {phase}"] = [phase_seconds(lines, phase) for lines in outputs]
        watch["apps_from"] = str(source or "this repository")
        return watch
    finally:
        ws.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--edits", type=int, default=5)
    parser.add_argument("--source", type=Path, default=None)
    parser.add_argument("--name", default="watch-serving")
    args = parser.parse_args()
    result = run(args.edits, args.source)
    say(f"save -> new code through the frontend: {result['save_to_serving_s']} "
        f"(p50 {result['summary']['p50']} s, p90 {result['summary']['p90']} s)")
    say("the new backend pods' start, median s after the save: " + ", ".join(
        f"{mark} {at}" for mark, at in result["backend_start_s_after_save_median"].items()))
    write_result(args.name, result)


if __name__ == "__main__":
    main()
