"""`inv mcp --print-config kubectl-ai|claude|kagent`: ready-made client configuration.

- kubectl-ai: its MCP client file (`~/.config/kubectl-ai/mcp.yaml`, read with
  `kubectl-ai --mcp-client`): `servers:` a list of {name, command, args, env}
  for stdio servers or {name, url, use_streaming} for HTTP ones (kubectl-ai's
  pkg/mcp/config.go).
- claude: an editor assistant's `mcpServers` entry (Claude Desktop/Code, Cursor...).
- kagent: the RemoteMCPServer + Agent manifests and their read-only RBAC.

The command starts `inv mcp` from any directory: Invoke's --search-root finds
this project's tasks.py, TODO_DEPLOY_ROOT names the settings root (.env, .state/).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml  # noqa: TID253 - loaded only by `inv mcp --config` and the MCP server

from todo_deploy.config import PROJECT_ROOT
from todo_deploy.mcp import kagent
from todo_deploy.mcp.tools import NAME

if TYPE_CHECKING:
    from todo_deploy.config import LoadedSettings

CLIENTS = ("kubectl-ai", "claude", "kagent")


def server_command(loaded: LoadedSettings, allow_changes: bool = False) -> list[str]:
    argv = [sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT), "mcp"]
    return argv + (["--allow-changes"] if allow_changes else [])


def server_env(loaded: LoadedSettings, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What the server needs from the client's environment: the settings root and
    the kubeconfig (clients such as Claude Desktop pass on almost nothing)."""
    environ = os.environ if environ is None else environ
    env = {"TODO_DEPLOY_ROOT": str(loaded.root)}
    for key in ("KUBECONFIG", "HOME", "PATH"):
        if environ.get(key):
            env[key] = environ[key]
    return env


def kubectl_ai(loaded: LoadedSettings, *, allow_changes: bool = False, url: str = "",
               environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    if url:
        return {"servers": [{"name": NAME, "url": url, "use_streaming": True, "timeout": 600}]}
    command = server_command(loaded, allow_changes)
    return {"servers": [{"name": NAME, "command": command[0], "args": command[1:],
                         "env": server_env(loaded, environ)}]}


def claude(loaded: LoadedSettings, *, allow_changes: bool = False, url: str = "",
           environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    if url:
        return {"mcpServers": {NAME: {"type": "http", "url": url}}}
    command = server_command(loaded, allow_changes)
    return {"mcpServers": {NAME: {"command": command[0], "args": command[1:],
                                  "env": server_env(loaded, environ)}}}


def render(client: str, loaded: LoadedSettings, *, allow_changes: bool = False,
           url: str = "", port: int = kagent.DEFAULT_PORT,
           environ: Mapping[str, str] | None = None) -> str:
    """The text to save (YAML for kubectl-ai and kagent, JSON for claude)."""
    settings = loaded.settings
    if client == "kubectl-ai":
        head = ("# Save as ~/.config/kubectl-ai/mcp.yaml, then ask:\n"
                "#   kubectl-ai --mcp-client \"why is my backend not ready?\"\n")
        data = kubectl_ai(loaded, allow_changes=allow_changes, url=url, environ=environ)
        return head + yaml.safe_dump(data, sort_keys=False)
    if client == "claude":
        data = claude(loaded, allow_changes=allow_changes, url=url, environ=environ)
        return json.dumps(data, indent=2)
    if client == "kagent":
        target = url or kagent.default_url(settings, port)
        head = (f"# Serve the tools where the cluster reaches them (read-only):\n"
                f"#   inv mcp --http --host <an address of this machine the node reaches> "
                f"--port {port}\n"
                f"# then `inv aiops install-agent` applies these, and\n"
                f"#   kagent invoke -a {kagent.agent_name(settings)} -n "
                f"{settings.kagent_namespace} -t \"why is my backend not ready?\"\n")
        docs = kagent.manifests(settings, target)
        return head + "---\n".join(yaml.safe_dump(d, sort_keys=False) for d in docs)
    raise ValueError(f"unknown client {client!r}: choose one of {', '.join(CLIENTS)}")
