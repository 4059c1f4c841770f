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
    context: str = ""  # the build context, relative to the source root ("" = not built)
    # The folders of the context this image is built from, its own first: what its build
    # sends and its tag hashes (so an edit in the other app's folder changes no tag here).
    sources: tuple[str, ...] = ()
    dockerfile: str = ""  # relative to the source root
    image_name: str = ""  # repository name without registry
    module: str = ""  # the Python package `inv dev` runs
    migrations: str = ""  # its database migrations inside the build context (the Job's key)

    @property
    def app_dir(self) -> str:
        """Its own folder (requirements.txt, its package), relative to the source root."""
        return f"{self.context}/{self.sources[0]}" if self.sources else ""

    @property
    def source_dirs(self) -> tuple[str, ...]:
        """Every folder it is built from, relative to the source root."""
        return tuple(f"{self.context}/{source}" for source in self.sources)


# common/ is todo_serving, the code both apps serve with (app/common/README.md).
BACKEND = Component("backend", "backend", "backend", 8000, "/health", context="app",
                    sources=("backend", "common"), dockerfile="docker/backend.Dockerfile",
                    image_name="todo-backend", module="todo_api",
                    migrations="backend/todo_api/migrations")
FRONTEND = Component("frontend", "frontend", "frontend", 3000, "/healthz", context="app",
                     sources=("frontend", "common"), dockerfile="docker/frontend.Dockerfile",
                     image_name="todo-frontend", module="todo_web")
DATABASE = Component("postgres", "database", "postgres", 5432)

ALL: dict[str, Component] = {c.name: c for c in (BACKEND, FRONTEND, DATABASE)}
BUILT: dict[str, Component] = {name: c for name, c in ALL.items() if c.dockerfile}
BUILT_NAMES: tuple[str, ...] = tuple(BUILT)
BY_LABEL: dict[str, Component] = {c.label: c for c in ALL.values()}
# What `inv logs` can show: each component by its pod label, and the migration Job.
LOG_SOURCES: tuple[str, ...] = (*BY_LABEL, "migrate")
