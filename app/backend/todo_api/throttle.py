"""Sign-in and sign-up throttling: fixed windows of counted hits per key, in the database
(so every replica sees the same counts and a restart forgets nothing).

Keys: `user:<lower-case username>` (failed sign-ins), `addr:<client address>` (failed
sign-ins), `signup:<client address>` (sign-up attempts).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import case, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection

from todo_api.models import auth_throttle, utcnow


def user_key(username: str) -> str:
    return "user:" + username.lower()[:80]


def addr_key(address: str) -> str:
    return "addr:" + address[:80]


def signup_key(address: str) -> str:
    return "signup:" + address[:80]


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)  # SQLite hands back naive datetimes


@dataclass(frozen=True)
class Throttle:
    window_seconds: int

    async def retry_after(self, conn: AsyncConnection, limits: dict[str, int]) -> int | None:
        """Seconds until every key in `limits` ({key: max hits per window}) is under its limit, or None."""
        now = utcnow()
        rows = (await conn.execute(
            select(auth_throttle.c.key, auth_throttle.c.window_start, auth_throttle.c.hits)
            .where(auth_throttle.c.key.in_(list(limits)))
        )).all()
        wait = 0.0
        for key, start, hits in rows:
            ends = _aware(start) + timedelta(seconds=self.window_seconds)
            if hits >= limits[key] and ends > now:
                wait = max(wait, (ends - now).total_seconds())
        return max(1, math.ceil(wait)) if wait > 0 else None

    async def hit(self, conn: AsyncConnection, key: str) -> None:
        now = utcnow()
        expired = auth_throttle.c.window_start < now - timedelta(seconds=self.window_seconds)
        insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        stmt = insert(auth_throttle).values(key=key, window_start=now, hits=1)
        stmt = stmt.on_conflict_do_update(
            index_elements=[auth_throttle.c.key],
            set_={
                "hits": case((expired, 1), else_=auth_throttle.c.hits + 1),
                "window_start": case((expired, now), else_=auth_throttle.c.window_start),
            },
        )
        await conn.execute(stmt)

    async def clear(self, conn: AsyncConnection, key: str) -> None:
        await conn.execute(delete(auth_throttle).where(auth_throttle.c.key == key))
