"""Phase timings for a stage's output: what ran, when it started, how long it took.

Both `inv build` and `inv deploy` time every phase with one `Timeline`, print a
line per phase as it ends (`[  0.31s +0.12s] apply app`) and keep the list in
their gate's details (`phases`), so that a slow run can be explained afterwards
from its own output. Offsets count from the stage's start; `since_process_start`
tells how long the interpreter and its imports took before the stage began.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

Log = Callable[[str], None]


@dataclass(frozen=True)
class Phase:
    name: str
    start_s: float  # offset from the timeline's start
    duration_s: float

    def line(self) -> str:
        return f"[{self.start_s:6.2f}s +{self.duration_s:5.2f}s] {self.name}"

    def as_dict(self) -> dict[str, Any]:
        return {"phase": self.name, "start_s": round(self.start_s, 3),
                "duration_s": round(self.duration_s, 3)}


def process_age_s() -> float | None:
    """Seconds since this process started (Linux /proc; None elsewhere)."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        with open("/proc/self/stat") as stat:
            # Field 22 (starttime, in clock ticks after boot) comes after the ")" of the name.
            started = int(stat.read().rsplit(")", 1)[1].split()[19]) / ticks
        with open("/proc/uptime") as uptime:
            return max(0.0, float(uptime.read().split()[0]) - started)
    except (OSError, ValueError, IndexError):
        return None


class Timeline:
    """A stage's phases. `with timeline.phase("apply app"): ...`; thread-safe."""

    def __init__(self, log: Log | None = None, *, prefix: str = "") -> None:
        self.origin = time.perf_counter()
        self.since_process_start = process_age_s()
        self.phases: list[Phase] = []
        self.log = log
        self.prefix = prefix
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.origin

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Times the block; a block that raised is recorded as "<name>: failed", so that a
        phase named for its outcome ("base image X present") never reads as done."""
        start = self.now()
        try:
            yield
        except BaseException:
            self.add(f"{name}: failed", start, self.now() - start)
            raise
        self.add(name, start, self.now() - start)

    def add(self, name: str, start_s: float, duration_s: float) -> Phase:
        phase = Phase(name, start_s, duration_s)
        with self._lock:
            self.phases.append(phase)
        if self.log is not None:
            self.log(f"{self.prefix}{phase.line()}")
        return phase

    def as_details(self) -> dict[str, Any]:
        """For a gate's details: every phase, the total, and the start-up before it."""
        out: dict[str, Any] = {
            "phases": [p.as_dict() for p in self.phases],
            "total_s": round(self.now(), 3),
        }
        if self.since_process_start is not None:
            out["process_start_to_stage_s"] = round(self.since_process_start, 3)
        return out

    def summary(self) -> str:
        """One line: every phase with its duration, slowest first."""
        ranked = sorted(self.phases, key=lambda p: -p.duration_s)
        return ", ".join(f"{p.name} {p.duration_s:.2f}s" for p in ranked)
