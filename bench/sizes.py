"""Image sizes: the bytes each image adds above its base image (layer by layer)."""

from __future__ import annotations

from typing import Any

from bench.common import say, target, write_result
from bench.stack import Stack

TARGET_MB = {"backend": 120, "frontend": 60}


def run(stack: Stack | None = None) -> dict[str, Any]:
    from todo_deploy import images

    stack = stack or Stack("bench-sizes")
    loaded = stack.loaded()
    built = stack.build()  # skipped when the content tag exists
    client = images.engine()
    out: dict[str, Any] = {"images": {}, "targets": []}
    for name, ref in built.items():
        image = client.images.get(ref.ref)
        base_name = images.build_args(loaded.settings)["PYTHON_IMAGE"]
        base = client.images.get(base_name)
        base_layers = set(base.attrs["RootFS"]["Layers"])
        own_layers = [layer for layer in image.attrs["RootFS"]["Layers"] if layer not in base_layers]
        history = [
            {"created_by": (h.get("CreatedBy") or "")[:160], "bytes": int(h.get("Size") or 0)}
            for h in image.history() if int(h.get("Size") or 0) > 0
        ]
        size, base_size = int(image.attrs["Size"]), int(base.attrs["Size"])
        added = size - base_size
        out["images"][name] = {
            "ref": ref.ref, "image_id": image.id, "base": base_name,
            "size_bytes": size, "base_size_bytes": base_size, "added_bytes": added,
            "added_mb": round(added / 1e6, 1), "own_layers": len(own_layers),
            "largest_layers": sorted(history, key=lambda h: -h["bytes"])[:6],
        }
        out["targets"].append(target(f"{name} image adds <= {TARGET_MB[name]} MB above its base",
                                     added / 1e6, TARGET_MB[name], "MB"))
        say(f"{name}: {ref.ref} adds {added / 1e6:.1f} MB above {base_name} "
            f"(total {size / 1e6:.1f} MB)")
    write_result("sizes", out)
    return out
