"""The pinned requirement files agree with each other and carry no URLs."""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILES = [
    "requirements.txt",
    "requirements-dev.txt",
    "app/backend/requirements.txt",
    "app/frontend/requirements.txt",
]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)$")


def _lines(name: str) -> list[str]:
    text = (ROOT / name).read_text()
    return [line.split("#")[0].strip() for line in text.splitlines() if line.split("#")[0].strip()]


def test_one_version_per_package_across_all_files() -> None:
    seen: dict[str, tuple[str, str]] = {}
    clashes = []
    for name in FILES:
        for line in _lines(name):
            match = PIN.match(line)
            if not match:
                continue
            package = match.group(1).lower().replace("_", "-")
            version = match.group(3)
            if package in seen and seen[package][0] != version:
                clashes.append(f"{package}: {seen[package][1]}={seen[package][0]} vs {name}={version}")
            seen.setdefault(package, (version, name))
    assert clashes == []


def test_pins_are_exact_and_carry_no_urls() -> None:
    for name in FILES:
        for line in _lines(name):
            assert "://" not in line and "--hash" not in line and "--index" not in line, line
            assert line.startswith(("-r ", "-e ")) or PIN.match(line), f"{name}: unpinned {line!r}"


def test_pyproject_declares_every_pinned_workflow_dependency() -> None:
    """`pip install -e .` alone gives a working `inv`: its dependencies are the pins'."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in declared}
    own = {PIN.match(line).group(1).lower() for line in _lines("requirements.txt")
           if PIN.match(line)}
    assert names == own


def test_the_install_command_installs_the_workflow_and_both_apps() -> None:  # and todo_serving
    """The README's install command is all `inv up` and `inv dev` need."""
    lines = _lines("requirements.txt")
    for needed in ("-e .", "-e ./app/common", "-e ./app/backend", "-e ./app/frontend",
                   "-r app/backend/requirements.txt", "-r app/frontend/requirements.txt"):
        assert needed in lines
    readme = (ROOT / "README.md").read_text()
    assert "python3 -m pip install -r requirements.txt && inv up" in readme
    assert "python3 -m pip install -r requirements-dev.txt && inv test" in readme
    # CI reads the commands it runs from the README (.ci/run readme_command): these two.
    ci = (ROOT / ".ci" / "run").read_text()
    function = ci[ci.index("readme_command() {"):].split("\n}\n", 1)[0] + "\n}"
    read = subprocess.run(["bash", "-c", f"{function}\nreadme_command 1; readme_command 2"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30, check=True).stdout.splitlines()
    assert read == ["python3 -m pip install -r requirements.txt && inv up",
                    "python3 -m pip install -r requirements-dev.txt && inv test"]


def test_test_files_have_unique_names() -> None:
    """pytest imports test modules by basename (no packages here): two alike break collection."""
    names = [p.name for p in (ROOT / "tests").rglob("test_*.py")]
    assert sorted({n for n in names if names.count(n) > 1}) == []


def test_each_app_pins_what_the_shared_package_needs() -> None:
    """Each image installs only its own app's requirements.txt, and copies todo_serving in."""
    import tomllib

    declared = tomllib.loads((ROOT / "app/common/pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~\[ ]", d, maxsplit=1)[0].lower() for d in declared["dependencies"]}
    assert {"starlette", "uvicorn", "httptools"} <= names
    for app in ("backend", "frontend"):
        pinned = {PIN.match(line).group(1).lower() for line in _lines(f"app/{app}/requirements.txt")
                  if PIN.match(line)}
        assert names <= pinned, f"app/{app}/requirements.txt lacks {sorted(names - pinned)}"
