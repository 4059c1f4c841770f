"""The workflow as an MCP server: `inv mcp`.

- `tools`: one thin adapter per tool (settings + arguments in, a pydantic model out),
  calling the workflow's public functions; no MCP import, so tests call them directly.
- `server`: registers those adapters on the official SDK's MCPServer, refuses the
  changing tools unless started with --allow-changes, and logs every call.
- `calls`: the call log, `.state/mcp-calls.jsonl` (arguments masked, outcome).
- `configs`: `inv mcp --print-config kubectl-ai|claude|kagent`.
- `kagent`: the RemoteMCPServer + Agent (+ read-only RBAC) manifests for this app.
"""
