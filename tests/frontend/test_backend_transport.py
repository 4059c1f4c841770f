"""ConnectBudget: failed connects tried again within one budget, each try's connect
timeout cut to what is left; other failures are not tried again."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from todo_web.backend_transport import ConnectBudget


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Scripted(httpx.AsyncBaseTransport):
    """Fails the first `failures` tries with `error`, each taking `cost` seconds (of the
    connect timeout it was given, when that is shorter); then answers 200."""

    def __init__(self, clock: Clock, failures: int, error: type[Exception], cost: float) -> None:
        self.clock, self.failures, self.error, self.cost = clock, failures, error, cost
        self.connect_timeouts: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        connect = request.extensions["timeout"]["connect"]
        self.connect_timeouts.append(connect)
        if len(self.connect_timeouts) <= self.failures:
            self.clock.now += min(self.cost, connect)
            raise self.error("no connection")
        return httpx.Response(200, request=request)


def send(inner: Scripted, clock: Clock, budget: float, monkeypatch: pytest.MonkeyPatch) -> httpx.Response:
    async def sleep(seconds: float) -> None:
        clock.now += seconds

    monkeypatch.setattr("todo_web.backend_transport.asyncio.sleep", sleep)
    transport = ConnectBudget(inner, budget, clock=clock)
    request = httpx.Request("POST", "http://backend/api/1/tasks",
                            extensions={"timeout": httpx.Timeout(60, connect=3).as_dict()})
    return asyncio.run(transport.handle_async_request(request))


def test_refused_connects_are_tried_again_until_one_gets_through(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    inner = Scripted(clock, failures=3, error=httpx.ConnectError, cost=0.0)
    assert send(inner, clock, 3.0, monkeypatch).status_code == 200
    assert len(inner.connect_timeouts) == 4
    assert clock.now == pytest.approx(0.1 + 0.2 + 0.4)  # the pauses, doubling


def test_dropped_connects_share_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    inner = Scripted(clock, failures=99, error=httpx.ConnectTimeout, cost=1.2)
    with pytest.raises(httpx.ConnectTimeout):
        send(inner, clock, 3.0, monkeypatch)
    assert inner.connect_timeouts[0] == 3.0  # the client's own connect timeout, within budget
    assert max(inner.connect_timeouts[1:]) < 3.0  # later tries: what was left
    assert clock.now <= 3.0 + 1e-9


@pytest.mark.parametrize(("error", "budget"), [
    (httpx.ConnectError, 0.0),  # a budget of zero: one try
    (httpx.ReadTimeout, 3.0),  # the request was sent: never tried again
])
def test_tried_once(error: type[Exception], budget: float, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    inner = Scripted(clock, failures=1, error=error, cost=0.0)
    with pytest.raises(error):
        send(inner, clock, budget, monkeypatch)
    assert len(inner.connect_timeouts) == 1
