"""What the readiness probe costs an idle database: `python -m bench.ready_probes`.

Starts the backend (`--backend`: the app/backend directory to run, default this
checkout's) against a fresh database next to TEST_DATABASE_URL, asks /ready every
`--period` seconds for `--seconds` (as the kubelet does) with no other traffic, and prints
what the database counted meanwhile: client sessions opened, scans of the app's tables
(the probe reads alembic_version), transactions (every statement in autocommit is one,
and so is every session's start; autovacuum's visits and the counting's own add some).
Writes bench/results/ready_probes.json.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import psycopg

from bench.common import REPO, say, write_result


def _counts(conn: psycopg.Connection) -> tuple[int, int, int]:
    """(client sessions, scans of the app's tables, transactions) of the database `conn` is
    on, once the backends have flushed their counters. Transactions include autovacuum's
    visits and these reads' own; sessions and scans count only the app."""
    def read() -> tuple[int, int, int]:
        conn.execute("SELECT pg_stat_clear_snapshot()")
        row = conn.execute(
            "SELECT sessions, xact_commit + xact_rollback,"
            " (SELECT coalesce(sum(seq_scan + coalesce(idx_scan, 0)), 0) FROM pg_stat_user_tables)"
            " FROM pg_stat_database WHERE datname = current_database()").fetchone()
        assert row is not None
        return int(row[0]), int(row[2]), int(row[1])

    last = read()
    for _ in range(12):
        time.sleep(1.2)
        now = read()
        if now[:2] == last[:2]:
            break
        last = now
    return last


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(admin_url: str, backend: Path, seconds: float, period: float) -> dict[str, float]:
    name = f"todo_bench_ready_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"{admin_url.rpartition('/')[0]}/{name}"
    port = _free_port()
    path = os.pathsep.join([str(backend), str(backend.parent / "common")])  # and todo_serving
    env = {**os.environ, "PYTHONPATH": path, "DATABASE_URL": url, "PORT": str(port),
           "AUTH_SECRET": secrets.token_urlsafe(32), "LLM_PROVIDER": "offline", "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-m", "todo_api", "migrate"], env=env, check=True, capture_output=True)
    proc = subprocess.Popen([sys.executable, "-m", "todo_api"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError("the backend did not get ready")
        time.sleep(10)  # the pools finish opening their connections (each start counts)
        reader = psycopg.connect(url, autocommit=True)
        sessions0, scans0, xacts0 = _counts(reader)
        calls, started = 0, time.monotonic()
        while time.monotonic() - started < seconds:
            assert httpx.get(f"{base}/ready", timeout=5).status_code == 200
            calls += 1
            time.sleep(period)
        sessions1, scans1, xacts1 = _counts(reader)
        reader.close()
    finally:
        proc.terminate()
        proc.wait(20)
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {"seconds": seconds, "period": period, "ready_calls": calls,
            "sessions": sessions1 - sessions0, "table_scans": scans1 - scans0, "transactions": xacts1 - xacts0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ready_probes", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", type=Path, default=REPO / "app" / "backend",
                        help="the app/backend directory whose todo_api to run")
    parser.add_argument("--seconds", type=float, default=120, help="how long to probe")
    parser.add_argument("--period", type=float, default=5, help="seconds between /ready calls (the kubelet's)")
    parser.add_argument("--label", default="", help="a name for this run in the result file")
    args = parser.parse_args(argv)
    admin_url = os.environ.get("TEST_DATABASE_URL", "")
    if not admin_url:
        print("set TEST_DATABASE_URL (a PostgreSQL this user may create databases on)", file=sys.stderr)
        return 2
    figures = measure(admin_url, args.backend.resolve(), args.seconds, args.period)
    say(f"{args.label or args.backend}: {figures['ready_calls']:.0f} /ready calls in {figures['seconds']:.0f} s "
        f"-> {figures['sessions']:.0f} new sessions, {figures['table_scans']:.0f} table scans, "
        f"{figures['transactions']:.0f} transactions (with autovacuum's and this count's own)")
    write_result(f"ready_probes{'-' + args.label if args.label else ''}",
                 {"backend": str(args.backend), **figures})
    return 0


if __name__ == "__main__":
    sys.exit(main())
