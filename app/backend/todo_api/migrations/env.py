"""Alembic environment: uses the connection handed over by todo_api.migrations.upgrade."""

from __future__ import annotations

import warnings

from alembic import context
from sqlalchemy import create_engine

config = context.config
# Batch mode (SQLite) reflects the tables it rebuilds; the case-insensitive username
# index is an expression index, which it cannot reflect and does not need to.
warnings.filterwarnings("ignore", message="Skipped unsupported reflection of expression-based index")


def run() -> None:
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=None, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run()
