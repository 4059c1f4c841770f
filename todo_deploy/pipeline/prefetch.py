"""What `inv up`'s cluster and deploy stages would do first, done while the image build
waits on the engine: their modules imported, and the raw path's manifests rendered into
the render cache for the images being built. (`inv up --helm` renders through the Helm
engine in its stage; nothing of it is cached, so nothing is prefetched.)

Reads and a cache only: nothing is applied, no gate is judged early. Each stage still
runs after the gate before it passed, and finds the work done (or, when the prefetch
failed or the build made something else, does it itself). The build spends ~1 s waiting
on the engine; the cluster stage's render and the imports were ~0.15 s of an edit's path
to its rollout (bench/RESULTS.md).
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from todo_deploy.access import live_node_port
from todo_deploy.artifacts import load_images
from todo_deploy.chart import manifests
from todo_deploy.kube import Kube

if TYPE_CHECKING:
    from todo_deploy.artifacts import ImageRef
    from todo_deploy.config import LoadedSettings


class Prefetch:
    """One worker thread; each image the build plans queues a render of the manifests
    with every image planned so far (with two images to build, the render made during
    the first build is of no use; the one during the second is the deploy's)."""

    def __init__(self, loaded: LoadedSettings) -> None:
        self.loaded = loaded
        self.planned: dict[str, ImageRef] = {}
        self.requests: queue.SimpleQueue[dict[str, ImageRef] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.errors: list[BaseException] = []

    def planned_image(self, image: ImageRef) -> None:
        """The build's `on_planned`."""
        self.planned[image.component] = image
        self.requests.put(dict(self.planned))
        if self.thread is None:
            self.thread = threading.Thread(target=self._work, name="prefetch", daemon=True)
            self.thread.start()

    def wait(self, timeout: float = 30.0) -> None:
        """Before the next stage: the prefetch has finished (it never outlives its use)."""
        if self.thread is not None:
            self.requests.put(None)
            self.thread.join(timeout)
            self.thread = None

    def _work(self) -> None:
        while True:
            planned = self.requests.get()
            if planned is None:
                return
            try:
                self._prepare(planned)
            except Exception as exc:  # noqa: BLE001 - the stages meet it again and report it
                self.errors.append(exc)

    def _prepare(self, planned: dict[str, ImageRef]) -> None:
        settings = self.loaded.settings
        images = {**load_images(self.loaded.state_dir), **planned}
        kube = Kube(settings.context_name)
        node_port = live_node_port(kube, settings)
        manifests.render_manifests(settings, images, node_port, cache_dir=self.loaded.state_dir,
                                   capabilities=kube.capabilities())
