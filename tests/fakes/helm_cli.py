#!/usr/bin/env python3
"""Strict stand-in for the `helm` CLI, as Helm 3 (v3.21.4) or Helm 4 (v4.2.4).

It accepts exactly the flags the real binary accepts for the subcommands the
workflow uses (global, per-subcommand, hidden klog ones) and rejects anything
else the way cobra/pflag do: `Error: unknown flag: --x` on stderr, exit 1; it
also checks flag values (durations, ints, bools, `-o` formats, Helm 4 wait
strategies) and argument counts, and prints pflag's deprecation notice for a
deprecated flag. The flag lists below were extracted from helm/helm's source at
those tags (the file and function of each list is written above it); nothing
was added by hand except where a comment says so.

It keeps releases in $HELM_STANDIN_STATE/state.json and appends every call
({"argv", "stdin"}) to $HELM_STANDIN_STATE/calls.jsonl. What the workflow
parses is printed in the real format: `version --template`/`--short`,
`status -o json` (the stored release: name, info, chart.metadata, version,
namespace, ...; pkg/release/release.go, info.go), `history -o json` (revision,
updated, status, chart, app_version, description; cmd/helm/history.go).

Knobs: HELM_STANDIN_FAIL=upgrade|test makes that step fail (an upgrade or
install "times out"); a value `does-not-exist` anywhere in the values does the
same for the upgrade. HELM_STANDIN_UNREACHABLE=1 makes every command that needs
the cluster fail the way Helm does when it cannot reach it.

Launched through tests/fakes/helm3 or tests/fakes/helm4 (link one as `helm`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import yaml

BUILDS = {
    "3": {"Version": "v3.21.4", "GitCommit": "813176c51bb5c181dbbd7901298ddcc104cd3417",
          "GitTreeState": "clean", "GoVersion": "go1.24.11"},
    "4": {"Version": "v4.2.4", "GitCommit": "3900f434fd3ef2b84065dc04508df48f288dba00",
          "GitTreeState": "clean", "GoVersion": "go1.25.5", "KubeClientVersion": "v1.35"},
}
# (the GoVersion values are illustrative; only Version is read by the workflow)

# Flag kinds: bool; string; int; uint; float; duration; list (StringSlice/StringArray: repeatable);
# map (StringToString); format (-o: table|json|yaml); wait (Helm 4 WaitStrategy, bare = watcher);
# optional:<v> (a string whose bare form means <v>, pflag NoOptDefVal).

# Root persistent flags: pkg/cli/environment.go EnvSettings.AddFlags at each tag, then the hidden
# klog flags (cmd/helm/flags.go / pkg/cmd/flags.go addKlogFlags: klog v2.140.0 klog.go InitFlags,
# underscores turned into hyphens), then cobra's own --help.
_GLOBAL_COMMON = {
    "namespace": ("n", "string"), "kubeconfig": ("", "string"), "kube-context": ("", "string"),
    "kube-token": ("", "string"), "kube-as-user": ("", "string"), "kube-as-group": ("", "list"),
    "kube-apiserver": ("", "string"), "kube-ca-file": ("", "string"),
    "kube-tls-server-name": ("", "string"), "kube-insecure-skip-tls-verify": ("", "bool"),
    "debug": ("", "bool"), "registry-config": ("", "string"), "repository-config": ("", "string"),
    "repository-cache": ("", "string"), "burst-limit": ("", "int"), "qps": ("", "float"),
}
_KLOG = {
    "log-dir": ("", "string"), "log-file": ("", "string"), "log-file-max-size": ("", "uint"),
    "logtostderr": ("", "bool"), "alsologtostderr": ("", "bool"),
    "legacy-stderr-threshold-behavior": ("", "bool"), "v": ("", "string"),
    "add-dir-header": ("", "bool"), "skip-headers": ("", "bool"), "one-output": ("", "bool"),
    "skip-log-headers": ("", "bool"), "stderrthreshold": ("", "string"),
    "alsologtostderrthreshold": ("", "string"), "vmodule": ("", "string"),
    "log-backtrace-at": ("", "string"),
}
GLOBAL = {
    "3": {**_GLOBAL_COMMON, **_KLOG, "help": ("h", "bool")},
    # v4.2.4 adds content-cache and color/colour
    "4": {**_GLOBAL_COMMON, "content-cache": ("", "string"), "color": ("", "string"),
          "colour": ("", "string"), **_KLOG, "help": ("h", "bool")},
}

# Per subcommand, helm/helm v3.21.4 (cobra adds --help/-h to every command).
COMMANDS_V3: dict[str, dict[str, tuple[str, str]]] = {
    # cmd/helm/upgrade.go newUpgradeCmd; flags.go addChartPathOptionsFlags,
    #   addValueOptionsFlags, bindOutputFlag, bindPostRenderFlag
    'upgrade': {
        'atomic': ('', 'bool'), 'ca-file': ('', 'string'), 'cert-file': ('', 'string'),
        'cleanup-on-fail': ('', 'bool'), 'create-namespace': ('', 'bool'),
        'dependency-update': ('', 'bool'), 'description': ('', 'string'), 'devel': ('', 'bool'),
        'disable-openapi-validation': ('', 'bool'), 'dry-run': ('', 'optional:client'),
        'enable-dns': ('', 'bool'), 'force': ('', 'bool'), 'hide-notes': ('', 'bool'),
        'hide-secret': ('', 'bool'), 'history-max': ('', 'int'),
        'insecure-skip-tls-verify': ('', 'bool'), 'install': ('i', 'bool'),
        'key-file': ('', 'string'), 'keyring': ('', 'string'), 'labels': ('l', 'map'),
        'no-hooks': ('', 'bool'), 'output': ('o', 'format'), 'pass-credentials': ('', 'bool'),
        'password': ('', 'string'), 'plain-http': ('', 'bool'), 'post-renderer': ('', 'string'),
        'post-renderer-args': ('', 'list'), 'recreate-pods': ('', 'bool'),
        'render-subchart-notes': ('', 'bool'), 'repo': ('', 'string'),
        'reset-then-reuse-values': ('', 'bool'), 'reset-values': ('', 'bool'),
        'reuse-values': ('', 'bool'), 'set': ('', 'list'), 'set-file': ('', 'list'),
        'set-json': ('', 'list'), 'set-literal': ('', 'list'), 'set-string': ('', 'list'),
        'skip-crds': ('', 'bool'), 'skip-schema-validation': ('', 'bool'),
        'take-ownership': ('', 'bool'), 'timeout': ('', 'duration'), 'username': ('', 'string'),
        'values': ('f', 'list'), 'verify': ('', 'bool'), 'version': ('', 'string'),
        'wait': ('', 'bool'), 'wait-for-jobs': ('', 'bool'),
    },
    # cmd/helm/rollback.go newRollbackCmd
    'rollback': {
        'cleanup-on-fail': ('', 'bool'), 'dry-run': ('', 'bool'), 'force': ('', 'bool'),
        'history-max': ('', 'int'), 'no-hooks': ('', 'bool'), 'recreate-pods': ('', 'bool'),
        'timeout': ('', 'duration'), 'wait': ('', 'bool'), 'wait-for-jobs': ('', 'bool'),
    },
    # cmd/helm/history.go newHistoryCmd; flags.go bindOutputFlag
    'history': {
        'max': ('', 'int'), 'output': ('o', 'format'),
    },
    # cmd/helm/status.go newStatusCmd; flags.go bindOutputFlag
    'status': {
        'output': ('o', 'format'), 'revision': ('', 'int'), 'show-desc': ('', 'bool'),
        'show-resources': ('', 'bool'),
    },
    # cmd/helm/release_testing.go newReleaseTestCmd
    'test': {
        'filter': ('', 'list'), 'hide-notes': ('', 'bool'), 'logs': ('', 'bool'),
        'timeout': ('', 'duration'),
    },
    # cmd/helm/uninstall.go newUninstallCmd
    'uninstall': {
        'cascade': ('', 'string'), 'description': ('', 'string'), 'dry-run': ('', 'bool'),
        'ignore-not-found': ('', 'bool'), 'keep-history': ('', 'bool'), 'no-hooks': ('', 'bool'),
        'timeout': ('', 'duration'), 'wait': ('', 'bool'),
    },
    # cmd/helm/template.go newTemplateCmd + install.go addInstallFlags; flags.go bindPostRenderFlag
    'template': {
        'api-versions': ('a', 'list'), 'atomic': ('', 'bool'), 'ca-file': ('', 'string'),
        'cert-file': ('', 'string'), 'create-namespace': ('', 'bool'),
        'dependency-update': ('', 'bool'), 'description': ('', 'string'), 'devel': ('', 'bool'),
        'disable-openapi-validation': ('', 'bool'), 'dry-run': ('', 'optional:client'),
        'enable-dns': ('', 'bool'), 'force': ('', 'bool'), 'generate-name': ('g', 'bool'),
        'hide-notes': ('', 'bool'), 'include-crds': ('', 'bool'),
        'insecure-skip-tls-verify': ('', 'bool'), 'is-upgrade': ('', 'bool'),
        'key-file': ('', 'string'), 'keyring': ('', 'string'), 'kube-version': ('', 'string'),
        'labels': ('l', 'map'), 'name-template': ('', 'string'), 'no-hooks': ('', 'bool'),
        'output-dir': ('', 'string'), 'pass-credentials': ('', 'bool'), 'password': ('', 'string'),
        'plain-http': ('', 'bool'), 'post-renderer': ('', 'string'),
        'post-renderer-args': ('', 'list'), 'release-name': ('', 'bool'),
        'render-subchart-notes': ('', 'bool'), 'replace': ('', 'bool'), 'repo': ('', 'string'),
        'set': ('', 'list'), 'set-file': ('', 'list'), 'set-json': ('', 'list'),
        'set-literal': ('', 'list'), 'set-string': ('', 'list'), 'show-only': ('s', 'list'),
        'skip-crds': ('', 'bool'), 'skip-schema-validation': ('', 'bool'),
        'skip-tests': ('', 'bool'), 'take-ownership': ('', 'bool'), 'timeout': ('', 'duration'),
        'username': ('', 'string'), 'validate': ('', 'bool'), 'values': ('f', 'list'),
        'verify': ('', 'bool'), 'version': ('', 'string'), 'wait': ('', 'bool'),
        'wait-for-jobs': ('', 'bool'),
    },
    # cmd/helm/lint.go newLintCmd; flags.go addValueOptionsFlags
    'lint': {
        'kube-version': ('', 'string'), 'quiet': ('', 'bool'), 'set': ('', 'list'),
        'set-file': ('', 'list'), 'set-json': ('', 'list'), 'set-literal': ('', 'list'),
        'set-string': ('', 'list'), 'skip-schema-validation': ('', 'bool'), 'strict': ('', 'bool'),
        'values': ('f', 'list'), 'with-subcharts': ('', 'bool'),
    },
    # cmd/helm/version.go newVersionCmd
    'version': {
        'client': ('c', 'bool'), 'short': ('', 'bool'), 'template': ('', 'string'),
    },
}

# Per subcommand, helm/helm v4.2.4.
COMMANDS_V4: dict[str, dict[str, tuple[str, str]]] = {
    # pkg/cmd/upgrade.go newUpgradeCmd; helpers.go addDryRunFlag; flags.go
    #   addChartPathOptionsFlags, addValueOptionsFlags, AddWaitFlag, bindOutputFlag,
    #   bindPostRenderFlag
    'upgrade': {
        'atomic': ('', 'bool'), 'ca-file': ('', 'string'), 'cert-file': ('', 'string'),
        'cleanup-on-fail': ('', 'bool'), 'create-namespace': ('', 'bool'),
        'dependency-update': ('', 'bool'), 'description': ('', 'string'), 'devel': ('', 'bool'),
        'disable-openapi-validation': ('', 'bool'), 'dry-run': ('', 'optional:unset'),
        'enable-dns': ('', 'bool'), 'force': ('', 'bool'), 'force-conflicts': ('', 'bool'),
        'force-replace': ('', 'bool'), 'hide-notes': ('', 'bool'), 'hide-secret': ('', 'bool'),
        'history-max': ('', 'int'), 'insecure-skip-tls-verify': ('', 'bool'),
        'install': ('i', 'bool'), 'key-file': ('', 'string'), 'keyring': ('', 'string'),
        'labels': ('l', 'map'), 'no-hooks': ('', 'bool'), 'output': ('o', 'format'),
        'pass-credentials': ('', 'bool'), 'password': ('', 'string'), 'plain-http': ('', 'bool'),
        'post-renderer': ('', 'string'), 'post-renderer-args': ('', 'list'),
        'render-subchart-notes': ('', 'bool'), 'repo': ('', 'string'),
        'reset-then-reuse-values': ('', 'bool'), 'reset-values': ('', 'bool'),
        'reuse-values': ('', 'bool'), 'rollback-on-failure': ('', 'bool'),
        'server-side': ('', 'string'), 'set': ('', 'list'), 'set-file': ('', 'list'),
        'set-json': ('', 'list'), 'set-literal': ('', 'list'), 'set-string': ('', 'list'),
        'skip-crds': ('', 'bool'), 'skip-schema-validation': ('', 'bool'),
        'take-ownership': ('', 'bool'), 'timeout': ('', 'duration'), 'username': ('', 'string'),
        'values': ('f', 'list'), 'verify': ('', 'bool'), 'version': ('', 'string'),
        'wait': ('', 'wait'), 'wait-for-jobs': ('', 'bool'),
    },
    # pkg/cmd/rollback.go newRollbackCmd; helpers.go addDryRunFlag; flags.go AddWaitFlag
    'rollback': {
        'cleanup-on-fail': ('', 'bool'), 'dry-run': ('', 'optional:unset'), 'force': ('', 'bool'),
        'force-conflicts': ('', 'bool'), 'force-replace': ('', 'bool'), 'history-max': ('', 'int'),
        'no-hooks': ('', 'bool'), 'server-side': ('', 'string'), 'timeout': ('', 'duration'),
        'wait': ('', 'wait'), 'wait-for-jobs': ('', 'bool'),
    },
    # pkg/cmd/history.go newHistoryCmd; flags.go bindOutputFlag
    'history': {
        'max': ('', 'int'), 'output': ('o', 'format'),
    },
    # pkg/cmd/status.go newStatusCmd; flags.go bindOutputFlag
    'status': {
        'output': ('o', 'format'), 'revision': ('', 'int'),
    },
    # pkg/cmd/release_testing.go newReleaseTestCmd
    'test': {
        'filter': ('', 'list'), 'logs': ('', 'bool'), 'timeout': ('', 'duration'),
    },
    # pkg/cmd/uninstall.go newUninstallCmd; flags.go AddWaitFlag
    'uninstall': {
        'cascade': ('', 'string'), 'description': ('', 'string'), 'dry-run': ('', 'bool'),
        'ignore-not-found': ('', 'bool'), 'keep-history': ('', 'bool'), 'no-hooks': ('', 'bool'),
        'timeout': ('', 'duration'), 'wait': ('', 'wait'),
    },
    # pkg/cmd/template.go newTemplateCmd + install.go addInstallFlags; flags.go AddWaitFlag,
    #   bindPostRenderFlag
    'template': {
        'api-versions': ('a', 'list'), 'atomic': ('', 'bool'), 'ca-file': ('', 'string'),
        'cert-file': ('', 'string'), 'create-namespace': ('', 'bool'),
        'dependency-update': ('', 'bool'), 'description': ('', 'string'), 'devel': ('', 'bool'),
        'disable-openapi-validation': ('', 'bool'), 'dry-run': ('', 'optional:unset'),
        'enable-dns': ('', 'bool'), 'force': ('', 'bool'), 'force-conflicts': ('', 'bool'),
        'force-replace': ('', 'bool'), 'generate-name': ('g', 'bool'), 'hide-notes': ('', 'bool'),
        'include-crds': ('', 'bool'), 'insecure-skip-tls-verify': ('', 'bool'),
        'is-upgrade': ('', 'bool'), 'key-file': ('', 'string'), 'keyring': ('', 'string'),
        'kube-version': ('', 'string'), 'labels': ('l', 'map'), 'name-template': ('', 'string'),
        'no-hooks': ('', 'bool'), 'output-dir': ('', 'string'), 'pass-credentials': ('', 'bool'),
        'password': ('', 'string'), 'plain-http': ('', 'bool'), 'post-renderer': ('', 'string'),
        'post-renderer-args': ('', 'list'), 'release-name': ('', 'bool'),
        'render-subchart-notes': ('', 'bool'), 'replace': ('', 'bool'), 'repo': ('', 'string'),
        'rollback-on-failure': ('', 'bool'), 'server-side': ('', 'bool'), 'set': ('', 'list'),
        'set-file': ('', 'list'), 'set-json': ('', 'list'), 'set-literal': ('', 'list'),
        'set-string': ('', 'list'), 'show-only': ('s', 'list'), 'skip-crds': ('', 'bool'),
        'skip-schema-validation': ('', 'bool'), 'skip-tests': ('', 'bool'),
        'take-ownership': ('', 'bool'), 'timeout': ('', 'duration'), 'username': ('', 'string'),
        'validate': ('', 'bool'), 'values': ('f', 'list'), 'verify': ('', 'bool'),
        'version': ('', 'string'), 'wait': ('', 'wait'), 'wait-for-jobs': ('', 'bool'),
    },
    # pkg/cmd/lint.go newLintCmd; flags.go addValueOptionsFlags
    'lint': {
        'kube-version': ('', 'string'), 'quiet': ('', 'bool'), 'set': ('', 'list'),
        'set-file': ('', 'list'), 'set-json': ('', 'list'), 'set-literal': ('', 'list'),
        'set-string': ('', 'list'), 'skip-schema-validation': ('', 'bool'), 'strict': ('', 'bool'),
        'values': ('f', 'list'), 'with-subcharts': ('', 'bool'),
    },
    # pkg/cmd/version.go newVersionCmd
    'version': {
        'short': ('', 'bool'), 'template': ('', 'string'),
    },
}

COMMANDS = {"3": COMMANDS_V3, "4": COMMANDS_V4}

# flag.MarkDeprecated(...) in the same files: accepted, with pflag's notice on stderr.
DEPRECATED = {
    "3": {("upgrade", "recreate-pods"): "functionality will no longer be updated. Consult the "
          "documentation for other methods to recreate pods"},
    "4": {("upgrade", "force"): "use --force-replace instead",
          ("upgrade", "atomic"): "use --rollback-on-failure instead",
          ("rollback", "force"): "use --force-replace instead",
          ("template", "force"): "use --force-replace instead",
          ("template", "atomic"): "use --rollback-on-failure instead",
          ("template", "validate"): "use '--dry-run=server' instead",
          ("template", "hide-notes"): "this flag has no effect for 'helm template' and will be "
          "removed in Helm 5",
          ("template", "render-subchart-notes"): "this flag has no effect for 'helm template' and "
          "will be removed in Helm 5"},
}

# Positional arguments: cmd/helm/require/args.go (v4: pkg/cmd/require/args.go) as used by each
# command's Args; v3 `lint` sets none, v4 `lint` requires one.
USAGE = {
    "upgrade": ("exact", 2, "helm upgrade [RELEASE] [CHART] [flags]"),
    "rollback": ("min", 1, "helm rollback <RELEASE> [REVISION] [flags]"),
    "history": ("exact", 1, "helm history RELEASE_NAME [flags]"),
    "status": ("exact", 1, "helm status RELEASE_NAME [flags]"),
    "test": ("exact", 1, "helm test [RELEASE] [flags]"),
    "uninstall": ("min", 1, "helm uninstall RELEASE_NAME [...] [flags]"),
    "template": ("min", 1, "helm template [NAME] [CHART] [flags]"),
    "lint": ("min", 1, "helm lint PATH [flags]"),
    "version": ("none", 0, "helm version [flags]"),
}


class CobraError(Exception):
    """What cobra prints as `Error: <message>` before exiting 1."""


_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
         "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}
_DURATION = re.compile(r"^[-+]?((\d+(\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h))+$")


def _label(name: str, short: str) -> str:
    return f"-{short}, --{name}" if short else f"--{name}"


def _check_value(name: str, short: str, kind: str, value: str, major: str) -> Any:
    bad = f'invalid argument "{value}" for "{_label(name, short)}" flag: '
    if kind == "bool":
        if value not in _BOOL:
            raise CobraError(bad + f'strconv.ParseBool: parsing "{value}": invalid syntax')
        return _BOOL[value]
    if kind in ("int", "uint"):
        if not re.fullmatch(r"-?\d+" if kind == "int" else r"\d+", value):
            parser = "ParseInt" if kind == "int" else "ParseUint"
            raise CobraError(bad + f'strconv.{parser}: parsing "{value}": invalid syntax')
        return int(value)
    if kind == "float":
        try:
            return float(value)
        except ValueError:
            raise CobraError(bad + f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    if kind == "duration":
        if value != "0" and not _DURATION.match(value):
            why = "missing unit in duration" if re.fullmatch(r"[-+]?\d+(\.\d*)?", value) else "invalid duration"
            raise CobraError(bad + f'time: {why} "{value}"')
        return value
    if kind == "format":
        if value not in ("table", "json", "yaml"):
            raise CobraError(bad + "invalid format type")
        return value
    if kind == "wait":
        if value not in ("watcher", "hookOnly", "legacy", "true", "false"):
            raise CobraError(bad + f'invalid wait input "{value}". Valid inputs are watcher, '
                             "hookOnly, and legacy")
        return {"true": "watcher", "false": "hookOnly"}.get(value, value)
    if kind == "map":
        for pair in value.split(","):
            if "=" not in pair:
                raise CobraError(bad + f"{value} must be formatted as key=value")
        return value
    return value


def parse(major: str, args: list[str]) -> tuple[str, list[str], dict[str, Any]]:
    """pflag's parsing: (subcommand, positionals, flags) or CobraError."""
    known = dict(GLOBAL[major])
    command = ""
    positionals: list[str] = []
    flags: dict[str, Any] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        if arg == "--":
            positionals += rest
            break
        if arg.startswith("--"):
            name, has_value, value = arg[2:].partition("=")
            if name not in known:
                raise CobraError(f"unknown flag: --{name}")
            short, kind = known[name]
        elif arg.startswith("-") and len(arg) > 1:
            letter, tail = arg[1], arg[2:]
            name = next((n for n, (s, _) in known.items() if s == letter), "")
            if not name:
                raise CobraError(f"unknown shorthand flag: '{letter}' in {arg}")
            short, kind = known[name]
            has_value, value = bool(tail), tail.removeprefix("=")
            if kind == "bool" and tail and not tail.startswith("="):
                raise CobraError(f"unknown shorthand flag: '{tail[0]}' in {arg}")  # no bundling here
        else:
            if not command:
                command = arg
                if command not in COMMANDS[major]:
                    raise CobraError(f'unknown command "{command}" for "helm"\n'
                                     "Run 'helm --help' for usage.")
                known.update(COMMANDS[major][command])
                known["help"] = ("h", "bool")
            else:
                positionals.append(arg)
            continue
        if not has_value:
            if kind == "bool":
                value = "true"
            elif kind == "wait":
                value = "watcher"
            elif kind.startswith("optional:"):
                value = kind.split(":", 1)[1]
            elif rest:
                value = rest.pop(0)
            else:
                raise CobraError(f"flag needs an argument: {'-' + short if arg[1] != '-' else '--' + name}")
        notice = DEPRECATED[major].get((command, name))
        if notice:
            print(f"Flag --{name} has been deprecated, {notice}", file=sys.stderr)
        checked = _check_value(name, short, kind.split(":")[0] if kind.startswith("optional") else kind,
                               value, major)
        if kind == "list":
            flags.setdefault(name, []).extend(value.split(",") if name != "set" else [value])
        else:
            flags[name] = checked
    if not command:
        raise CobraError("no subcommand given (the stand-in only runs subcommands)")
    rule, count, usage = USAGE[command]
    if command == "lint" and major == "3":
        rule = "any"
    if rule == "exact" and len(positionals) != count:
        noun = "argument" if count == 1 else "arguments"
        raise CobraError(f'"helm {command}" requires {count} {noun}\n\nUsage:  {usage}')
    if rule == "min" and len(positionals) < count:
        noun = "argument" if count == 1 else "arguments"
        raise CobraError(f'"helm {command}" requires at least {count} {noun}\n\nUsage:  {usage}')
    if rule == "none" and positionals:
        raise CobraError(f'unknown command "{positionals[0]}" for "helm {command}"')
    return command, positionals, flags


# ---- behaviour --------------------------------------------------------------------------------

def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f000Z")


class Store:
    def __init__(self, root: Path) -> None:
        self.path = root / "state.json"
        self.data: dict[str, list[dict[str, Any]]] = (
            json.loads(self.path.read_text()) if self.path.exists() else {})

    def save(self) -> None:
        self.path.write_text(json.dumps(self.data, indent=1))

    def revisions(self, namespace: str, release: str) -> list[dict[str, Any]]:
        return self.data.setdefault(f"{namespace}/{release}", [])

    def drop(self, namespace: str, release: str) -> None:
        self.data.pop(f"{namespace}/{release}", None)


def _release_json(major: str, rev: dict[str, Any]) -> dict[str, Any]:
    """The stored release as `status -o json` prints it (pkg/release/release.go; v4:
    pkg/release/v1/release.go, where a zero `deleted` is left out)."""
    info = {"first_deployed": rev["first_deployed"], "last_deployed": rev["updated"],
            "description": rev["description"], "status": rev["status"], "notes": "stand-in notes"}
    if major == "3":
        info["deleted"] = "0001-01-01T00:00:00Z"  # Go zero time, no omitempty in v3
    release = {
        "name": rev["name"], "info": info,
        "chart": {"metadata": {"name": "todo-chatbot", "version": "0.1.0", "appVersion": "0.1.0",
                               "apiVersion": "v2"}, "lock": None, "templates": [], "values": {},
                  "schema": None, "files": []},
        "config": rev["values"], "manifest": "---\n# Source: stand-in\n",
        "version": rev["revision"], "namespace": rev["namespace"],
    }
    if major == "4":
        release["apply_method"] = "ssa"
    return release


def _history_row(rev: dict[str, Any]) -> dict[str, Any]:
    return {"revision": rev["revision"], "updated": rev["updated"], "status": rev["status"],
            "chart": "todo-chatbot-0.1.0", "app_version": "0.1.0",
            "description": rev["description"]}


def _broken(values: Any) -> bool:
    if isinstance(values, dict):
        return any(_broken(v) for v in values.values())
    if isinstance(values, list):
        return any(_broken(v) for v in values)
    return values == "does-not-exist"


def _values(flags: dict[str, Any], stdin: str) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for source in flags.get("values", []):
        text = stdin if source.strip() == "-" else Path(source).read_text()
        merged.update(yaml.safe_load(text) or {})
    return merged


def run(major: str, command: str, args: list[str], flags: dict[str, Any], stdin: str,
        store: Store) -> str:
    build = BUILDS[major]
    if command == "version":
        if flags.get("template"):
            text = flags["template"]
            for key, value in build.items():
                text = text.replace("{{." + key + "}}", value)
            return text
        if flags.get("short"):
            return f"{build['Version']}+g{build['GitCommit'][:7]}\n"
        fields = ", ".join(f'{k}:"{v}"' for k, v in build.items())
        return f"version.BuildInfo{{{fields}}}\n"
    if command == "lint":
        return f"==> Linting {args[0]}\n\n1 chart(s) linted, 0 chart(s) failed\n"
    namespace = flags.get("namespace") or "default"
    if command == "template":
        values = _values(flags, stdin)
        return yaml.safe_dump_all([{
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": f"{args[0]}-standin", "namespace": namespace},
            "data": {"kubeVersion": flags.get("kube-version", ""),
                     "apiVersions": ",".join(flags.get("api-versions", [])),
                     "values": json.dumps(values, sort_keys=True)},
        }], explicit_start=True)
    if os.environ.get("HELM_STANDIN_UNREACHABLE"):
        word = "Kubernetes" if major == "3" else "kubernetes"
        raise CobraError(f'{word} cluster unreachable: Get "https://127.0.0.1:6443/version": '
                         "dial tcp 127.0.0.1:6443: connect: connection refused")
    release = args[0]
    revisions = store.revisions(namespace, release)
    current = revisions[-1] if revisions else None
    if command == "status":
        if not current:
            raise CobraError("release: not found")
        return json.dumps(_release_json(major, current)) + "\n"
    if command == "history":
        if not revisions:
            raise CobraError("release: not found")
        return json.dumps([_history_row(r) for r in revisions[-flags.get("max", 256):]]) + "\n"
    if command == "uninstall":
        if not revisions:
            raise CobraError(f"uninstall: Release not loaded: {release}: release: not found")
        store.drop(namespace, release)
        return f'release "{release}" uninstalled\n'
    if command == "test":
        if not current:
            raise CobraError("release: not found")
        phase = "Failed" if os.environ.get("HELM_STANDIN_FAIL") == "test" else "Succeeded"
        out = (f"NAME: {release}\nLAST DEPLOYED: {current['updated']}\nNAMESPACE: {namespace}\n"
               f"STATUS: {current['status']}\nREVISION: {current['revision']}\n"
               f"TEST SUITE:     {release}-test\nLast Started:   {_now()}\n"
               f"Last Completed: {_now()}\nPhase:          {phase}\n")
        if flags.get("logs"):
            out += f"\nPOD LOGS: {release}-test\nhttp://{release}-backend:8000/ready 200\n"
        if phase == "Failed":
            sys.stdout.write(out)
            raise CobraError(f"1 error occurred:\n\t* pod {release}-test failed")
        return out

    def add(status: str, description: str, values: dict[str, Any]) -> dict[str, Any]:
        for rev in revisions:
            if rev["status"] == "deployed" and status == "deployed":
                rev["status"] = "superseded"
        rev = {"name": release, "namespace": namespace, "revision": len(revisions) + 1
               if not revisions else revisions[-1]["revision"] + 1, "status": status,
               "description": description, "values": values, "updated": _now(),
               "first_deployed": revisions[0]["first_deployed"] if revisions else _now()}
        revisions.append(rev)
        return rev

    if command == "rollback":
        if not current:
            raise CobraError("release: not found")
        target = int(args[1]) if len(args) > 1 and args[1] != "0" else current["revision"] - 1
        old = next((r for r in revisions if r["revision"] == target), None)
        if old is None:
            raise CobraError(f"release has no {target} version")
        add("deployed", f"Rollback to {target}", old["values"])
        return "Rollback was a success! Happy Helming!\n"
    if command == "upgrade":
        values = _values(flags, stdin)
        on_failure = flags.get("atomic") or flags.get("rollback-on-failure")
        setting = "atomic" if major == "3" else "rollback-on-failure"
        fails = _broken(values) or os.environ.get("HELM_STANDIN_FAIL") == "upgrade"
        installing = current is None or all(r["status"] != "deployed" for r in revisions)
        out = ""
        if current is None:
            if not flags.get("install"):
                raise CobraError(f'UPGRADE FAILED: "{release}" has no deployed releases')
            out = f'Release "{release}" does not exist. Installing it now.\n'
        if fails:
            # pkg/action/install.go, upgrade.go failRelease: the failed revision's description
            why = "context deadline exceeded"
            add("failed", f'Release "{release}" failed: {why}' if installing
                else f'Upgrade "{release}" failed: {why}', values)
            if on_failure and installing:
                store.drop(namespace, release)
                store.save()
                raise CobraError(f"release {release} failed, and has been uninstalled due to "
                                 f"{setting} being set: context deadline exceeded")
            if on_failure:
                good = [r for r in revisions if r["status"] in ("deployed", "superseded")]
                add("deployed", f"Rollback to {good[-1]['revision']}", good[-1]["values"])
                store.save()
                raise CobraError(f"UPGRADE FAILED: release {release} failed, and has been rolled "
                                 f"back due to {setting} being set: context deadline exceeded")
            store.save()
            raise CobraError("UPGRADE FAILED: context deadline exceeded")
        rev = add("deployed", "Install complete" if installing else "Upgrade complete", values)
        if not installing:
            out += f'Release "{release}" has been upgraded. Happy Helming!\n'
        out += (f"NAME: {release}\nLAST DEPLOYED: {rev['updated']}\nNAMESPACE: {namespace}\n"
                f"STATUS: deployed\nREVISION: {rev['revision']}\nTEST SUITE: None\n")
        return out
    raise CobraError(f"the stand-in does not implement `helm {command}`")


def main(major: str, args: list[str]) -> int:
    root = Path(os.environ.get("HELM_STANDIN_STATE", "."))
    stdin = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    with (root / "calls.jsonl").open("a") as record:
        record.write(json.dumps({"argv": ["helm", *args], "stdin": stdin}) + "\n")
    store = Store(root)
    try:
        command, positionals, flags = parse(major, args)
        if flags.get("help"):
            sys.stdout.write(f"Usage:  {USAGE[command][2]}\n")
            return 0
        out = run(major, command, positionals, flags, stdin, store)
    except CobraError as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    store.save()
    sys.stdout.write(out)
    return 0
