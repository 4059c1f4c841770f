"""Both images start without compiling any Python: every module the app loads at start has
its bytecode in the image (issue 22 item 4: a pod's start is part of save -> new code).

The runtime user cannot write bytecode, so a module without its .pyc is compiled again at
every pod start, on the pod's one CPU (~0.4 s for the 101 modules the images lacked). The
start is the image's own, up to the server's loop: settings, the app, uvicorn's
Config.load() (protocol, loop and lifespan classes); nothing listens.
"""

from __future__ import annotations

import json

import pytest

from tests.integration.conftest import _build, one_builder

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

START_AND_LIST = """
import json, os, sys
import uvicorn
uvicorn.Server.run = lambda self, sockets=None: self.config.load()
if sys.argv[1] == "backend":
    from todo_api.server import serve
    from todo_api.settings import load_settings
    serve(load_settings())
else:
    from todo_web.__main__ import main
    main()
# Modules read from a .py file (not frozen, not built in, not the script) lacking their .pyc.
missing = sorted(name for name, module in list(sys.modules.items())
                 if (spec := getattr(module, "__spec__", None)) is not None and spec.has_location
                 and (spec.origin or "").endswith(".py") and not os.path.exists(spec.cached or ""))
print(json.dumps({"modules": sorted(sys.modules), "without_bytecode": missing}))
"""

# Placeholders the settings accept; nothing connects (no request is served).
ENVIRONMENT = {
    "backend": {"AUTH_SECRET": "x" * 32, "DATABASE_URL": "postgresql://todo:todo@127.0.0.1:1/todo"},
    "frontend": {"SESSION_SECRET": "x" * 32, "BACKEND_URL": "http://127.0.0.1:8000"},
}


@pytest.fixture(scope="module")
def started(docker_engine: None) -> dict[str, dict[str, list[str]]]:
    """For each image: the modules loaded by its start, and those without bytecode."""
    import docker

    client = docker.from_env(timeout=600)
    found = {}
    for component, environment in ENVIRONMENT.items():
        with one_builder():
            image = _build(client, component)
        out = client.containers.run(
            image.ref, ["/opt/venv/bin/python", "-c", START_AND_LIST, component],
            environment=environment, remove=True, network_disabled=True,
        ).decode()
        # The apps' own log lines are JSON too: the script's line is the one naming its keys.
        found[component] = json.loads(next(line for line in out.splitlines() if '"without_bytecode"' in line))
    return found


@pytest.mark.parametrize("component", sorted(ENVIRONMENT))
def test_every_module_the_start_loads_has_its_bytecode_in_the_image(
    started: dict[str, dict[str, list[str]]], component: str
) -> None:
    # Failed before: sqlalchemy.orm.*, pydantic.v1.*, uvicorn.protocols.*, ... had none.
    assert started[component]["without_bytecode"] == [], (
        f"{component}: add these (or their package) to the precompile step's list in "
        f"docker/{component}.Dockerfile")
    assert len(started[component]["modules"]) > 300  # the app really started


@pytest.mark.parametrize("component", sorted(ENVIRONMENT))
def test_the_start_loads_no_websocket_protocol(started: dict[str, dict[str, list[str]]], component: str) -> None:
    # Failed before: uvicorn's ws="auto" imported its websocket protocol (and the backend's
    # the websockets package) though no route serves websockets.
    loaded = started[component]["modules"]
    assert [m for m in loaded if m.startswith(("websockets", "uvicorn.protocols.websockets"))] == []
