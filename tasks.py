"""Invoke entry point (`inv --list`). Thin on purpose: the logic is in todo_deploy."""

import atexit
import gc
import sys

from invoke import Collection

# Start-up and exit are most of a no-change `inv build` (~0.4 s). Imports make long-lived
# objects only, which the collector scans again and again while they load: it is off until
# the tasks are defined. On the way out the interpreter collects over every object the
# ~500 modules made (~0.1 s) though nothing of ours needs the collector to be finalized:
# this handler, registered first, runs last and freezes them out of its sight.
atexit.register(gc.freeze)
gc.disable()

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

gc.enable()
