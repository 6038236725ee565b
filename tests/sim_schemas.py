"""JSON schemas and a small checker shared by the simulated provider's tests."""

from __future__ import annotations

from typing import Any

LISTING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 10, "maxLength": 40},
        "condition": {"type": "string", "enum": ["new", "used", "refurbished"]},
        "price": {"type": "number", "minimum": 1, "maximum": 500},
        "stock": {"type": "integer", "minimum": 0, "exclusiveMaximum": 10},
        "bullets": {"type": "array", "items": {"type": "string", "maxLength": 60}, "maxItems": 3},
        "dimensions": {"$ref": "#/$defs/dimensions"},
        "variants": {
            "type": "array",
            "minItems": 1,
            "maxItems": 2,
            "items": {
                "type": "object",
                "properties": {
                    "color": {"type": "string", "maxLength": 12},
                    "sku": {"anyOf": [{"type": "string", "maxLength": 9}, {"type": "null"}]},
                },
                "required": ["color", "sku"],
                "additionalProperties": False,
            },
        },
        "kind": {"const": "listing"},
    },
    "required": ["title", "condition", "price", "stock", "bullets", "dimensions", "variants"],
    "additionalProperties": False,
    "$defs": {
        "dimensions": {
            "type": "object",
            "properties": {"width_cm": {"type": "number", "exclusiveMinimum": 0, "maximum": 80}},
            "required": ["width_cm"],
            "additionalProperties": False,
        }
    },
}


def schema_errors(value: Any, schema: Any, root: dict[str, Any], at: str = "$") -> list[str]:
    """A tiny JSON Schema checker for the keywords the simulator promises to honour."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[-1]]
    if "anyOf" in schema:
        ok = any(not schema_errors(value, b, root, at) for b in schema["anyOf"])
        return [] if ok else [f"{at}: no anyOf branch"]
    if "const" in schema and value != schema["const"]:
        return [f"{at}: not {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{at}: {value!r} not in enum"]
    types = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
    kind = schema.get("type")
    if kind in ("number", "integer"):
        if isinstance(value, bool) or not isinstance(
            value, int if kind == "integer" else int | float
        ):
            return [f"{at}: not {kind}"]
        low, high = schema.get("minimum", -1e18), schema.get("maximum", 1e18)
        x_low, x_high = schema.get("exclusiveMinimum", -1e18), schema.get("exclusiveMaximum", 1e18)
        if not (low <= value <= high and x_low < value < x_high):
            return [f"{at}: {value} out of bounds"]
        return []
    if kind in types and not isinstance(value, types[kind]):
        return [f"{at}: not {kind}"]
    errors: list[str] = []
    length = (schema.get("minLength", 0), schema.get("maxLength", 10**9))
    if isinstance(value, str) and not length[0] <= len(value) <= length[1]:
        errors.append(f"{at}: length {len(value)}")
    if isinstance(value, list):
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", 10**9):
            errors.append(f"{at}: {len(value)} items")
        for i, item in enumerate(value):
            errors += schema_errors(item, schema.get("items", {}), root, f"{at}[{i}]")
    if isinstance(value, dict):
        props = schema.get("properties", {})
        errors += [f"{at}: missing {k}" for k in schema.get("required", []) if k not in value]
        if schema.get("additionalProperties") is False:
            errors += [f"{at}: extra {k}" for k in value if k not in props]
        for key, item in value.items():
            if key in props:
                errors += schema_errors(item, props[key], root, f"{at}.{key}")
    return errors


def json_schema_format(schema: dict[str, Any]) -> Any:
    """An OpenAI response_format asking for this schema."""
    return {"type": "json_schema", "json_schema": {"name": "out", "schema": schema, "strict": True}}
