"""JSON Schema for the HTTP intake's OpenAPI docs, generated from the Avro schemas (the only definition of a field).

The API validates requests with :mod:`schemas.validation` (so errors name the event field, e.g.
``payload.quantity.value``); these schemas only *describe* the same shapes for people and client generators:
Avro types, ``doc`` strings, defaults, enums and the project's ``ocop.*`` constraints become JSON Schema keywords.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from schemas import codec
from schemas.events import payload_schemas
from schemas.validation import _named_types  # the resolved named types of a top-level schema

_PRIMITIVES = {"string": {"type": "string"}, "int": {"type": "integer", "format": "int32"},
               "long": {"type": "integer", "format": "int64"}, "double": {"type": "number"},
               "float": {"type": "number"}, "boolean": {"type": "boolean"}, "null": {"type": "null"},
               "bytes": {"type": "string", "format": "byte"}}
_CHECKS = {
    "uuid": {"format": "uuid"},
    "datetime": {"format": "date-time", "description": "ISO 8601 with a UTC offset, e.g. 2026-11-20T07:30:00+07:00"},
    "date": {"format": "date"},
    "gtin": {"pattern": r"^(\d{8}|\d{12,14})$", "description": "GTIN-8/12/13/14 with a valid check digit"},
    "lot": {"pattern": r"""^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$""",
            "description": "GS1 AI 10 lot: 1-20 characters of the GS1 set"},
    "code": {"minLength": 1, "maxLength": 64},
    "text": {"minLength": 1, "maxLength": 500},
}

ENVELOPE_FIELDS: dict[str, dict] = {
    "event_id": {"type": "string", "format": "uuid",
                 "description": "Idempotency key: a retry with the same id and body returns the same answer and "
                                "produces one event; the same id with another body is 409. Generated if absent."},
    "occurred_at": {"type": "string", "description": "When it happened (ISO 8601 with offset; a time without offset "
                                                     "is local, Asia/Ho_Chi_Minh). Default: now."},
    "facility": {"type": "string", "description": "Where it happened: facility / read point id."},
    "user": {"type": "string", "description": "The person or device recording it."},
    "actor": {"type": "object", "properties": {"subject_id": {"type": "string"}, "user": {"type": "string"}},
              "additionalProperties": False,
              "description": "Optional; must be the token's own subject (403 otherwise)."},
}


def _with_checks(schema: dict, field: dict) -> dict:
    out = dict(schema)
    check = field.get("ocop.check")
    if check in _CHECKS:
        extra = dict(_CHECKS[check])
        desc = extra.pop("description", None)
        out.update(extra)
        if desc:
            out["description"] = desc
    if "ocop.min" in field:
        out["minimum"] = field["ocop.min"]
    if "ocop.max" in field:
        out["maximum"] = field["ocop.max"]
    return out


class _Converter:
    def __init__(self, top: str):
        self.named = _named_types(top)

    def resolve(self, s: Any, ns: str) -> Any:
        if isinstance(s, str) and s not in _PRIMITIVES:
            return self.named.get(s) or self.named[f"{ns}.{s}"]
        return s

    def convert(self, s: Any, ns: str, field: dict | None = None) -> dict:
        s = self.resolve(s, ns)
        field = field or {}
        if isinstance(s, list):
            branches = [self.convert(b, ns, field) for b in s]
            non_null = [b for b in branches if b.get("type") != "null"]
            if len(non_null) == 1 and len(branches) == 2:
                return {"anyOf": [non_null[0], {"type": "null"}]}
            return {"anyOf": branches}
        if isinstance(s, str):
            return _with_checks(_PRIMITIVES[s], field)
        t = s["type"]
        if t == "record":
            return self.record(s)
        if t == "enum":
            out: dict = {"type": "string", "enum": list(s["symbols"])}
            if s.get("doc"):
                out["description"] = s["doc"]
            return out
        if t == "array":
            out = {"type": "array", "items": self.convert(s["items"], ns)}
            if "ocop.minlen" in field:
                out["minItems"] = field["ocop.minlen"]
            return out
        if t == "map":
            return {"type": "object", "additionalProperties": self.convert(s["values"], ns)}
        return self.convert(t, ns, field)

    def record(self, s: dict) -> dict:
        ns = s.get("_ns") or s.get("namespace", "")
        props: dict[str, dict] = {}
        required = []
        for f in s["fields"]:
            p = self.convert(f["type"], ns, f)
            if f.get("doc"):
                p = {**p, "description": f["doc"]}
            if "default" in f:
                p = {**p, "default": f["default"]}
            else:
                required.append(f["name"])
            props[f["name"]] = p
        out: dict = {"type": "object", "title": s["name"], "properties": props, "additionalProperties": False}
        if required:
            out["required"] = required
        if s.get("doc"):
            out["description"] = s["doc"]
        return out


@lru_cache(maxsize=None)
def payload_json_schema(event_type: str) -> dict:
    """The JSON Schema of one payload type, from its .avsc."""
    name = payload_schemas()[event_type]
    conv = _Converter(codec.EVENT)
    return conv.record(conv.named[name])


def request_json_schema(event_type: str, *, supply: bool) -> dict:
    """An intake request: the payload's fields plus the optional envelope fields."""
    body = payload_json_schema(event_type)
    props = dict(body["properties"])
    for k, v in ENVELOPE_FIELDS.items():
        props.setdefault(k, v)
    if supply:
        props.setdefault("subject_id", {"type": "string", "description": "Optional; must be the token's subject."})
    return {**body, "properties": props}
