"""The log handler: lines in order, written in batches (not one write per record), a
warning at once, everything pending written on close, bounded when the writer is stuck."""

from __future__ import annotations

import io
import logging
import threading
import time

from todo_api.logging import BatchingHandler, JsonFormatter


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
