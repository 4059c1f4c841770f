"""The PostgreSQL connection budget: the settings and the chart refuse a release whose backend
pods can open more connections than the database allows, and say which knob to turn."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from todo_deploy import helm
from todo_deploy.chart import values as chart_values
from todo_deploy.config import Settings
from todo_deploy.config.connection_budget import Budget

ENGINE = helm.embedded()


def template(values: dict[str, Any]) -> list[dict[str, Any]]:
    return ENGINE.template(chart_values.CHART_DIR, "todo-chatbot", "todo", values)


def test_the_defaults_fit_with_a_rollouts_surge() -> None:
    budget = Budget(backend_replicas=2, pool_size=10, max_connections=100)
    assert budget.per_pod == 21  # two pools of 10 and the readiness probe's own
    assert budget.pods == 4  # 2 replicas, doubled while a rollout surges
    assert budget.needed == 89
    assert budget.problem() is None


def test_three_replicas_are_refused_with_knobs_that_each_fit() -> None:
    budget = Budget(backend_replicas=3, pool_size=10, max_connections=100)
    problem = budget.problem()
    assert problem is not None
    assert "can open 131 PostgreSQL connections" in problem
    assert "6 backend pods during a rollout x 21 each" in problem
    assert problem.endswith("lower BACKEND_REPLICAS to 2, or lower DB_POOL_SIZE to 7, "
                            "or raise DATABASE_MAX_CONNECTIONS to 131")
    # each suggestion, taken alone, fits; one step past it does not
    assert Budget(2, 10, 100).problem() is None and Budget(3, 7, 100).problem() is None
    assert Budget(3, 8, 100).problem() is not None
    assert Budget(3, 10, 131).problem() is None and Budget(3, 10, 130).problem() is not None


def test_a_limit_no_replica_count_fits_names_only_the_limit() -> None:
    problem = Budget(backend_replicas=20, pool_size=100, max_connections=10).problem()
    assert problem is not None and "BACKEND_REPLICAS to" not in problem and "DB_POOL_SIZE to" not in problem
    assert "raise DATABASE_MAX_CONNECTIONS to" in problem


def test_settings_refuse_what_does_not_fit_and_accept_a_stated_larger_limit() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(backend_replicas=3)
    assert "lower BACKEND_REPLICAS to 2" in str(caught.value)
    Settings(backend_replicas=3, database_max_connections=200)
    Settings(backend_replicas=3, db_pool_size=7)


def test_the_chart_gets_the_pool_size_and_the_bundled_databases_limit() -> None:
    from todo_deploy.artifacts import ImageRef

    settings = Settings(backend_replicas=3, database_max_connections=200, db_pool_size=9)
    images = {c: ImageRef(c, f"todo-{c}", "0123456789ab") for c in ("backend", "frontend")}
    objects = template(chart_values.helm_values(settings, images))
    config = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config["data"]["DB_POOL_SIZE"] == "9"
    postgres = next(o for o in objects if o["kind"] == "StatefulSet")
    assert postgres["spec"]["template"]["spec"]["containers"][0]["args"] == ["-c", "max_connections=200"]


@pytest.mark.parametrize("values", [
    {"backend": {"replicaCount": 3}},
    {"backend": {"autoscaling": {"enabled": True, "maxReplicas": 5}}},
    {"config": {"dbPoolSize": 30}},
])
def test_the_chart_refuses_a_bundled_release_over_the_limit(values: dict[str, Any]) -> None:
    with pytest.raises(Exception, match=r"PostgreSQL connections .* over database.maxConnections=100"):
        template(values)
    template({**values, "database": {"maxConnections": 1000}})  # stated larger: renders
