"""Validate custom resources strictly against their CRD's openAPIV3Schema.

The API server prunes fields a structural schema does not declare, and with
strict field validation (kubectl's default since 1.27) it rejects them; older
servers (the test cluster is 1.20) silently drop them. `problems()` rejects
them everywhere: every object schema with `properties` and neither
`additionalProperties` nor `x-kubernetes-preserve-unknown-fields` gets
`additionalProperties: false`. The root `metadata` is checked as the ObjectMeta
fields a manifest may set. CEL rules (`x-kubernetes-validations`) are not
evaluated here.
"""

from __future__ import annotations

from typing import Any

_OBJECT_META = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$",
                 "maxLength": 253},
        "namespace": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
                      "maxLength": 63},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["name"],
    "additionalProperties": False,
}


def strict(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON Schema that rejects what the structural schema would prune."""
    out = {k: v for k, v in schema.items() if not k.startswith("x-kubernetes-")
           and k not in ("nullable", "properties", "items", "additionalProperties",
                         "allOf", "anyOf", "oneOf", "not")}
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if "properties" in schema:
        out["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
    if "items" in schema:
        out["items"] = strict(schema["items"])
    for key in ("allOf", "anyOf", "oneOf"):
        if key in schema:
            out[key] = [strict(s) for s in schema[key]]
    if "not" in schema:
        out["not"] = strict(schema["not"])
    additional = schema.get("additionalProperties")
    if isinstance(additional, dict):
        out["additionalProperties"] = strict(additional)
    elif additional is not None:
        out["additionalProperties"] = additional
    elif ("properties" in schema and not schema.get("x-kubernetes-preserve-unknown-fields")
          and not schema.get("x-kubernetes-embedded-resource")):
        out["additionalProperties"] = False
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    return out


def version_schema(crd: dict[str, Any], version: str) -> dict[str, Any] | None:
    """The openAPIV3Schema of a served `version` of `crd`, or None."""
    for entry in crd.get("spec", {}).get("versions", []):
        if entry.get("name") == version and entry.get("served"):
            return (entry.get("schema") or {}).get("openAPIV3Schema")
    return None


def served_versions(crd: dict[str, Any]) -> list[str]:
    return [v["name"] for v in crd.get("spec", {}).get("versions", []) if v.get("served")]


def problems(obj: dict[str, Any], crd: dict[str, Any]) -> list[str]:
    """Why the API server would refuse (or prune) `obj` under `crd`; [] when it fits."""
    from jsonschema import Draft4Validator

    who = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name', '?')}"
    spec = crd.get("spec", {})
    group, _, version = str(obj.get("apiVersion", "")).rpartition("/")
    if group != spec.get("group") or obj.get("kind") != spec.get("names", {}).get("kind"):
        return [(f"{who}: {obj.get('apiVersion')} {obj.get('kind')} is not what "
                f"{crd.get('metadata', {}).get('name')} defines")]
    schema = version_schema(crd, version)
    if schema is None:
        return [(f"{who}: version {version} is not served (served: "
                f"{', '.join(served_versions(crd)) or 'none'})")]
    checked = strict(schema)
    checked.setdefault("properties", {})["metadata"] = _OBJECT_META
    checked["required"] = sorted({*checked.get("required", []), "apiVersion", "kind",
                                  "metadata"})
    found = []
    for error in sorted(Draft4Validator(checked).iter_errors(obj), key=lambda e: list(e.path)):
        where = ".".join(str(p) for p in error.absolute_path) or "(top level)"
        found.append(f"{who}: {where}: {error.message[:300]}")
    return found
