"""The app's parts, described once: the two images the workflow builds and the
database it may bundle, with what each stage needs to know about them.

`name` is the workflow's word (images, verify, `--only`); `label` is the
`app.kubernetes.io/component` value the chart gives its pods (and `inv logs`
takes); `workload` is the suffix of its Deployment/StatefulSet/Service name.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    name: str
    label: str
    workload: str
    port: int
    health_path: str = ""
    app_dir: str = ""  # the build context, relative to the source root ("" = not built)
    dockerfile: str = ""  # relative to the source root
    image_name: str = ""  # repository name without registry
    module: str = ""  # the Python package `inv dev` runs
    migrations: str = ""  # its database migrations inside the build context (the Job's key)


BACKEND = Component("backend", "backend", "backend", 8000, "/health", "app/backend",
                    "docker/backend.Dockerfile", "todo-backend", "todo_api",
                    migrations="todo_api/migrations")
FRONTEND = Component("frontend", "frontend", "frontend", 3000, "/healthz", "app/frontend",
                     "docker/frontend.Dockerfile", "todo-frontend", "todo_web")
DATABASE = Component("postgres", "database", "postgres", 5432)

ALL: dict[str, Component] = {c.name: c for c in (BACKEND, FRONTEND, DATABASE)}
BUILT: dict[str, Component] = {name: c for name, c in ALL.items() if c.dockerfile}
BUILT_NAMES: tuple[str, ...] = tuple(BUILT)
BY_LABEL: dict[str, Component] = {c.label: c for c in ALL.values()}
# What `inv logs` can show: each component by its pod label, and the migration Job.
LOG_SOURCES: tuple[str, ...] = (*BY_LABEL, "migrate")
