"""The log handler: lines in order, written in batches (not one write per record), a
warning at once, everything pending written on close, bounded when the writer is stuck, and
a record logged from a signal handler that interrupted an emit() never deadlocks (both apps'
handlers)."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from todo_serving.jsonlog import JsonFormatter
from todo_serving.logwriter import BatchingHandler


class CountingStream(io.StringIO):
    """Counts write() calls; `gate` (when set) blocks them, like a stdout nobody reads."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.writes = 0
        self.gate = gate

    def write(self, text: str) -> int:
        if self.gate is not None:
            self.gate.wait(10)
        self.writes += 1
        return super().write(text)


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(logging.INFO)
    return logger


def test_many_records_take_few_writes_in_order() -> None:
    stream = CountingStream()
    handler = BatchingHandler(stream, interval=0.2)
    handler.setFormatter(JsonFormatter())
    log = _logger(handler, "test.batching.order")
    for i in range(500):
        log.info(f"line {i}")
    handler.close()
    lines = stream.getvalue().splitlines()
    assert [line.split('"msg": "')[1].split('"')[0] for line in lines] == [f"line {i}" for i in range(500)]
    assert stream.writes <= 3  # one write per gathered batch, not one per record


def test_info_waits_for_the_batch_and_a_warning_is_written_at_once() -> None:
    stream = CountingStream()
    handler = BatchingHandler(stream, interval=5)
    log = _logger(handler, "test.batching.urgent")
    try:
        log.info("routine")
        time.sleep(0.3)
        assert stream.getvalue() == ""  # still gathering (5 s)
        log.warning("look at this")
        deadline = time.monotonic() + 2
        while "look at this" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.getvalue().splitlines() == ["routine", "look at this"]
    finally:
        handler.close()


def test_bounded_and_never_blocks_the_caller_when_stdout_is_stuck() -> None:
    gate = threading.Event()
    stream = CountingStream(gate)
    handler = BatchingHandler(stream, interval=0.01, maxsize=100)
    log = _logger(handler, "test.batching.stuck")
    try:
        log.info("first")  # the writer takes it and blocks in write()
        time.sleep(0.2)
        started = time.monotonic()
        for i in range(1000):
            log.info(f"more {i}")
        assert time.monotonic() - started < 1  # emit() never waited on the stuck write
        assert handler.dropped == 900
    finally:
        gate.set()
        handler.close()
    assert len(stream.getvalue().splitlines()) == 101


APP = Path(__file__).resolve().parents[2] / "app"
# In a child process (a deadlock must not hang the suite): every line emit() runs, down
# through what it calls, raises a signal whose handler logs on the same thread, right there.
# A handler that takes a non-reentrant lock in emit() (threading.Event.set, queue.Queue.put)
# deadlocks at the first line run while holding it.
REENTRANT_EMIT = """
import io, logging, signal, sys
{make}
log = logging.getLogger("reentrant")
log.handlers[:] = [handler]
log.propagate = False
log.setLevel(logging.INFO)
signal.signal(signal.SIGUSR1, lambda *_: log.warning("from a signal handler"))
emit, nested = handler.emit, False

def tracer(frame, event, arg):
    if event == "line":
        signal.raise_signal(signal.SIGUSR1)  # runs the handler before returning
    return tracer

def traced_emit(record):
    global nested
    if nested:
        return emit(record)
    nested = True
    sys.settrace(tracer)
    try:
        emit(record)
    finally:
        sys.settrace(None)
        nested = False

handler.emit = traced_emit
for i in range(50):
    log.info("line %d", i)
    log.warning("urgent line %d", i)
handler.close()
print("survived", file=sys.stderr)
"""
HANDLERS = {
    "backend": ("from todo_api.logging import configure\nhandler = configure()", APP / "backend"),
    "frontend": ("from todo_web.server import configure_logging\nhandler = configure_logging()", APP / "frontend"),
}


@pytest.mark.parametrize("which", sorted(HANDLERS))
def test_a_record_logged_by_a_signal_handler_in_the_middle_of_emit_never_deadlocks(which: str) -> None:
    make, path = HANDLERS[which]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), str(APP / "common")])}
    try:
        run = subprocess.run([sys.executable, "-c", REENTRANT_EMIT.format(make=make)], env=env,
                             capture_output=True, text=True, timeout=30, check=False)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the {which}'s log handler deadlocked when a signal handler logged during emit()")
    assert run.returncode == 0 and "survived" in run.stderr, run.stderr[-2000:]
