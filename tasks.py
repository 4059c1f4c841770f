"""Invoke entry point (`inv --list`). Thin on purpose: the logic is in todo_deploy."""

from invoke import Collection

from todo_deploy.cli import aiops, core, dev

ns = Collection()
for module in (core, dev, aiops):
    for name in getattr(module, "__all__", None) or dir(module):
        obj = getattr(module, name)
        if getattr(obj, "__module__", "") == module.__name__ and hasattr(obj, "body"):
            ns.add_task(obj)
