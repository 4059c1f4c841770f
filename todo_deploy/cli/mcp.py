"""`inv mcp`: the workflow's gates, doctor and logs as MCP tools."""

from __future__ import annotations

import sys

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@task(
    help={
        "allow_changes": "Also run deploy, rollback and scale (and verify's pod-deleting "
        "checks); without it they are refused with how to allow them.",
        "http": "Serve streamable HTTP on --host:--port (path /mcp) instead of stdio.",
        "host": "Address to listen on with --http (default 127.0.0.1; another address "
        "lets a cluster's pods reach it, e.g. for kagent).",
        "port": f"Port for --http (default {DEFAULT_PORT}).",
        "print_config": "Print a client configuration instead of serving: kubectl-ai, "
        "claude or kagent.",
        "url": "With --print-config: the server's URL (kagent default: "
        "http://host.minikube.internal:PORT/mcp or host.docker.internal per provider; "
        "kubectl-ai/claude: an HTTP entry instead of starting the server over stdio).",
    }
)
def mcp(
    c: Context, allow_changes: bool = False, http: bool = False, host: str = "127.0.0.1",
    port: int = DEFAULT_PORT, print_config: str = "", url: str = "",
) -> None:
    """Serve the workflow as MCP tools (stdio; --http for streamable HTTP).

    Tools: status, doctor, verify, logs, app_url, config; deploy, rollback and scale
    only with --allow-changes. Every call is logged in .state/mcp-calls.jsonl with
    its arguments (secrets masked) and outcome.
    """
    loaded = load_or_exit()
    if print_config:
        from todo_deploy.mcp import configs

        if print_config not in configs.CLIENTS:
            raise Exit(f"unknown client {print_config!r}: choose one of "
                       f"{', '.join(configs.CLIENTS)}", code=2)
        print(configs.render(print_config, loaded, allow_changes=allow_changes, url=url,
                             port=int(port)))
        return
    # Imported here: the SDK costs every other task nothing.
    from todo_deploy.mcp.server import serve

    where = f"http://{host}:{int(port)}/mcp" if http else "stdio"
    mode = "changes allowed" if allow_changes else "read-only"
    print(f"todo-deploy MCP server on {where} ({mode}); calls logged in "
          f"{loaded.state_dir / 'mcp-calls.jsonl'}", file=sys.stderr)
    if http and host not in LOOPBACK:
        print(f"warning: listening on {host}, not loopback: anyone who reaches this address "
              "can call the tools", file=sys.stderr)
    serve(loaded, allow_changes=allow_changes, http=http, host=host, port=int(port))
