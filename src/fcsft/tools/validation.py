"""Check values against a JSON schema and say, in words a model can act on, what is wrong."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError

from fcsft.errors import UserError


class SchemaChecker:
    """A compiled validator for one schema (compiling once matters: a tool is called often)."""

    def __init__(self, schema: dict[str, Any], owner: str):
        try:
            Draft202012Validator.check_schema(schema)
        except SchemaError as exc:
            where = "/".join(str(part) for part in exc.path) or "the top level"
            raise UserError(
                f"{owner}: its JSON schema is invalid at {where}: {exc.message}"
            ) from None
        self._validator = Draft202012Validator(schema)

    def problems(self, value: Any) -> list[str]:
        """Every violation, prefixed by where it is (`items[2].name: ...`), in a stable order."""
        return [message for _, message in self.violations(value)]

    def violations(self, value: Any) -> list[tuple[str, str]]:
        """Like `problems`, each paired with the schema keyword that failed (`required`, `type`,
        `enum`, ...), so validation can tell a missing parameter from a wrong type."""
        errors = sorted(
            self._validator.iter_errors(value), key=lambda error: list(map(str, error.path))
        )
        return [(error.validator, _describe(error)) for error in map(_most_specific, errors)]


@lru_cache(maxsize=4096)
def _checker(schema_json: str) -> SchemaChecker:
    return SchemaChecker(json.loads(schema_json), "tool")


def argument_problems(parameters: dict[str, Any], arguments: Any) -> list[tuple[str, str]]:
    """(kind, message) for everything wrong with a call's arguments: each JSON-schema violation
    under the keyword that failed, and `unknown` for a parameter the schema does not declare
    (unless it allows `additionalProperties`: a model that invents a parameter has not read
    the tool, whatever JSON schema's default says)."""
    found = _checker(json.dumps(parameters, sort_keys=True)).violations(arguments)
    if isinstance(arguments, dict) and not parameters.get("additionalProperties"):
        allowed = parameters.get("properties", {})
        found += [
            ("unknown", f"no parameter {name!r}") for name in arguments if name not in allowed
        ]
    return found


def _most_specific(error: ValidationError) -> ValidationError:
    """For anyOf/oneOf, the branch that got furthest: "'start' is a required property" says more
    than "is not valid under any of the given schemas", and more than "is not of type 'null'"."""
    while error.context:
        deepest = max(
            error.context, key=lambda sub: (len(sub.absolute_path), sub.validator != "type")
        )
        if deepest.validator == "type" and len(deepest.absolute_path) == len(error.absolute_path):
            kinds = [sub.validator_value for sub in error.context if sub.validator == "type"]
            error.message = f"{error.instance!r} is not of type {' or '.join(map(repr, kinds))}"
            return error
        error = deepest
    return error


def _describe(error: ValidationError) -> str:
    path, message = error.absolute_path, error.message
    where = ""
    for part in path:
        where += f"[{part}]" if isinstance(part, int) else (f".{part}" if where else str(part))
    return f"{where}: {message}" if where else message
