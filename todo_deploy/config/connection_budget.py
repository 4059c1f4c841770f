"""PostgreSQL connections: what the release can open at most, against what the database allows.

Each backend process holds two pools of DB_POOL_SIZE connections (SQLAlchemy's for the
request path, psycopg's for the task list pages) and one for its readiness probe. A
rollout surges to twice the replicas (the chart's rollout.maxSurge, 100%) before the old
pods go, so for a moment every pod of both ReplicaSets holds its pools. Past the
database's max_connections a new connection is refused ("too many clients already"): the
surge's pods fail readiness and the rollout stalls, or requests fail at random. The
settings are refused before that can happen, naming the knob to turn.
"""

from __future__ import annotations

from dataclasses import dataclass

POOLS_PER_BACKEND = 2  # todo_api: Database (SQLAlchemy) and TaskPages (psycopg_pool)
PROBE_CONNECTIONS = 1  # todo_api.readiness: one connection of its own, while it probes
SURGE_FACTOR = 2  # the chart's rollout.maxSurge: 100%
# The migration Job, one exec'd script (verify's cleanup) and PostgreSQL's
# superuser_reserved_connections (3), which ordinary roles cannot use.
OTHER_CONNECTIONS = 1 + 1 + 3


@dataclass(frozen=True)
class Budget:
    backend_replicas: int
    pool_size: int
    max_connections: int

    @property
    def per_pod(self) -> int:
        return POOLS_PER_BACKEND * self.pool_size + PROBE_CONNECTIONS

    @property
    def pods(self) -> int:
        return SURGE_FACTOR * self.backend_replicas

    @property
    def needed(self) -> int:
        return self.pods * self.per_pod + OTHER_CONNECTIONS

    def largest_pool(self) -> int:
        """The largest DB_POOL_SIZE that fits with these replicas (0: none does)."""
        per_pod = (self.max_connections - OTHER_CONNECTIONS) // self.pods
        return max((per_pod - PROBE_CONNECTIONS) // POOLS_PER_BACKEND, 0)

    def most_replicas(self) -> int:
        """The most BACKEND_REPLICAS that fit with this pool size (0: none does)."""
        return max((self.max_connections - OTHER_CONNECTIONS) // (SURGE_FACTOR * self.per_pod), 0)

    def problem(self) -> str | None:
        """None when the release fits, else one sentence: the arithmetic and the knobs."""
        if self.needed <= self.max_connections:
            return None
        knobs = [f"raise DATABASE_MAX_CONNECTIONS to {self.needed}"]
        if self.largest_pool() >= 1:
            knobs.insert(0, f"lower DB_POOL_SIZE to {self.largest_pool()}")
        if self.most_replicas() >= 1:
            knobs.insert(0, f"lower BACKEND_REPLICAS to {self.most_replicas()}")
        return (
            f"BACKEND_REPLICAS={self.backend_replicas} with DB_POOL_SIZE={self.pool_size} can open "
            f"{self.needed} PostgreSQL connections ({self.pods} backend pods during a rollout x "
            f"{self.per_pod} each, + {OTHER_CONNECTIONS} for the migration, scripts and the "
            f"superuser's reserve), over DATABASE_MAX_CONNECTIONS={self.max_connections}: "
            + ", or ".join(knobs)
        )
