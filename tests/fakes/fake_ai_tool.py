#!/usr/bin/env python3
"""Stand-in for kubectl-ai, kagent and docker (Gordon) in the adapter tests.

Copied into a temporary bin directory under each tool's name. It appends one
JSON line per call to $FAKE_RECORD (argv, the env keys the adapters may set,
and the current-context of a --kubeconfig file), then behaves as
$FAKE_MODE_<TOOL> says: ok (prints what the real tool prints), fail (non-zero
exit, error on stderr), stderr_error (kagent: exit 0, error only on stderr),
not_json (kagent: exit 0, plain text), no_ai (docker without the ai plugin),
sleep (never answers within the timeout).
"""

import json
import os
import sys
import time

tool = os.path.basename(sys.argv[0])
args = sys.argv[1:]
record = os.environ.get("FAKE_RECORD")
current_context = None
if "--kubeconfig" in args:
    path = args[args.index("--kubeconfig") + 1]
    with open(path) as handle:
        for line in handle:
            if line.startswith("current-context:"):
                current_context = line.split(":", 1)[1].strip()
if record:
    with open(record, "a") as handle:
        handle.write(json.dumps({
            "tool": tool,
            "argv": [tool, *args],
            "env": {k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_ENDPOINT", "KUBECONFIG")},
            "stdin": sys.stdin.read(1),
            "kubeconfig_current_context": current_context,
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

if tool == "kagent":
    if args[:1] == ["install"]:
        print("kagent installed successfully")
        sys.exit(0)
    if mode == "stderr_error":
        print("Error: failed to invoke agent: agent kagent/k8s-agent not found", file=sys.stderr)
        sys.exit(0)
    if mode == "not_json":
        print("agent answered in plain text")
        sys.exit(0)
    if mode == "fail":
        print("Error: connection refused", file=sys.stderr)
        sys.exit(1)
    print(json.dumps({"id": "task-1", "status": {"state": "completed"},
                      "artifacts": [{"parts": [{"kind": "text", "text": "All pods are healthy."}]}]}))
    sys.exit(0)

if tool == "docker":
    if args[:1] != ["ai"] or mode == "no_ai":
        print("docker: 'ai' is not a docker command.\nSee 'docker --help'", file=sys.stderr)
        sys.exit(1)
    if args[1:] == ["version"]:
        print("Docker AI (Gordon) version v1.1.0")
        sys.exit(0)
    if mode == "fail":
        print("Error: Gordon is not enabled: turn it on in Docker Desktop", file=sys.stderr)
        sys.exit(1)
    print("Use a multi-stage build and run as a numeric non-root user.")
    sys.exit(0)

print(f"unknown fake tool {tool}", file=sys.stderr)
sys.exit(2)
