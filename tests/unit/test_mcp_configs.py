"""`inv mcp --print-config kubectl-ai|claude`: the formats their clients read."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from todo_deploy.config import PROJECT_ROOT, load_settings
from todo_deploy.mcp import configs

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/dev", "KUBECONFIG": "/home/dev/.kube/config"}


def test_kubectl_ai_config_is_its_mcp_yaml_with_a_stdio_server(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, {})
    data = yaml.safe_load(configs.render("kubectl-ai", loaded, environ=ENV))
    # kubectl-ai's pkg/mcp/config.go: Config{Servers []ServerConfig}, each with a name and
    # either a command (stdio) or a url.
    (server,) = data["servers"]
    assert set(server) == {"name", "command", "args", "env"}
    assert server["name"] == "todo-deploy"
    assert server["command"] == sys.executable
    assert server["args"] == ["-m", "invoke", "--search-root", str(PROJECT_ROOT), "mcp"]
    assert server["env"] == {"TODO_DEPLOY_ROOT": str(tmp_path), **ENV}


def test_allow_changes_and_http_variants(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, {})
    data = configs.kubectl_ai(loaded, allow_changes=True, environ=ENV)
    assert data["servers"][0]["args"][-1] == "--allow-changes"
    http = configs.kubectl_ai(loaded, url="http://127.0.0.1:8765/mcp")
    assert http == {"servers": [{"name": "todo-deploy", "url": "http://127.0.0.1:8765/mcp",
                                 "use_streaming": True, "timeout": 600}]}


def test_claude_entry_is_an_mcp_servers_map(tmp_path: Path) -> None:
    loaded = load_settings(tmp_path, {"OPENAI_API_KEY": "sk-never-printed-123456"})
    text = configs.render("claude", loaded, environ=ENV)
    entry = json.loads(text)["mcpServers"]["todo-deploy"]
    assert entry["command"] == sys.executable and entry["args"][-1] == "mcp"
    assert "sk-never-printed" not in text


def test_inv_mcp_print_config_prints_it(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "TODO_DEPLOY_ROOT": str(tmp_path),
           "PYTHONPATH": str(PROJECT_ROOT)}
    out = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT),
                          "mcp", "--print-config", "kubectl-ai"], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert yaml.safe_load(out)["servers"][0]["env"]["TODO_DEPLOY_ROOT"] == str(tmp_path)
    bad = subprocess.run([sys.executable, "-m", "invoke", "--search-root", str(PROJECT_ROOT),
                          "mcp", "--print-config", "cursor"], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert bad.returncode == 2 and "kubectl-ai, claude, kagent" in bad.stderr
