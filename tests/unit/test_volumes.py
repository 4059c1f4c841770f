"""Only Released pool volumes of deleted namespaces are recycled."""

from tests.volumes import POOL_ROOT, recyclable


def _pv(name: str, phase: str, namespace: str, path: str = "") -> dict:
    return {
        "metadata": {"name": name},
        "spec": {
            "hostPath": {"path": path or str(POOL_ROOT / name)},
            "claimRef": {"namespace": namespace, "name": "data"},
        },
        "status": {"phase": phase},
    }


def test_recycles_only_released_pool_volumes_of_gone_namespaces() -> None:
    volumes = [
        _pv("gone", "Released", "deleted-ns"),
        _pv("live", "Released", "still-here"),
        _pv("bound", "Bound", "deleted-ns"),
        _pv("foreign", "Released", "deleted-ns", path="/srv/data"),
    ]
    chosen = recyclable(volumes, live_namespaces={"still-here", "default"})
    assert [pv["metadata"]["name"] for pv in chosen] == ["gone"]
