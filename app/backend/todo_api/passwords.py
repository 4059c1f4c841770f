"""argon2id hashing with bounded memory, and the password policy.

Each hash in flight holds `memory_kib` of memory. Hashes run on a dedicated pool of
`concurrency` threads (never the event loop, never the general thread pool), so at most
`concurrency` hashes -- and at most that many malloc arenas holding their buffers --
exist at once, however many sign-ins arrive. A request waits `wait_seconds` at most for
a slot, then gets 503 + Retry-After.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from importlib import resources
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

PASSWORD_MIN = 8
PASSWORD_MAX = 128


class HashingBusy(Exception):
    """No hashing slot became free in time."""


class PasswordHashing:
    def __init__(self, memory_kib: int = 19_456, time_cost: int = 2, concurrency: int = 2,
                 wait_seconds: float = 5) -> None:
        self.hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1,
                                     type=Type.ID)
        self.concurrency = concurrency
        self.wait_seconds = wait_seconds
        self._pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
        self._slots: asyncio.Semaphore | None = None
        self._dummy: str | None = None

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.concurrency)
        try:
            await asyncio.wait_for(self._slots.acquire(), self.wait_seconds)
        except TimeoutError:
            raise HashingBusy from None
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        result: str = await self._run(self.hasher.hash, password)
        return result

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True when it matches. An unknown user is checked against a dummy hash (same cost)."""
        if password_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash("not-a-real-password")
            await self._run(self._verify, self._dummy, password)
            return False
        ok: bool = await self._run(self._verify, password_hash, password)
        return ok

    def needs_rehash(self, password_hash: str) -> bool:
        return self.hasher.check_needs_rehash(password_hash)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@cache
def common_passwords() -> frozenset[str]:
    text = resources.files("todo_api").joinpath("data/common_passwords.txt").read_text()
    return frozenset(line for line in text.splitlines() if line and not line.startswith("#"))


def password_problem(username: str, password: str) -> str | None:
    """Why the password is not acceptable for this username, or None."""
    if len(password) < PASSWORD_MIN:
        return f"must be at least {PASSWORD_MIN} characters"
    if len(password) > PASSWORD_MAX:
        return f"must be at most {PASSWORD_MAX} characters"
    lowered = password.lower()
    if username and username.lower() in lowered and len(lowered) - len(username) < 4:
        return "must not be your username (or your username with a few characters added)"
    if lowered in common_passwords() or lowered.strip("0123456789!") in common_passwords():
        return "is one of the most common passwords; choose one that is harder to guess"
    if len(set(password)) < 3:
        return "must not repeat one or two characters"
    return None
