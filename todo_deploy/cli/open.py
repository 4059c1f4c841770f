"""`inv open`: a URL of the app that keeps answering, and the browser on it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from invoke import Context
from invoke.exceptions import Exit

from todo_deploy.cli import load_or_exit, task

if TYPE_CHECKING:
    from todo_deploy.access.app_url import AppUrl


@task(
    name="open",
    help={
        "browser": "Also open the URL in the default web browser.",
        "port": "Local port for a port-forward (default: the first free one from 8080).",
        "forward": "Use a port-forward even when the Service is reachable directly.",
        "stop": "Stop the managed port-forward and forget the URL.",
    },
)
def open_(
    c: Context, browser: bool = False, port: int = 0, forward: bool = False, stop: bool = False
) -> None:
    """Print the app's URL (NodePort/LoadBalancer/minikube, else a lasting port-forward).

    A port-forward runs in the background, picks a Ready pod for each connection
    (so it survives pod restarts) and lasts until `inv open --stop` or `inv down`.
    """
    from todo_deploy.access import app_url
    from todo_deploy.console import say

    loaded = load_or_exit()
    if stop:
        previous = app_url.stop(loaded.state_dir)
        say(f"stopped the port-forward on {previous.url}" if previous and previous.pid
            else "no port-forward was running")
        return
    try:
        app = app_url.ensure(loaded, port=int(port), forward=forward)
    except RuntimeError as exc:
        raise Exit(f"cannot reach the app: {exc}", code=1) from None
    say(f"The app: {app.url}  ({describe(app)})")
    if browser:
        import webbrowser

        if not webbrowser.open(app.url):
            say("no browser could be started here; open the URL yourself")


def describe(app: AppUrl) -> str:
    from todo_deploy.access import REQUESTED

    if app.kind == "port-forward":
        kept = f"pid {app.pid}, kept until `inv open --stop` or `inv down`"
        if app.detail == REQUESTED:
            return f"{REQUESTED}, {kept}"
        return f"port-forward, {kept}; no direct way: {app.detail}"
    return app.detail or app.kind
