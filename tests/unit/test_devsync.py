"""todo_serving.devsync (live update, issue 24): the exec's argv protocol, the backups a failed sync is
rolled back from, and the wait for the supervisor's verdict (the supervisor: tests/frontend/test_devloop.py)."""

from __future__ import annotations

import base64
import json
import os
import signal
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from todo_serving import devloop, devsync


def blob(data: bytes) -> str:
    return base64.b64encode(zlib.compress(data)).decode()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "todo_api" / "routes").mkdir(parents=True)
    (tmp_path / "todo_api" / "routes" / "tasks.py").write_text("OLD = 1\n")
    (tmp_path / "todo_api" / "gone.py").write_text("GONE = 1\n")
    return tmp_path


def test_an_entry_is_a_path_and_compressed_bytes_or_empty_for_delete() -> None:
    assert devsync.parse_change(f"todo_api/x.py={blob(b'X = 2')}") == devsync.Change("todo_api/x.py", b"X = 2")
    assert devsync.parse_change("todo_api/x.py=") == devsync.Change("todo_api/x.py", None)


@pytest.mark.parametrize(("entry", "says"), [
    ("../etc/passwd=", "without '..'"),
    ("/opt/app/x.py=", "relative to the code root"),
    (".dev/generation=", "outside .dev/"),
    ("todo_api/x.py", "expected PATH=BLOB"),
    ("todo_api/x.py=not base64!", "not base64 of zlib-compressed bytes"),
])
def test_entries_it_will_not_write_are_refused(entry: str, says: str) -> None:
    with pytest.raises(devsync.SyncRefused, match=says):
        devsync.parse_change(entry)


def test_a_file_over_120_kb_encoded_is_refused_with_its_size() -> None:
    big = f"todo_api/big.py={blob(os.urandom(100_000))}"
    with pytest.raises(devsync.SyncRefused) as refused:
        devsync.parse_change(big)
    assert str(refused.value).startswith("todo_api/big.py: ")
    assert "over the 120000 a file may take (sync it through a rebuild)" in str(refused.value)


def test_restore_puts_back_what_a_sync_replaced_deleted_and_added(root: Path) -> None:
    changes = [devsync.Change("todo_api/routes/tasks.py", b"NEW = 2\n"), devsync.Change("todo_api/gone.py", None),
               devsync.Change("todo_api/added.py", b"ADDED = 3\n")]
    devsync.apply(root, "g1", changes)
    assert (root / "todo_api/routes/tasks.py").read_text() == "NEW = 2\n"
    assert not (root / "todo_api/gone.py").exists()
    assert (root / "todo_api/added.py").exists()
    assert sorted(devsync.restore(root, "g1")) == ["todo_api/added.py", "todo_api/gone.py",
                                                   "todo_api/routes/tasks.py"]
    assert (root / "todo_api/routes/tasks.py").read_text() == "OLD = 1\n"
    assert (root / "todo_api/gone.py").read_text() == "GONE = 1\n"
    assert not (root / "todo_api/added.py").exists()


def test_a_written_module_loses_its_bytecode(root: Path) -> None:
    """Same size, same second: the .pyc's check (mtime in seconds, size) would pass on the old bytecode."""
    cache = root / "todo_api" / "routes" / "__pycache__"
    cache.mkdir()
    (cache / "tasks.cpython-311.pyc").write_bytes(b"old")
    (cache / "other.cpython-311.pyc").write_bytes(b"keep")
    devsync.apply(root, "g1", [devsync.Change("todo_api/routes/tasks.py", b"OLD = 2\n")])
    assert sorted(p.name for p in cache.iterdir()) == ["other.cpython-311.pyc"]


@pytest.fixture
def supervisor(root: Path) -> Iterator[list[str]]:
    """This process as PID 1: on SIGHUP it answers for the generation devsync wrote."""
    seen: list[str] = []

    def answer(*_: object) -> None:
        generation = (root / ".dev" / "generation").read_text()
        seen.append(generation)
        devsync.result_path(root, generation).write_text(json.dumps(
            {"generation": generation, "ok": generation != "bad", "seconds": 0.1, "error": ""}))

    previous = signal.signal(signal.SIGHUP, answer)
    yield seen
    signal.signal(signal.SIGHUP, previous)


def test_sync_signals_the_supervisor_and_returns_its_verdict(root: Path, supervisor: list[str]) -> None:
    result = devsync.sync(root, "g1", [devsync.Change("todo_api/routes/tasks.py", b"NEW = 2\n")], os.getpid(), 5)
    assert supervisor == ["g1"]
    assert (result["generation"], result["ok"]) == ("g1", True)
    assert isinstance(result["seconds"], float)


def test_no_verdict_in_time_restores_the_files_and_says_so(root: Path) -> None:
    previous = signal.signal(signal.SIGHUP, lambda *_: None)  # a supervisor that never answers
    try:
        result = devsync.sync(root, "g2", [devsync.Change("todo_api/routes/tasks.py", b"NEW = 2\n")],
                              os.getpid(), 0.3)
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert result["ok"] is False
    assert result["error"] == f"the supervisor (pid {os.getpid()}) gave no result within 0.3s; files restored"
    assert (root / "todo_api/routes/tasks.py").read_text() == "OLD = 1\n"


def test_main_prints_one_json_line_and_exits_1_on_a_refused_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert devsync.main(["g3", "../x.py="]) == 1
    line = json.loads(capsys.readouterr().out)
    assert (line["ok"], line["error"].startswith("refused: '../x.py'")) == (False, True)
    assert devsync.main([]) == 2


def test_the_supervisor_serves_the_last_synced_generation_after_a_container_restart(root: Path) -> None:
    assert devloop.first_version(root) == "image"
    devloop.serving_file(root).parent.mkdir()
    devloop.serving_file(root).write_text("abc123")
    assert devloop.first_version(root) == "abc123"


def test_the_openai_sdks_are_preloaded_only_when_the_backend_uses_them() -> None:
    spec = devloop.APPS["todo_api"]
    assert "openai" not in devloop.modules_to_preload("todo_api", spec, {})
    assert "openai" in devloop.modules_to_preload("todo_api", spec, {"OPENAI_API_KEY": "k"})
    assert "openai" not in devloop.modules_to_preload("todo_api", spec, {"OPENAI_API_KEY": "k",
                                                                          "LLM_PROVIDER": "offline"})
    assert not any(m.split(".")[0] in devloop.OWN_PACKAGES for s in devloop.APPS.values() for m in s.preload)


def test_a_code_root_it_cannot_write_is_one_line_not_a_traceback(root: Path) -> None:
    (root / ".dev").write_text("")  # a file where the backups go: as unwritable as a read-only image
    result = devsync.sync(root, "g4", [devsync.Change("todo_api/routes/tasks.py", b"NEW = 2\n")], os.getpid(), 1)
    assert result["ok"] is False
    assert str(result["error"]).startswith(f"cannot write the code under {root} (")
    assert str(result["error"]).endswith("): is this a dev-mode pod?")
    assert (root / "todo_api/routes/tasks.py").read_text() == "OLD = 1\n"


def test_stale_bytecode_is_found_under_a_pycache_prefix_too(tmp_path: Path) -> None:
    # `inv test` from a shell with PYTHONDONTWRITEBYTECODE keeps bytecode under
    # PYTHONPYCACHEPREFIX: a same-size edit within a second kept serving the old code there
    # (the rehearsal of 94812ef: test_devloop's swaps never showed).
    import py_compile
    import sys

    source = tmp_path / "pkg" / "mod.py"
    source.parent.mkdir()
    source.write_text("X = 1\n")
    prefix = tmp_path / "prefix"
    old_prefix = sys.pycache_prefix
    sys.pycache_prefix = str(prefix)
    try:
        compiled = Path(py_compile.compile(str(source)))
        assert compiled.is_relative_to(prefix)
        assert compiled in devsync.stale_bytecode(source)
    finally:
        sys.pycache_prefix = old_prefix
