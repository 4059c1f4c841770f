"""Invoke entry point (`inv --list`). Thin on purpose: the logic is in todo_deploy."""

import sys

from invoke import Collection

# Invoke turns bytecode caching off unless `--write-pyc` is given (so a tasks.py next to
# its .pyc never goes stale). That made every `inv` compile todo_deploy's ~80 modules from
# source again; our package is an ordinary import: give Python back its own setting (-B and
# PYTHONDONTWRITEBYTECODE still turn it off).
sys.dont_write_bytecode = bool(sys.flags.dont_write_bytecode)

from todo_deploy.cli import task_modules, tasks_of

ns = Collection()
for module in task_modules():
    for found in tasks_of(module):
        ns.add_task(found)
