"""`python -m todo_api` starts with the garbage collector off (its passes over the ~900
modules being imported were ~20% of a pod's start at 1 CPU) and the lifespan turns it back
on once it has collected and frozen what the start made (issue 22 item 4)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from tests.backend.conftest import SECRET, make_settings

from todo_api import __main__ as entry
from todo_api import server
from todo_api.server import create_app


@pytest.fixture
def collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    try:
        yield
    finally:
        (gc.enable if was else gc.disable)()


def test_serve_imports_and_builds_the_app_with_the_collector_off(
        collector_restored: None, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[bool] = []
    monkeypatch.setenv("AUTH_SECRET", SECRET)
    monkeypatch.setattr(server, "serve", lambda settings: seen.append(gc.isenabled()))
    gc.enable()
    assert entry.main(["serve"]) == 0
    assert seen == [False]  # before: True (collections all through the start)


def test_the_lifespan_turns_the_collector_back_on(collector_restored: None, sqlite_url: str) -> None:
    gc.disable()  # as `python -m todo_api` leaves it
    with TestClient(create_app(make_settings(sqlite_url))) as client:
        assert gc.isenabled()  # before: still off for the process's whole life
        assert client.get("/started").status_code == 200
