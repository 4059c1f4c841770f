"""Invoke entry point (`inv --list`). Thin on purpose: the logic is in todo_deploy."""

from invoke import Collection

from todo_deploy.cli import aiops, bench, build, cluster, core, deploy, dev, docs, lint, up, verify

ns = Collection()
for module in (up, build, cluster, deploy, aiops, verify, docs, core, lint, dev, bench):
    for name in dir(module):
        obj = getattr(module, name)
        if getattr(obj, "__module__", "") == module.__name__ and hasattr(obj, "body"):
            ns.add_task(obj)
