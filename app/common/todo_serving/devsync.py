"""`python -m todo_serving.devsync GENERATION PATH=BLOB [PATH=BLOB ...]`: one live-update sync in a dev-mode
pod (run through `kubectl exec` in the app container). PATH is relative to the code root (/opt/app, where
todo_serving itself lives); BLOB is base64 of the zlib-compressed file, empty for "delete". The files are
written (what they replace is kept under .dev/backup-GENERATION/), GENERATION goes to .dev/generation, the
supervisor (devloop.py, PID 1; TODO_DEV_SUPERVISOR_PID overrides) gets SIGHUP, and its verdict,
.dev/result-GENERATION.json, is printed as one JSON line. Exit 0 when the new code serves, 1 when not.

Standard library only: the supervisor imports this module (for `restore`) and must import no app code."""

from __future__ import annotations

import base64
import binascii
import importlib.util
import json
import os
import shutil
import signal
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

USAGE = "usage: python -m todo_serving.devsync GENERATION PATH=BLOB [PATH=BLOB ...]"
ROOT = Path(__file__).resolve().parent.parent
MAX_ENTRY_BYTES = 120_000
RESULT_WAIT_SECONDS = 20.0
CREATED = "created.json"  # in a backup directory: the paths that did not exist before the sync


class SyncRefused(Exception):
    """An argument devsync will not act on; nothing was written."""


@dataclass(frozen=True)
class Change:
    path: str  # relative to the root, POSIX separators
    content: bytes | None  # None: delete


def dev_dir(root: Path) -> Path:
    return root / ".dev"


def backup_dir(root: Path, generation: str) -> Path:
    return dev_dir(root) / f"backup-{generation}"


def result_path(root: Path, generation: str) -> Path:
    return dev_dir(root) / f"result-{generation}.json"


def check_generation(generation: str) -> str:
    if not generation or not all(c.isalnum() or c in "-_." for c in generation) or generation.startswith("."):
        raise SyncRefused(f"generation {generation!r}: letters, digits, '-', '_' and '.' only")
    return generation


def check_path(path: str) -> str:
    parts = PurePosixPath(path).parts
    if not parts or path.startswith("/") or any(p in ("..", ".") for p in parts) or parts[0] == ".dev":
        raise SyncRefused(f"{path!r}: a path relative to the code root, without '..', outside .dev/")
    return str(PurePosixPath(*parts))


def parse_change(entry: str) -> Change:
    path, sep, blob = entry.partition("=")
    if not sep:
        raise SyncRefused(f"{entry[:60]!r}: expected PATH=BLOB")
    path = check_path(path)
    if len(entry.encode()) > MAX_ENTRY_BYTES:
        raise SyncRefused(f"{path}: {len(entry.encode())} bytes encoded, over the {MAX_ENTRY_BYTES} a file may take "
                          "(sync it through a rebuild)")
    if not blob:
        return Change(path, None)
    try:
        return Change(path, zlib.decompress(base64.b64decode(blob, validate=True)))
    except (binascii.Error, zlib.error) as exc:
        raise SyncRefused(f"{path}: not base64 of zlib-compressed bytes ({exc})") from None


def stale_bytecode(target: Path) -> list[Path]:
    """A .pyc checks its source by mtime (in seconds) and size: a second edit of the same size within
    the same second would keep serving the first one's bytecode. Where this interpreter keeps it
    (beside the source, or under PYTHONPYCACHEPREFIX: the supervisor's children share this
    environment) at every optimization level, and any other interpreter's beside the source."""
    if target.suffix != ".py":
        return []
    found = {Path(importlib.util.cache_from_source(str(target), optimization=level))
             for level in ("", 1, 2)}
    cache = target.parent / "__pycache__"
    if cache.is_dir():
        found |= set(cache.glob(f"{target.stem}.*.pyc"))
    return sorted(p for p in found if p.exists())


def back_up(root: Path, generation: str, changes: list[Change]) -> None:
    backup = backup_dir(root, generation)
    shutil.rmtree(backup, ignore_errors=True)
    backup.mkdir(parents=True)
    created = []
    for change in changes:
        source = root / change.path
        if source.is_file():
            kept = backup / "files" / change.path
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, kept)
        elif not source.exists():
            created.append(change.path)
    (backup / CREATED).write_text(json.dumps(created))


def write_file(target: Path, content: bytes | None) -> None:
    for pyc in stale_bytecode(target):
        pyc.unlink(missing_ok=True)
    if content is None:
        target.unlink(missing_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.devsync")
    partial.write_bytes(content)
    os.replace(partial, target)  # the supervisor's next child never reads half a file


def apply(root: Path, generation: str, changes: list[Change]) -> None:
    back_up(root, generation, changes)
    for change in changes:
        write_file(root / change.path, change.content)


def restore(root: Path, generation: str) -> list[str]:
    """Put back what GENERATION's sync replaced (and remove what it created); the paths restored."""
    backup = backup_dir(root, generation)
    if not backup.is_dir():
        return []
    restored = []
    files = backup / "files"
    for kept in sorted(p for p in files.rglob("*") if p.is_file()) if files.is_dir() else []:
        relative = kept.relative_to(files).as_posix()
        write_file(root / relative, kept.read_bytes())
        restored.append(relative)
    for relative in json.loads((backup / CREATED).read_text()):
        write_file(root / relative, None)
        restored.append(relative)
    return restored


def discard_backup(root: Path, generation: str) -> None:
    shutil.rmtree(backup_dir(root, generation), ignore_errors=True)


def supervisor_pid() -> int:
    return int(os.environ.get("TODO_DEV_SUPERVISOR_PID", "1"))


def wait_for_result(root: Path, generation: str, timeout: float) -> dict[str, object] | None:
    path = result_path(root, generation)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            return dict(json.loads(path.read_text()))
        except (FileNotFoundError, json.JSONDecodeError):  # not there, or being written
            time.sleep(0.02)
    return None


def sync(root: Path, generation: str, changes: list[Change], pid: int, timeout: float) -> dict[str, object]:
    started = time.monotonic()
    try:
        result_path(root, generation).unlink(missing_ok=True)
        apply(root, generation, changes)
        (dev_dir(root) / "generation").write_text(generation)
    except OSError as exc:  # a read-only /opt/app: not a dev-mode pod
        restore(root, generation)
        return {"generation": generation, "ok": False, "seconds": round(time.monotonic() - started, 3),
                "error": f"cannot write the code under {root} ({exc}): is this a dev-mode pod?"}
    os.kill(pid, signal.SIGHUP)
    result = wait_for_result(root, generation, timeout)
    if result is None:
        restore(root, generation)
        result = {"generation": generation, "ok": False,
                  "error": f"the supervisor (pid {pid}) gave no result within {timeout:g}s; files restored"}
    result["seconds"] = round(time.monotonic() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) < 2:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        generation = check_generation(args[0])
        changes = [parse_change(entry) for entry in args[1:]]
    except SyncRefused as exc:
        print(json.dumps({"generation": args[0], "ok": False, "seconds": 0, "error": f"refused: {exc}"}))
        return 1
    result = sync(ROOT, generation, changes, supervisor_pid(), RESULT_WAIT_SECONDS)
    print(json.dumps(result), flush=True)
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    raise SystemExit(main())
