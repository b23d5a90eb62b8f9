"""The JSON a station sends the gateway, described for the OpenAPI document: each record
type's JSON Schema, derived from its Avro schema (the ``.avsc`` files are the truth).

Timestamps are ISO-8601 strings with an offset (or epoch milliseconds), dates
``YYYY-MM-DD``, as ``ingest.jsonl`` reads them.
"""

from __future__ import annotations

from typing import Any

from schemas import default_registry

_PRIMITIVES = {"string": {"type": "string"}, "boolean": {"type": "boolean"},
               "int": {"type": "integer"}, "long": {"type": "integer"},
               "double": {"type": "number"}, "float": {"type": "number"}}  # fmt: skip


def _convert(schema: Any, named: dict[str, dict[str, Any]]) -> dict[str, Any]:
    if isinstance(schema, list):
        options = [s for s in schema if s != "null"]
        inner = _convert(options[0], named) if len(options) == 1 else {
            "anyOf": [_convert(s, named) for s in options]}
        return {"anyOf": [inner, {"type": "null"}]} if "null" in schema else inner
    if isinstance(schema, str):
        if schema in _PRIMITIVES:
            return dict(_PRIMITIVES[schema])
        return dict(named.get(schema) or named.get(schema.rsplit(".", 1)[-1], {}))
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        return {"type": "string", "format": "date-time",
                "description": "ISO-8601 with an offset (…Z, …+08:00), or epoch milliseconds"}
    if logical == "date":
        return {"type": "string", "format": "date"}
    kind = schema["type"]
    if kind == "enum":
        out: dict[str, Any] = {"type": "string", "enum": list(schema["symbols"])}
    elif kind == "array":
        out = {"type": "array", "items": _convert(schema["items"], named)}
    elif kind == "record":
        out = {"type": "object", "additionalProperties": False, "properties": {},
               "required": []}  # fmt: skip
        for f in schema["fields"]:
            prop = _convert(f["type"], named)
            if f.get("doc"):
                extra = prop.get("description")
                prop = {**prop, "description": f["doc"] + (f" As JSON: {extra}." if extra
                                                          else "")}
            out["properties"][f["name"]] = prop
            if "default" not in f:
                out["required"].append(f["name"])
    else:
        return _convert(kind, named)
    if "name" in schema:
        named[schema["name"]] = out
        named[f"{schema.get('namespace', '')}.{schema['name']}"] = out
    if schema.get("doc") and kind != "record":
        out["description"] = schema["doc"]
    return out


def record_json_schema(record_type: str) -> dict[str, Any]:
    """The JSON Schema of one ``record_type`` record as the gateway accepts it."""
    avro = default_registry().current(record_type).schema
    out = _convert(avro, {})
    out["title"] = avro["name"]
    if avro.get("doc"):
        out["description"] = avro["doc"]
    return out
