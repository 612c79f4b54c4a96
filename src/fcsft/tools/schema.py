"""Derive a tool's JSON schema from a typed Python function.

The schema is what the model learns the tool from and what every call is validated against,
so it is kept small and plain: no titles, unions of simple types as a `type` list, `Literal`
and `Enum` as `enum`. Types with fields of their own (pydantic models, dataclasses,
TypedDicts) are described by pydantic, their definitions lifted to the top of the schema.
"""

from __future__ import annotations

import collections.abc
import enum
import inspect
import json
import types
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from fcsft.errors import UserError
from fcsft.records import Tool
from fcsft.tools.docstrings import parse_docstring

_SIMPLE: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}
_SEQUENCES = (list, collections.abc.Sequence, collections.abc.Iterable, collections.abc.Collection)
_SETS = (set, frozenset, collections.abc.Set)
_MAPPINGS = (dict, collections.abc.Mapping)


class SchemaProblem(TypeError):
    """A parameter type that has no JSON-schema form."""


def function_spec(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """The `Tool` record that describes `fn`: name, docstring text and a parameters schema.

    A parameter with a default is optional; its default is shown to the model. `**kwargs`
    opens the schema to extra properties; `*args` has no JSON form and is refused.
    """
    tool_name = name or fn.__name__
    doc = parse_docstring(inspect.getdoc(fn))
    try:
        hints = parameter_types(fn)
    except Exception as exc:  # a forward reference that does not resolve
        raise UserError(f"tool {tool_name}: cannot read its type hints: {exc}") from None
    properties: dict[str, Any] = {}
    required: list[str] = []
    definitions: dict[str, Any] = {}
    open_ended = False
    for param in inspect.signature(fn).parameters.values():
        if param.kind is param.VAR_POSITIONAL:
            raise UserError(f"tool {tool_name}: *{param.name} cannot be described to a model")
        if param.kind is param.VAR_KEYWORD:
            open_ended = True
            continue
        try:
            prop = type_schema(hints.get(param.name, Any), definitions)
        except SchemaProblem as exc:
            raise UserError(f"tool {tool_name}, parameter {param.name}: {exc}") from None
        if param.name in doc.params and "description" not in prop:
            prop["description"] = doc.params[param.name]
        if param.default is param.empty:
            required.append(param.name)
        else:
            default = param.default.value if isinstance(param.default, enum.Enum) else param.default
            if _is_json(default):
                prop["default"] = default
        properties[param.name] = prop
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    parameters["additionalProperties"] = open_ended
    if definitions:
        parameters["$defs"] = definitions
    return Tool(name=tool_name, description=doc.description, parameters=parameters)


def type_schema(annotation: Any, definitions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON schema of one type annotation; nested model definitions go into `definitions`."""
    definitions = {} if definitions is None else definitions
    if annotation is Any or annotation is inspect.Parameter.empty or annotation is object:
        return {}
    if annotation is None or annotation is type(None):
        return {"type": "null"}
    if annotation in _SIMPLE:
        return {"type": _SIMPLE[annotation]}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        schema = type_schema(args[0], definitions)
        notes = [meta for meta in args[1:] if isinstance(meta, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if origin is typing.Literal:
        return _enum_schema(list(args))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return _enum_schema([member.value for member in annotation])
    if origin in (typing.Union, types.UnionType):
        return _union_schema([type_schema(arg, definitions) for arg in args])
    if origin is tuple:
        return _tuple_schema(args, definitions)
    if origin in _SETS or annotation in _SETS:
        return {"type": "array", "items": _item(args, definitions), "uniqueItems": True}
    if origin in _MAPPINGS or annotation in _MAPPINGS:
        schema: dict[str, Any] = {"type": "object"}
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = type_schema(args[1], definitions)
        return schema
    if origin in _SEQUENCES or annotation in _SEQUENCES:
        return {"type": "array", "items": _item(args, definitions)}
    return _pydantic_schema(annotation, definitions)


def parameter_types(fn: Callable[..., Any]) -> dict[str, Any]:
    """The resolved annotations of `fn` (string annotations included) by parameter name."""
    target = fn if inspect.isroutine(fn) else type(fn).__call__
    return typing.get_type_hints(target, include_extras=True)


def _enum_schema(values: list[Any]) -> dict[str, Any]:
    kinds = {_json_type(value) for value in values}
    schema: dict[str, Any] = {"enum": values}
    if len(kinds) == 1 and None not in kinds:
        schema = {"type": kinds.pop(), "enum": values}
    return schema


def _json_type(value: Any) -> str | None:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return None


def _union_schema(options: list[dict[str, Any]]) -> dict[str, Any]:
    """`T | None` as a `type` list when every option is a bare type, otherwise `anyOf`."""
    if any(not option for option in options):
        return {}  # one option accepts anything, so the union does
    if all(set(option) == {"type"} and isinstance(option["type"], str) for option in options):
        kinds = list(dict.fromkeys(option["type"] for option in options))
        return {"type": kinds if len(kinds) > 1 else kinds[0]}
    return {"anyOf": options}


def _tuple_schema(args: tuple[Any, ...], definitions: dict[str, Any]) -> dict[str, Any]:
    if not args or (len(args) == 2 and args[1] is Ellipsis):
        return {"type": "array", "items": _item(args[:1], definitions)}
    items = [type_schema(arg, definitions) for arg in args]
    return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}


def _item(args: tuple[Any, ...], definitions: dict[str, Any]) -> dict[str, Any]:
    return type_schema(args[0], definitions) if args else {}


def _pydantic_schema(annotation: Any, definitions: dict[str, Any]) -> dict[str, Any]:
    """Models, dataclasses and TypedDicts: pydantic knows their fields better than we would."""
    try:
        schema = TypeAdapter(annotation).json_schema(ref_template="#/$defs/{model}")
    except Exception as exc:
        raise SchemaProblem(f"{annotation!r} has no JSON-schema form ({exc})") from None
    for name, definition in schema.pop("$defs", {}).items():
        definitions[name] = _without_titles(definition)
    return _without_titles(schema)


_SCHEMA_MAPS = ("properties", "$defs", "patternProperties")
_SCHEMA_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_SCHEMA_VALUES = ("items", "additionalProperties", "not")


def _without_titles(schema: Any) -> Any:
    """pydantic titles every model and field; the names already say it, so they go."""
    if not isinstance(schema, dict):
        return schema
    out = {key: value for key, value in schema.items() if key != "title"}
    for key in _SCHEMA_MAPS:
        if isinstance(out.get(key), dict):
            out[key] = {name: _without_titles(sub) for name, sub in out[key].items()}
    for key in _SCHEMA_LISTS:
        if isinstance(out.get(key), list):
            out[key] = [_without_titles(sub) for sub in out[key]]
    for key in _SCHEMA_VALUES:
        if key in out:
            out[key] = _without_titles(out[key])
    return out


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True
