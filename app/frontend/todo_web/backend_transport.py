"""The frontend's transport to the backend: connects tried again within one time budget.

A failed connect sent nothing, so trying again is always safe, POSTs included. Right after
a deploy the backend's Service refuses for a moment (kube-proxy's next sync routes to the
new pod): tried again a moment later, the request gets through. But when no backend pod is
ready at all (every one failing readiness while the database is down) the Service may drop
the connects instead of refusing them; each try then waits its whole connect timeout, and
a fixed number of tries (httpx's `retries`: 4 x 3 s + 3.5 s of pauses) kept the browser
waiting past its own patience for a 503 it could have had at once. So the tries share one
budget: the browser hears "unreachable" within BACKEND_CONNECT_BUDGET_SECONDS whatever
the network does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx

FIRST_PAUSE_S = 0.1
MAX_PAUSE_S = 1.0


class ConnectBudget(httpx.AsyncBaseTransport):
    """Wraps a transport: a request whose connect fails is sent again, after a pause that
    doubles (0.1 s up to 1 s), until `budget` seconds have passed since the first try. The
    first try has the client's connect timeout, every later one what is left of the budget
    (at most the client's), so the last failure comes at most max(connect timeout, budget)
    after the first try. A budget of 0: one try."""

    def __init__(self, inner: httpx.AsyncBaseTransport, budget: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.inner = inner
        self.budget = budget
        self.clock = clock

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline = self.clock() + self.budget
        timeouts = dict(request.extensions.get("timeout", {}))
        connect_timeout = timeouts.get("connect")
        pause = FIRST_PAUSE_S
        while True:
            try:
                return await self.inner.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout):
                if deadline - self.clock() <= pause:
                    raise
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE_S)
            left = deadline - self.clock()
            connect = left if connect_timeout is None else min(connect_timeout, left)
            request.extensions["timeout"] = {**timeouts, "connect": connect}

    async def aclose(self) -> None:
        await self.inner.aclose()
