"""Alembic migrations, configured programmatically (no alembic.ini)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text

from todo_api.db import make_engine

if TYPE_CHECKING:
    from alembic.config import Config

HERE = Path(__file__).resolve().parent
LOCK_KEY = 7_406_118_233  # arbitrary, constant advisory-lock key for migrations


def alembic_config(url: str) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@cache
def head_revision() -> str | None:
    """The newest revision, read from the version files' `revision`/`down_revision` lines:
    the server needs only this at start, and alembic (with mako and pygments, ~0.2 s of a pod's
    start) is imported only to migrate. Alembic's own answer when the history is not one line."""
    links = [revision_link(path) for path in sorted((HERE / "versions").glob("*.py"))]
    revisions = {rev for rev, _ in links if rev}
    heads = revisions - {down for _, down in links}
    if len(heads) == 1 and all(isinstance(down, str | None) for _, down in links):
        return heads.pop()
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def revision_link(path: Path) -> tuple[str | None, object]:
    """A version file's (revision, down_revision), from its module-level assignments."""
    found: dict[str, object] = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and node.value:
                    found[target.id] = ast.literal_eval(node.value)
    revision = found.get("revision")
    return (revision if isinstance(revision, str) else None), found.get("down_revision")


def current_revision(conn: Connection) -> str | None:
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def upgrade(url: str, engine: Engine | None = None) -> str | None:
    """Bring the database to head. Safe to run concurrently on PostgreSQL."""
    own = engine is None
    engine = engine or make_engine(url)
    try:
        with engine.connect() as conn:
            is_pg = conn.dialect.name == "postgresql"
            if is_pg:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": LOCK_KEY})
                conn.commit()
            try:
                from alembic import command

                cfg = alembic_config(url)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
                conn.commit()
                return current_revision(conn)
            finally:
                if is_pg:
                    conn.rollback()
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": LOCK_KEY})
                    conn.commit()
    finally:
        if own:
            engine.dispose()
