"""Invoke entry point: `inv --list`. Thin on purpose; the logic is in todo_deploy."""

from invoke import Collection

from todo_deploy.cli import core

ns = Collection()
for module in (core,):
    for task_obj in module.__dict__.values():
        if hasattr(task_obj, "body") and getattr(task_obj, "__module__", "") == module.__name__:
            ns.add_task(task_obj)
