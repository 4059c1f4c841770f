"""Liveness, readiness, startup probes and the public /api/meta."""

from __future__ import annotations

import json
import os
import socket
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from todo_api import __version__
from todo_api.deps import AgentDep, Draining, ReadinessDep, Started

router = APIRouter(tags=["health"])

# The real server answers GET/HEAD /health in its protocol with these bytes (the route's
# JSON, as rendered), before the request reaches the app (todo_serving.limits): under a burst
# a liveness probe must not wait behind the requests in flight. The route serves in-process
# clients (tests) and anything the protocol passes on.
# Which pod answered (in Kubernetes the hostname is the pod's name): `inv watch` asks /api/meta
# through the frontend until a pod running the new image answers (todo_deploy.serving).
POD = socket.gethostname()
LIVENESS = {"status": "ok"}
LIVENESS_BODY = json.dumps(LIVENESS, separators=(",", ":")).encode()


# Every route is async and nothing blocks the event loop, so the probes answer at once
# whatever the load. Readiness (todo_api.readiness) answers from the outcomes of the
# requests' own queries and probes the database on a connection of its own, never from
# the request pool (a saturated pool means busy, not unready: it must not take every
# replica out of the Service at once), and at most every DB_PROBE_SECONDS while all is
# well, so it never keeps a serverless database awake.
@router.get("/health")
async def health() -> dict[str, str]:
    return LIVENESS


@router.get("/started")
async def started(has_started: Started) -> JSONResponse:
    if has_started:
        return JSONResponse({"status": "started"})
    return JSONResponse({"detail": "Still starting"}, status_code=503)


@router.get("/ready")
async def ready(draining: Draining, readiness: ReadinessDep) -> JSONResponse:
    if draining:
        return JSONResponse({"detail": "draining: the server is shutting down"}, status_code=503)
    verdict = await readiness.check()
    if not verdict.ready:
        return JSONResponse({"detail": verdict.detail}, status_code=503)
    return JSONResponse({"status": "ready", "revision": verdict.revision})


@router.get("/api/meta")
async def meta(agent: AgentDep) -> dict[str, Any]:
    # "code": which live-update sync this process serves (todo_serving.devloop sets it: "image" for the
    # image's own code, else the sync's generation); null outside dev mode.
    return {"version": __version__, "pod": POD, "code": os.environ.get("TODO_CODE_VERSION"),
            "agent": {"provider": agent.provider, "model": agent.model}}
