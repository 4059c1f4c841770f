"""Which code serves a request (live update, issue 24): GET /api/meta's `code` is TODO_CODE_VERSION, which
todo_serving.devloop sets for its children ("image", then each sync's generation); null outside dev mode."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient


def test_meta_says_which_code_serves(sqlite_client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TODO_CODE_VERSION", raising=False)
    assert sqlite_client.get("/api/meta").json()["code"] is None
    monkeypatch.setenv("TODO_CODE_VERSION", "3f2a9c1e")
    assert sqlite_client.get("/api/meta").json()["code"] == "3f2a9c1e"
