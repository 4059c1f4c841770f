"""Pulling a missing image: progress per layer, and a failure that names the image
and the registry's answer (the engine's JSON stream, as the Docker SDK yields it)."""

from __future__ import annotations

from typing import Any

import pytest
from docker.errors import APIError, ImageNotFound

from todo_deploy import images

LAYERS = [
    {"status": "Pulling from library/python", "id": "3.11-slim"},
    {"status": "Pulling fs layer", "id": "a1"},
    {"status": "Pulling fs layer", "id": "b2"},
    {"status": "Downloading", "id": "a1", "progressDetail": {"current": 10, "total": 99}},
    {"status": "Downloading", "id": "a1", "progressDetail": {"current": 50, "total": 99}},
    {"status": "Pull complete", "id": "a1"},
    {"status": "Already exists", "id": "b2"},
    {"status": "Digest: sha256:0123"},
    {"status": "Status: Downloaded newer image for python:3.11-slim"},
]


class FakeApi:
    def __init__(self, chunks: list[dict[str, Any]] | Exception) -> None:
        self.chunks, self.calls = chunks, []

    def pull(self, repository: str, tag: str | None = None, **kwargs: Any):
        self.calls.append((repository, tag, kwargs))
        if isinstance(self.chunks, Exception):
            raise self.chunks
        return iter(self.chunks)


class FakeImages:
    def __init__(self, present: set[str]) -> None:
        self.present = present

    def get(self, ref: str) -> object:
        if ref not in self.present:
            raise ImageNotFound(f"No such image: {ref}")
        return object()


class FakeClient:
    def __init__(self, chunks: list[dict[str, Any]] | Exception, present: frozenset[str] = frozenset()) -> None:
        self.api, self.images = FakeApi(chunks), FakeImages(set(present))


def test_a_missing_image_is_pulled_with_a_line_per_layer_state() -> None:
    client, lines = FakeClient(LAYERS), []
    seconds = images.ensure_image(client, "python:3.11-slim", lines.append)  # type: ignore[arg-type]
    assert seconds > 0
    assert client.api.calls == [("python", "3.11-slim", {"stream": True, "decode": True})]
    text = "\n".join(lines)
    assert "pulling python:3.11-slim" in text
    assert "a1: Pull complete (1/2 layers done)" in text
    assert "b2: Already exists (2/2 layers done)" in text
    # byte counters do not flood the log: one line per state change of a layer
    assert sum("a1: Downloading" in line for line in lines) == 1
    assert lines[-1].startswith("pulled python:3.11-slim in ") and "(2 layers)" in lines[-1]


def test_a_present_image_is_not_pulled() -> None:
    client = FakeClient(LAYERS, present={"python:3.11-slim"})
    assert images.ensure_image(client, "python:3.11-slim", [].append) == 0.0  # type: ignore[arg-type]
    assert client.api.calls == []


def test_an_untagged_ref_pulls_latest_and_a_registry_port_is_not_a_tag() -> None:
    client = FakeClient(LAYERS)
    images.pull_image(client, "localhost:5000/base", [].append)  # type: ignore[arg-type]
    assert client.api.calls[0][:2] == ("localhost:5000/base", "latest")


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ([{"error": "manifest for python:nope not found: manifest unknown: manifest unknown"}],
         "the registry has no such image or tag"),
        (APIError("404 Client Error: Not Found (\"pull access denied for nope, repository does "
                  "not exist or may require 'docker login'\")"),
         "the registry has no such image or tag"),
        ([{"errorDetail": {"message": "unauthorized: authentication required"}}],
         "the registry refused access"),
        ([{"status": "Pulling fs layer", "id": "a1"},
          {"error": "Get \"https://registry.example/v2/\": dial tcp: lookup registry.example: "
                    "no such host"}],
         "the registry is unreachable"),
    ],
    ids=["unknown-tag-stream", "unknown-repo-http", "denied", "unreachable"],
)
def test_a_failed_pull_names_the_image_and_the_registrys_answer(failure, reason: str) -> None:
    client = FakeClient(failure)
    with pytest.raises(images.PullError) as caught:
        images.ensure_image(client, "python:nope", [].append)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith(f"cannot pull python:nope: {reason}: ")
    detail = failure[-1] if isinstance(failure, list) else None
    if detail:
        assert (detail.get("error") or detail["errorDetail"]["message"]) in message
