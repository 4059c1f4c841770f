"""`inv watch`: save -> new code answering THROUGH THE FRONTEND (issue 22 item 4), alone.

`python -m bench.watch_serving [--edits N] [--source DIR] [--name NAME]`: a scratch namespace
deployed from a private copy of DIR's app/ and docker/ (default: this repository), `inv watch`
in the background, N one-line backend edits (its `__version__`). Each is timed from the save
until the frontend Service answers /api/meta with the new version 3 times in a row, a new
connection each (bench.pipeline.serving), and beside it the seconds `inv watch` itself
printed for "serving". `--source` a checkout of an older commit measures that code's apps
(the workflow is this repository's). Writes bench/results/<NAME>.json.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path
from typing import Any

from bench.common import say, write_result
from bench.pipeline import Workspace, load1, measure_watch

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
        watch = measure_watch(ws, edits)
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
    write_result(args.name, result)


if __name__ == "__main__":
    main()
