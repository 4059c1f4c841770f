"""What the build produced, recorded for later stages: `.state/images.json`.

Later stages deploy exactly these references (content-addressed tags, never
`latest`) and check that every pod runs exactly these image IDs.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class ImageRef:
    component: str
    repository: str  # e.g. "todo-backend" or "registry.local:5000/todo-backend"
    tag: str  # content hash of context + Dockerfile + build args
    image_id: str = ""  # "sha256:..." as the engine reports it
    size_bytes: int = 0
    added_bytes: int = 0  # what its own layers add above the base image
    migrations: str = ""  # hash of the database migrations inside (backend), see images.py
    # The registry's manifest digest ("sha256:...") after `inv build --push`: a pod that
    # pulled the image reports it as its imageID (docker-pullable://repo@sha256:...).
    digest: str = ""

    @property
    def ref(self) -> str:
        return f"{self.repository}:{self.tag}"


def images_path(state_dir: Path) -> Path:
    return state_dir / "images.json"


def save_images(state_dir: Path, images: dict[str, ImageRef]) -> None:
    state_dir.mkdir(parents=True, exist_ok=True)
    images_path(state_dir).write_text(
        json.dumps({name: asdict(ref) for name, ref in images.items()}, indent=2)
    )


def load_images(state_dir: Path) -> dict[str, ImageRef]:
    """The last build's images, or {} when nothing was built yet."""
    try:
        data = json.loads(images_path(state_dir).read_text())
    except (OSError, ValueError):
        return {}
    known = set(ImageRef.__dataclass_fields__)
    return {
        name: ImageRef(**{k: v for k, v in fields.items() if k in known})
        for name, fields in data.items()
    }
