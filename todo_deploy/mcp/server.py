"""The MCP server (official SDK): the adapters in `tools`, typed and logged.

Read-only by default: deploy, rollback and scale are listed (so an assistant can
see they exist) but refused with how to allow them unless the server was built
with allow_changes. Every call goes to the call log with masked arguments.
"""

# No `from __future__ import annotations`: the SDK reads the tool functions'
# annotations to build their input and output schemas.

import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.context import CallNext, ServerMiddleware, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from todo_deploy.config import LoadedSettings
from todo_deploy.mcp import calls, tools
from todo_deploy.pipeline.failures import outside_world_failure

NAME = tools.NAME
INSTRUCTIONS = (
    "Tools of the todo-chatbot deployment workflow: the same gates and diagnosis its pipeline "
    "trusts. The app has a backend (FastAPI, Deployment), a frontend (Deployment), a bundled "
    "PostgreSQL database (StatefulSet) and a migration Job. To explain a problem: `status` "
    "(which gate failed and its fix), then `doctor` (findings per object with evidence and "
    "fix), then `logs` of the component it names. `verify` proves the app works end to end. "
    "deploy, rollback and scale change the cluster and only run when the server was started "
    "with --allow-changes."
)

Out = TypeVar("Out", bound=BaseModel)  # what a tool answers

READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=True, open_world_hint=False)

CheckName = Literal[
    "frontend-page", "signup", "task-journey", "chat-adds-task", "isolation-rest",
    "isolation-chat", "backend-readiness", "no-restarts", "image-identity", "pod-security",
    "self-healing", "persistence", "cleanup",
]


def _summary(data: dict[str, Any]) -> str:
    """A line for the call log: the verdict-bearing fields of a tool's output."""
    if "gates" in data:
        return ", ".join(f"{g['stage']}: {g['state']}" for g in data["gates"])
    if "groups" in data:
        objects = "; ".join(g["object"] + " (" + ", ".join(f["kind"] for f in g["findings"]) + ")"
                            for g in data["groups"])
        return f"{data['summary']}" + (f": {objects}" if objects else "")
    if "lines" in data:
        return f"{len(data['lines'])} line(s) of {data['component']}"
    if "settings" in data:
        return f"{len(data['settings'])} settings (secrets masked)"
    if "checks" in data:
        failed = [c["name"] for c in data["checks"] if c["verdict"] == "fail"]
        verdict = "passed" if data.get("passed") else "failed: " + ", ".join(failed)
        return f"{verdict} ({len(data['checks'])} checks)"
    return ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, list | dict))


def _outcome(result: Any) -> tuple[calls.Outcome, str]:
    """(outcome, summary) of a tools/call result, as the client receives it."""
    if isinstance(result, BaseModel):
        result = result.model_dump(by_alias=True, exclude_none=True)
    result = result or {}
    if result.get("isError"):
        text = " ".join(str(c.get("text", "")) for c in result.get("content") or [])
        return ("refused" if "refused: " in text else "error"), text
    structured = result.get("structuredContent")
    return "ok", _summary(structured) if isinstance(structured, dict) else "ok"


class CallLog(ServerMiddleware[Any]):
    """Logs every tools/call (also those the SDK rejects before a tool runs: unknown
    tool, invalid arguments) with masked arguments and the outcome the client saw."""

    def __init__(self, loaded: LoadedSettings) -> None:
        self.state_dir = loaded.state_dir
        self.secrets = loaded.settings.secret_values()

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> Any:
        if ctx.method != "tools/call":
            return await call_next(ctx)
        params = ctx.params if isinstance(ctx.params, dict) else {}
        tool = str(params.get("name", "?"))
        arguments = params.get("arguments") or {}
        started = time.monotonic()
        try:
            result = await call_next(ctx)
        except Exception as exc:
            self._log(tool, arguments, "error", started, f"rejected: {type(exc).__name__}")
            raise
        outcome, summary = _outcome(result)
        self._log(tool, arguments, outcome, started, summary)
        return result

    def _log(self, tool: str, arguments: Any, outcome: calls.Outcome, started: float,
             summary: str) -> None:
        calls.append(self.state_dir, tool, arguments if isinstance(arguments, dict) else
                     {"arguments": arguments}, outcome, time.monotonic() - started, summary,
                     self.secrets)


def _error_text(exc: BaseException) -> str:
    return outside_world_failure(exc) or f"{type(exc).__name__}: {exc}"


class Calls:
    """Runs one adapter: refuses changes when read-only and maps failures to tool errors."""

    def __init__(self, allow_changes: bool) -> None:
        self.allow_changes = allow_changes

    def __call__(self, tool: str, body: Callable[[], Out]) -> Out:
        try:
            if tool in tools.CHANGE_TOOLS and not self.allow_changes:
                raise tools.Refused(
                    f"`{tool}` changes the cluster and this server is read-only; "
                    f"{tools.ALLOW_HINT}")
            return body()
        except tools.Refused as exc:
            raise ToolError(f"refused: {exc}") from None
        except tools.Failed as exc:
            raise ToolError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - the assistant gets one line with the fix
            raise ToolError(_error_text(exc)) from None


def build(loaded: LoadedSettings, *, allow_changes: bool = False) -> MCPServer:
    """The server with every tool registered (changing ones refuse unless allowed)."""
    server: MCPServer = MCPServer(NAME, instructions=INSTRUCTIONS, log_level="WARNING",
                                  middleware=[CallLog(loaded)])
    call = Calls(allow_changes)
    _register_reads(server, loaded, call, allow_changes)
    _register_changes(server, loaded, call)
    return server


def _register_reads(server: MCPServer, loaded: LoadedSettings, call: Calls,
                    allow_changes: bool) -> None:
    """The tools that only read (verify's pod-deleting checks run when changes are allowed)."""

    @server.tool(annotations=READ_ONLY)
    def status() -> tools.StatusOut:
        """Every stage gate of this deployment (build, cluster, deploy, helm, aiops, verify,
        docs): pass/fail/not run/not current, when, and each check with evidence and fix."""
        return call("status", lambda: tools.status(loaded))

    @server.tool(annotations=READ_ONLY)
    def doctor(
        namespace: Annotated[str | None, Field(
            description="Namespace to examine (default: the deployment's).")] = None,
    ) -> tools.DoctorOut:
        """The built-in doctor (no AI, reads the cluster): findings grouped per object, each
        with its kind (CrashLoopBackOff, image pull, probe failing, pending, OOMKilled,
        missing config, service without endpoints, failed Job...), evidence and fix."""
        return call("doctor", lambda: tools.doctor(loaded, namespace))

    @server.tool(annotations=READ_ONLY)
    def verify(
        only: Annotated[list[CheckName] | None, Field(
            description="Run only these checks (cleanup runs unless skipped).")] = None,
        skip: Annotated[list[CheckName] | None, Field(
            description="Leave these checks out.")] = None,
    ) -> tools.VerifyOut:
        """The end-to-end checks through the deployed frontend (sign-up, tasks, chat, isolation,
        readiness, restarts, image identity, Pod Security). Self-healing and persistence delete
        pods: they run only when the server allows changes."""
        return call("verify", lambda: tools.verify(
            loaded, list(only or []), list(skip or []), allow_changes=allow_changes))

    @server.tool(annotations=READ_ONLY)
    def logs(
        component: Annotated[tools.LogComponent | None, Field(
            description="backend, frontend, database or migrate (default: all).")] = None,
        lines: tools.LogLines = 50,
    ) -> tools.LogsOut:
        """Recent log lines of the app's pods (one component or all), merged by time, with
        container restarts and Warning events interleaved; at most `lines` lines."""
        return call("logs", lambda: tools.logs(loaded, component, lines))

    @server.tool(annotations=READ_ONLY)
    def app_url() -> tools.AppUrlOut:
        """A URL of the app that answers from this machine (direct, or a background
        port-forward kept until `inv open --stop`)."""
        return call("app_url", lambda: tools.app_url(loaded))

    @server.tool(annotations=READ_ONLY)
    def config() -> tools.ConfigOut:
        """The effective settings and where each came from; secrets are masked."""
        return call("config", lambda: tools.config(loaded))


def _register_changes(server: MCPServer, loaded: LoadedSettings, call: Calls) -> None:
    """The tools that change the deployment: each refuses unless the server allows changes."""

    @server.tool(annotations=CHANGES)
    def deploy(
        mode: Annotated[Literal["raw", "helm"], Field(
            description="raw manifests (inv deploy) or the Helm chart (inv deploy --helm)."
        )] = "raw",
    ) -> tools.GateRunOut:
        """Deploy the built images and return the deploy gate. Needs --allow-changes."""
        return call("deploy", lambda: tools.deploy(loaded, mode))

    @server.tool(annotations=CHANGES)
    def rollback(
        revision: Annotated[int | None, Field(
            ge=1, description="Helm revision to return to (default: the previous one).")] = None,
    ) -> tools.RollbackOut:
        """Roll the Helm release back. Needs --allow-changes."""
        return call("rollback", lambda: tools.rollback(loaded, revision))

    @server.tool(annotations=CHANGES)
    def scale(component: tools.ScalableComponent, replicas: tools.Replicas) -> tools.ScaleOut:
        """Set the replicas of the backend or frontend Deployment (1-20) and wait until they
        are ready. Needs --allow-changes."""
        return call("scale", lambda: tools.scale(loaded, component, replicas))


def serve(loaded: LoadedSettings, *, allow_changes: bool, http: bool, host: str,
          port: int) -> None:
    server = build(loaded, allow_changes=allow_changes)
    if not http:
        server.run("stdio")
        return

    loopback = host in ("127.0.0.1", "localhost", "::1")
    security = None if loopback else TransportSecuritySettings(
        allowed_hosts=[f"{host}:*", "127.0.0.1:*", "localhost:*",
                       "host.minikube.internal:*", "host.docker.internal:*"],
        allowed_origins=[],
    )
    server.run("streamable-http", host=host, port=port, transport_security=security)
