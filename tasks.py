"""Invoke entry point (`inv --list`). Thin on purpose: the logic is in todo_deploy."""

from invoke import Collection

from todo_deploy.cli import task_modules, tasks_of

ns = Collection()
for module in task_modules():
    for found in tasks_of(module):
        ns.add_task(found)
