"""Steady, open-loop traffic through the frontend, recorded request by request."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count

import httpx

from bench.client import WebClient


@dataclass
class Event:
    started: float  # monotonic
    kind: str  # "create" | "list"
    status: int | None  # None: no HTTP answer (transport error / timeout)
    seconds: float
    title: str = ""
    detail: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class Traffic:
    """`rate` requests per second (half creates, half lists) from a thread pool."""

    web: WebClient
    rate: float = 10.0
    timeout: float = 10.0
    tag: str = "t"
    events: list[Event] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _one(self, n: int) -> None:
        kind = "create" if n % 2 == 0 else "list"
        title = f"{self.tag}-{n}"
        started = time.monotonic()
        try:
            if kind == "create":
                response = self.web.http.post("/api/tasks", json={"title": title},
                                              headers=self.web.headers, timeout=self.timeout)
            else:
                response = self.web.http.get("/api/tasks", params={"limit": 5},
                                             timeout=self.timeout)
            status, detail = response.status_code, ""
            if status >= 300:
                try:
                    detail = str(response.json().get("detail", ""))
                except ValueError:
                    detail = response.text[:200]
            elif kind == "create" and response.json().get("title") != title:
                status, detail = 599, "acknowledged a different title"
            event = Event(started, kind, status, time.monotonic() - started, title, detail)
        except httpx.HTTPError as exc:
            event = Event(started, kind, None, time.monotonic() - started, title,
                          error=f"{type(exc).__name__}: {exc}")
        with self._lock:
            self.events.append(event)

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        with ThreadPoolExecutor(max_workers=32) as pool:
            next_at = time.monotonic()
            for n in count():
                if self._stop.is_set():
                    break
                pool.submit(self._one, n)
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def start(self) -> Traffic:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Event]:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=self.timeout + 30)
        with self._lock:
            return sorted(self.events, key=lambda e: e.started)

    def acknowledged_titles(self) -> list[str]:
        return [e.title for e in self.events if e.kind == "create" and e.ok]


def describe_failures(events: list[Event], limit: int = 10) -> str:
    bad = [e for e in events if not e.ok]
    lines = [f"{len(bad)} of {len(events)} requests failed"]
    for e in bad[:limit]:
        lines.append(f"  {e.kind} status={e.status} after {e.seconds:.2f}s {e.detail or e.error}")
    return "\n".join(lines)
