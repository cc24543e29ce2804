"""Shorter JSON schemas for `tools/list`: the same values accepted, fewer characters for every client to read.

pydantic writes a schema for people reading it beside the code: a title for every field (the field's name again),
every default, and ``anyOf: [{type: X}, {type: null}]`` for an optional field. A client validates tool results
against the output schema and a model reads the whole listing on every turn, so the listing keeps only what
validates and what explains: types, required fields, enums, constraints, descriptions, ``$defs``. Input schemas
keep their defaults (they tell the caller what an omitted argument means); output schemas drop them (a result
always carries every field). Field descriptions of output schemas are kept once, at the top level: the models
below them describe the record that `deploy://` resources and the docs explain at length.

The biggest saving is not repeating the deployment record: seven tools return a deployment view, and each spelled
out every step, verdict, event and instance model. ``collapse_nested`` keeps the fields every result certainly
holds and names the rest (``{type: object, title: Step}``); the tools reference prints them in full.
"""

from __future__ import annotations

from typing import Any

OUTPUT_DEPTH = 2
"""Models spelled out field by field below a result's top level (see collapse_nested)."""
SCHEMA_MAPS = frozenset({"properties", "$defs", "patternProperties", "definitions"})
"""Keywords whose value maps names to schemas: the names there are data (a field may be called ``title``)."""
SCHEMA_LISTS = frozenset({"anyOf", "oneOf", "allOf", "prefixItems"})
SCHEMA_VALUES = frozenset({"items", "additionalProperties", "not", "contains", "propertyNames"})


def compact_input(schema: dict[str, Any]) -> dict[str, Any]:
    """An input schema without the titles pydantic repeats; defaults, descriptions and the ``anyOf`` form of an
    optional argument (which the tools reference renders with its constraints) stay."""
    return _compact(schema, drop={"title"}, nullable=False)


def compact_output(schema: dict[str, Any]) -> dict[str, Any]:
    """An output schema that validates the same results: no titles, no defaults, nested descriptions dropped."""
    top = _compact(schema, drop={"title", "default"}, nullable=True)
    for name, definition in top.get("$defs", {}).items():
        top["$defs"][name] = _without_descriptions(definition)
    return top


def _compact(node: Any, *, drop: set[str], nullable: bool) -> Any:
    if isinstance(node, list):
        return [_compact(item, drop=drop, nullable=nullable) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in drop:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _compact(sub, drop=drop, nullable=nullable) for name, sub in value.items()}
        elif key in SCHEMA_LISTS or key in SCHEMA_VALUES:
            out[key] = _compact(value, drop=drop, nullable=nullable)
        else:
            out[key] = value
    return _nullable(out) if nullable else out


def _nullable(node: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [{type: T}, {type: null}]`` as ``type: [T, null]`` when the first branch is a bare type."""
    branches = node.get("anyOf")
    if not isinstance(branches, list) or len(branches) != 2 or {"type": "null"} not in branches:
        return node
    other = branches[0] if branches[1] == {"type": "null"} else branches[1]
    if set(other) - {"type", "enum", "format", "minimum", "maximum", "minLength", "maxLength", "pattern"}:
        return node
    kind = other.get("type")
    if not isinstance(kind, str):
        return node
    merged = {key: value for key, value in node.items() if key != "anyOf"}
    merged.update(other)
    merged["type"] = [kind, "null"]
    if "enum" in other:
        merged["enum"] = [*other["enum"], None]
    return merged


def _without_descriptions(node: Any) -> Any:
    if isinstance(node, list):
        return [_without_descriptions(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "description" and isinstance(value, str):
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: _without_descriptions(sub) for name, sub in value.items()}
        elif isinstance(value, dict | list):
            out[key] = _without_descriptions(value)
        else:
            out[key] = value
    return out


def collapse_nested(schema: dict[str, Any], depth: int) -> dict[str, Any]:
    """The schema with the models a result may lack or repeat named instead of spelled out.

    A model is described field by field when every result certainly holds exactly one of it: reached from the
    top through required fields that are neither nullable nor lists, at most ``depth`` models deep. Any other
    (an optional step, the items of a list, a model deeper down) becomes ``{type: object, title: Model}``: the
    same results validate, the reader knows what it holds and finds its fields in the tools reference, and the
    listing stops repeating the whole deployment record in every tool that returns one.
    """
    definitions: dict[str, Any] = schema.get("$defs", {})
    kept: dict[str, Any] = {}

    def visit(node: Any, level: int, certain: bool) -> Any:
        if isinstance(node, list):
            return [visit(item, level, certain) for item in node]
        if not isinstance(node, dict):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference.startswith("#/$defs/"):
            name = reference.removeprefix("#/$defs/")
            target = definitions.get(name, {})
            if target.get("type") != "object":
                kept.setdefault(name, target)
                return node
            if not certain or level >= depth:
                return {"type": "object", "title": name, **{k: v for k, v in node.items() if k != "$ref"}}
            kept.setdefault(name, None)
            kept[name] = kept[name] or visit(target, level + 1, True)
            return node
        out: dict[str, Any] = {}
        required = set(node.get("required", ()))
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                out[key] = {field: visit(sub, level, certain and field in required) for field, sub in value.items()}
            elif key in ("anyOf", "oneOf", "items", "prefixItems", "additionalProperties"):
                out[key] = visit(value, level, False)
            else:
                out[key] = visit(value, level, certain)
        return out

    top = {key: visit(value, 0, True) for key, value in schema.items() if key != "$defs"}
    if kept:
        top["$defs"] = {name: kept[name] for name in definitions if kept.get(name) is not None}
    return top
