"""A log handler both apps use (through jsonlog.configure): records are formatted in the
caller's thread and written by one writer thread, in batches, so a slow reader of stdout (the
container runtime, under load) never stalls the event loop.

`emit()` takes no lock that could already be held by the thread it runs in: the pending lines
are a deque (append is atomic), the writer is woken through a non-blocking pipe (one byte, a
system call, no Python lock), and the "already woken" marks are plain attributes. A
`threading.Event` or `queue.Queue` takes a non-reentrant lock, so a record emitted from a
signal handler that interrupted the same thread inside `set()`/`put()` deadlocked the process.
(The apps' signal handlers no longer log either; this makes the handler safe regardless.)
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
from collections import deque
from typing import TextIO

_PENDING = b"."
_URGENT = b"!"


class BatchingHandler(logging.Handler):
    """Writes what has gathered at most every `interval` seconds; a warning or worse at once.
    Bounded: past `maxsize` pending lines new ones are dropped (and counted)."""

    def __init__(self, stream: TextIO, interval: float = 0.1, maxsize: int = 10_000) -> None:
        super().__init__()
        self.stream = stream
        self.interval = interval
        self.maxsize = maxsize
        self.dropped = 0
        self._lines: deque[str] = deque()
        self._pending = False  # a wake-up byte for gathered lines is on its way
        self._urgent = False  # ... and one for a warning
        self._closing = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._write_lock = threading.Lock()  # the writer's and close()'s, never emit()'s
        self._writer = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._writer.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # noqa: BLE001 (logging's contract: a bad record never raises in the caller)
            self.handleError(record)
            return
        if len(self._lines) >= self.maxsize:
            self.dropped += 1
            return
        self._lines.append(line)
        if record.levelno >= logging.WARNING and not self._urgent:
            self._urgent = True
            self._wake(_URGENT)
        elif not self._pending:
            self._pending = True
            self._wake(_PENDING)

    def _wake(self, byte: bytes) -> None:
        if self._closing:  # the pipe may be closed and its number reused
            return
        with contextlib.suppress(OSError):  # full: the writer is due anyway
            os.write(self._wake_w, byte)

    def _wait(self, timeout: float | None) -> bytes:
        """The wake-up bytes that arrive within `timeout` (None: wait for one)."""
        try:
            readable, _, _ = select.select([self._wake_r], [], [], timeout)
            return os.read(self._wake_r, 4096) if readable else b""
        except (OSError, ValueError):  # closed under us: close() is under way
            self._closing = True
            return b""

    def _run(self) -> None:
        while not self._closing:
            woke = self._wait(None)
            if _URGENT not in woke and not self._closing:
                woke += self._wait(self.interval)  # let a batch gather; a warning cuts it short
            # Cleared before the lines are taken: a line added meanwhile wakes the writer again.
            self._pending = self._urgent = False
            self.flush()

    def flush(self) -> None:
        with self._write_lock:
            lines = []
            while self._lines:
                lines.append(self._lines.popleft())
            if not lines:
                return
            try:
                self.stream.write("\n".join(lines) + "\n")
                self.stream.flush()
            except (OSError, ValueError):  # stdout closed or gone: nothing else to tell
                self.dropped += len(lines)

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            with contextlib.suppress(OSError):
                os.write(self._wake_w, _URGENT)
            self._writer.join(timeout=5)
            for fd in () if self._writer.is_alive() else (self._wake_r, self._wake_w):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.flush()
        super().close()
