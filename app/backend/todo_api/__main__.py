"""Command line: `python -m todo_api` (serve), `migrate`, `dev`, `delete-users NAME...`."""

from __future__ import annotations

import gc
import os
import secrets
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from todo_serving.server import DrainingServer

USAGE = "usage: python -m todo_api [serve|migrate|dev|delete-users NAME...]"
COMMANDS = ("serve", "migrate", "dev", "delete-users")


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else "serve"
    if command in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if command not in COMMANDS:
        print(f"Unknown command '{command}'. {USAGE}", file=sys.stderr)
        return 2
    if command == "delete-users":
        return delete_users(args[1:])

    if command == "dev":
        if not os.environ.get("AUTH_SECRET"):
            os.environ["AUTH_SECRET"] = secrets.token_urlsafe(32)
            print("dev: AUTH_SECRET was not set, generated an ephemeral one (sessions end on restart)", flush=True)
        os.environ.setdefault("DATABASE_URL", "sqlite:///./todo.db")
        if not os.environ["DATABASE_URL"].startswith("sqlite"):
            print("dev: DATABASE_URL must be a sqlite URL (dev mode is for local use only)", file=sys.stderr)
            return 2

    # No collection while the server's ~900 modules load and the app is built: they all live as
    # long as the process, and the collector's passes over them were ~20% of a start at 1 CPU.
    # The server's lifespan collects once, freezes what exists and turns the collector back
    # on (`migrate` exits first).
    gc.disable()
    from todo_api.settings import load_settings

    if command == "migrate":
        from pydantic import SecretStr

        from todo_api.migrations import upgrade

        # Migrations do not need AUTH_SECRET; don't require it here.
        settings = load_settings(auth_secret=os.environ.get("AUTH_SECRET") or SecretStr("x" * 16))
        from sqlalchemy.exc import OperationalError

        from todo_api.db import failure_cause

        try:
            revision = upgrade(settings.database_url)
        except OperationalError as exc:  # one line a Job's log shows: the cause, not a traceback
            print(f"migrate: cannot use the database: {failure_cause(exc)}", file=sys.stderr, flush=True)
            return 1
        print(f"migrate: database is at revision {revision}", flush=True)
        return 0

    settings = load_settings()
    if command == "dev":
        from todo_api.migrations import upgrade

        print(f"dev: database at revision {upgrade(settings.database_url)}", flush=True)
    from todo_api.server import serve

    serve(settings)
    return 0


def build_server() -> DrainingServer:
    """What `serve` runs, built but not started: todo_serving.devloop's children run it on the
    supervisor's socket."""
    gc.disable()  # as for `serve` (main): the lifespan turns it back on
    from todo_api.server import draining_server
    from todo_api.settings import load_settings

    return draining_server(load_settings())


def delete_users(names: list[str]) -> int:
    """Prints the number of users removed on its last line (verify reads it)."""
    from pydantic import SecretStr

    from todo_api.delete_users import delete_users as delete
    from todo_api.settings import load_settings

    # Like `migrate`: the database is all it needs, not AUTH_SECRET.
    settings = load_settings(auth_secret=os.environ.get("AUTH_SECRET") or SecretStr("x" * 16))
    print(delete(settings.database_url, names), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
