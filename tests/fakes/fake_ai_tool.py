#!/usr/bin/env python3
"""Strict stand-in for kubectl-ai, kagent and docker (Gordon) in the adapter tests.

Copied into a temporary bin directory under each tool's name. Each accepts exactly
the flags of the real tool (lists below, with the release and file they were read
from) and rejects any other flag as cobra/pflag do, exit 1 (docker: 125). It then
appends one JSON line per call to $FAKE_RECORD (argv, the env keys the adapters may
set, stdin, and the kube context the tool would use: from --kubeconfig, else from
KUBECONFIG's files merged in order) and behaves as $FAKE_MODE_<TOOL> says.

Modes: ok (prints what the real tool prints), fail (non-zero exit, error on stderr),
sleep (never answers within the timeout), and per tool:
- kagent: v1_types (the A2A v1 JSON of kagent's main branch), task_failed,
  input_required, message (a Message, not a Task), stderr_error (exit 0, error only
  on stderr, as kagent reports errors), not_json;
- docker: no_ai (a Docker without Gordon, as Docker 28.2.2 answers), no_ai_old (the
  older docker CLI wording), no_workdir (a Gordon without -C), needs_tty (a terminal
  UI started without a terminal), tui (waits for input: never answers).
"""

import json
import os
import sys
import time

tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]

# kubectl-ai v0.0.28, cmd/main.go: Options.bindCLIFlags, plus the klog flags added as
# persistent flags in run() (v, alsologtostderr), plus cobra's --help. Args: MaximumNArgs(1).
KUBECTL_AI = {
    "max-iterations": "int", "kubeconfig": "string", "prompt-template-file-path": "string",
    "extra-prompt-paths": "string", "trace-path": "string", "remove-workdir": "bool",
    "llm-provider": "string", "model": "string", "skip-permissions": "bool",
    "mcp-server": "bool", "external-tools": "bool", "custom-tools-config": "string",
    "mcp-client": "bool", "mcp-server-mode": "string", "http-port": "int",
    "enable-tool-use-shim": "bool", "quiet": "bool", "ui-type": "string",
    "ui-listen-address": "string", "skip-verify-ssl": "bool", "show-tool-output": "bool",
    "resume-session": "string", "new-session": "bool", "list-sessions": "bool",
    "delete-session": "string", "v": "string", "alsologtostderr": "bool", "help": "bool",
}
# kagent v0.10.0-rc3 (same in v0.9.12), go/core/cli/cmd/kagent/main.go newRootCommand:
# root persistent flags, then the invoke and install commands' own. No context or
# kubeconfig flag: kagent and the `kubectl port-forward` it starts read KUBECONFIG.
KAGENT_ROOT = {"kagent-url": "string", "namespace": "string", "output-format": "string",
               "verbose": "bool", "timeout": "duration", "help": "bool"}
KAGENT = {
    "invoke": {"task": "string", "session": "string", "agent": "string", "stream": "bool",
               "file": "string", "url-override": "string", "token": "string"},
    "install": {"profile": "string"},
}
KAGENT_SHORT = {"n": "namespace", "o": "output-format", "v": "verbose", "h": "help",
                "t": "task", "s": "session", "a": "agent", "S": "stream", "f": "file",
                "u": "url-override"}
# docker ai (Gordon): docs.docker.com/ai/gordon/how-to/cli: `docker ai [PROMPT]`, -C /
# --working-dir, subcommands version and feedback. Gordon's CLI is closed source: these are
# all the options its documentation names.
DOCKER_AI = {"working-dir": "string", "help": "bool"}
DOCKER_AI_SHORT = {"C": "working-dir", "h": "help"}


def reject(message: str, code: int = 1) -> None:
    print(message, file=sys.stderr)
    sys.exit(code)


def parse(argv, known, short=None, flag_error=None):
    """pflag: (flags, positionals); an unknown flag is fatal, as with cobra."""
    short = short or {}
    flags, positionals = {}, []
    rest = list(argv)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positionals += rest
            break
        if arg.startswith("--") or (arg.startswith("-") and len(arg) > 1):
            if arg.startswith("--"):
                name, eq, value = arg[2:].partition("=")
                if name not in known:
                    flag_error(f"unknown flag: --{name}")
            else:
                letter = arg[1]
                if letter not in short:
                    flag_error(f"unknown shorthand flag: '{letter}' in {arg}")
                name, eq, value = short[letter], bool(arg[2:]), arg[2:].lstrip("=")
            if known[name] == "bool":
                value = value if eq else "true"
            elif not eq:
                if not rest:
                    flag_error(f"flag needs an argument: {arg}")
                value = rest.pop(0)
            flags[name] = value
        else:
            positionals.append(arg)
    return flags, positionals


def current_context(flags):
    """The context a client-go tool would use: --kubeconfig, else KUBECONFIG's files in
    order, the first that sets current-context winning (clientcmd's merge rule)."""
    paths = [flags["kubeconfig"]] if flags.get("kubeconfig") else [
        p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    for path in paths:
        try:
            with open(path) as handle:
                for line in handle:
                    if line.startswith("current-context:"):
                        return line.split(":", 1)[1].strip()
        except OSError:
            continue
    return None


def cobra_error(usage):
    def fail(message):
        reject(f"Error: {message}\n{usage}")
    return fail


if tool == "kubectl-ai":
    flags, positionals = parse(args, KUBECTL_AI, {"h": "help"},
                               cobra_error("Usage:\n  kubectl-ai [flags]"))
    if len(positionals) > 1:
        reject(f"Error: accepts at most 1 arg(s), received {len(positionals)}")
elif tool == "kagent":
    command = next((a for a in args if not a.startswith("-")), "")
    if command not in KAGENT:
        reject(f'Error: unknown command "{command}" for "kagent"')
    known = {**KAGENT_ROOT, **KAGENT[command]}
    flags, positionals = parse([a for a in args if a != command], known, KAGENT_SHORT,
                               cobra_error(f"Usage:\n  kagent {command} [flags]"))
elif tool == "docker":
    if args[:1] != ["ai"]:
        reject(f"docker: unknown command: docker {args[0] if args else ''}")
    flags, positionals = parse(args[1:], DOCKER_AI, DOCKER_AI_SHORT, lambda m: reject(
        f"{m}\n\nUsage:  docker ai [OPTIONS] [PROMPT]\n\nRun 'docker ai --help' for more "
        "information", 125))
else:
    reject(f"unknown fake tool {tool}", 2)

record = os.environ.get("FAKE_RECORD")
if record:
    with open(record, "a") as handle:
        handle.write(json.dumps({
            "tool": tool,
            "argv": [tool, *args],
            "env": {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_ENDPOINT", "KUBECONFIG")},
            "stdin": sys.stdin.read(1),
            "kubeconfig_current_context": current_context(flags),
        }) + "\n")

mode = os.environ.get("FAKE_MODE_" + tool.upper().replace("-", "_"), "ok")

if mode == "sleep":
    time.sleep(60)
    sys.exit(0)

if tool == "kubectl-ai":
    if mode == "fail":
        print("Error: creating llm client: 401 Unauthorized: invalid api key", file=sys.stderr)
        sys.exit(1)
    print("Pod todo-chatbot-backend-abc is in CrashLoopBackOff: DATABASE_URL is unreachable.")
    sys.exit(0)

ANSWER = "All 3 pods in namespace todo are Running and Ready; no warning events."


def released_task(state="completed", answer=ANSWER):
    """What released kagent (v0.9.12, v0.10.0-rc3) prints for a task: trpc-a2a-go v0.2.5
    protocol.MessageResult.MarshalJSON (protocol/types.go: Task, TaskStatus, Message,
    Artifact, TextPart), printed by go/core/cli/internal/cli/agent/invoke.go."""
    agent = {"kind": "message", "messageId": "m-2", "role": "agent",
             "parts": [{"kind": "text", "text": answer}], "contextId": "ctx-1", "taskId": "task-1"}
    return {
        "artifacts": [{"artifactId": "a-1", "parts": [{"kind": "text", "text": answer}]}]
        if state == "completed" else [],
        "contextId": "ctx-1",
        "history": [
            {"kind": "message", "messageId": "m-1", "role": "user",
             "parts": [{"kind": "text", "text": "check the pods"}], "contextId": "ctx-1"},
            {"kind": "message", "messageId": "m-3", "role": "agent",
             "parts": [{"kind": "data", "data": {"name": "k8s_get_resources",
                                                 "args": {"resource_type": "pod"}}}]},
            agent,
        ],
        "id": "task-1",
        "kind": "task",
        "status": {"state": state, "timestamp": "2026-11-29T10:00:00Z",
                   **({"message": agent} if state != "completed" else {})},
    }


def v1_task(answer=ANSWER):
    """kagent's main branch: a2a-go v2.3.1 a2a/core.go Task marshalled as it is (no
    "kind"; TaskState "TASK_STATE_COMPLETED"; MessageRole "ROLE_AGENT"; Part flattened
    to {"text": ...})."""
    return {
        "id": "task-1", "contextId": "ctx-1",
        "artifacts": [{"artifactId": "a-1", "parts": [{"text": answer}]}],
        "history": [{"messageId": "m-1", "role": "ROLE_USER",
                     "parts": [{"text": "check the pods"}]}],
        "status": {"state": "TASK_STATE_COMPLETED",
                   "message": {"messageId": "m-2", "role": "ROLE_AGENT",
                               "parts": [{"text": answer}]}},
    }


if tool == "kagent":
    if command == "install":
        print("kagent installed successfully")
        sys.exit(0)
    if mode == "stderr_error":
        # invoke.go prints errors to stderr and returns: exit 0.
        print("Error getting agent metadata: agent kagent/k8s-agent not found", file=sys.stderr)
        sys.exit(0)
    if mode == "not_json":
        print("agent answered in plain text")
        sys.exit(0)
    if mode == "fail":
        print("Error: connection refused", file=sys.stderr)
        sys.exit(1)
    result = {
        "ok": released_task(),
        "v1_types": v1_task(),
        "task_failed": released_task("failed", "model provider returned 401: invalid api key"),
        "input_required": released_task("input-required", "Which namespace do you mean?"),
        "message": {"kind": "message", "messageId": "m-9", "role": "agent",
                    "parts": [{"kind": "text", "text": ANSWER}]},
    }[mode]
    print(json.dumps(result))  # invoke.go: fmt.Fprintf(os.Stdout, "%+v\n", string(jsn))
    sys.exit(0)

if tool == "docker":
    if mode == "no_ai":
        reject("docker: unknown command: docker ai\n\nRun 'docker --help' for more information")
    if mode == "no_ai_old":
        reject("docker: 'ai' is not a docker command.\nSee 'docker --help'")
    if positionals == ["version"]:
        print("Docker AI (Gordon) version v1.9.11")
        sys.exit(0)
    if "working-dir" in flags:
        if mode == "no_workdir":
            reject("unknown shorthand flag: 'C' in -C\n\nUsage:  docker ai [OPTIONS] [PROMPT]",
                   125)
        if not os.path.isdir(flags["working-dir"]):
            reject(f"Error: working directory {flags['working-dir']} does not exist")
    if mode == "needs_tty":
        reject("Error: could not open a new TTY: open /dev/tty: no such device or address")
    if mode == "tui":
        time.sleep(60)
        sys.exit(0)
    if mode == "fail":
        reject("Error: Gordon is not enabled: turn it on in Docker Desktop")
    print("Use a multi-stage build and run as a numeric non-root user.")
    sys.exit(0)
