"""BFCL's executable multi-turn API classes as a stateful tool set for the agent loop.

An environment holds one instance of each class an item involves (file system, trading bot,
travel booking, messaging, vehicle control, ...), each loaded from the item's
`initial_config` with its `_load_scenario` (long-context items load the long variant), the
way BFCL's own executor builds them. Every public method of an instance is a tool; when two
classes have a method of the same name the later class in `involved_classes` wins, as in
BFCL. A call runs the method on the instance, so it changes the state later calls see.

A result becomes the observation the way BFCL's executor renders it: a string as it is, a
dict as JSON (falling back to `str`), anything else `str`; an exception becomes
`Error during execution: ...` (marked an error), as does a result dict with an `error` key.

`state()` is what BFCL's state check compares: each instance's attributes whose names do not
start with "_"; `state_json()` is the same as JSON, for a record (see `plain`).

A tool's schema comes from BFCL's own description of the method (`function_docs`, the files
BFCL shows the model), read into the OpenAI form that evaluation shows (`specs`).
"""

from __future__ import annotations

import copy
import importlib
import inspect
import json
from collections.abc import Iterable
from typing import Any

from fcsft.benchmarks import bfcl
from fcsft.errors import UserError
from fcsft.jsonl import read_jsonl
from fcsft.records import Tool
from fcsft.tools.result import ToolResult


def _backend() -> Any:
    try:
        from bfcl_eval.constants import executable_backend_config
    except ImportError as exc:
        raise UserError(f"BFCL multi-turn needs the bfcl-eval package: {bfcl.INSTALL}") from exc
    return executable_backend_config


def known_classes() -> list[str]:
    """The API classes bfcl-eval ships, by the names its items use."""
    return sorted(_backend().CLASS_FILE_PATH_MAPPING)


def function_docs(classes: Iterable[str]) -> list[dict[str, Any]]:
    """BFCL's descriptions of the methods of these classes, in class order."""
    from bfcl_eval.constants.executable_backend_config import MULTI_TURN_FUNC_DOC_FILE_MAPPING

    folder = bfcl.data_dir() / "multi_turn_func_doc"
    return [
        doc
        for class_name in classes
        for doc in read_jsonl(folder / MULTI_TURN_FUNC_DOC_FILE_MAPPING[class_name])
    ]


def specs(docs: Iterable[dict[str, Any]]) -> dict[str, Tool]:
    """The tool records of these descriptions by name, as evaluation shows them."""
    return {
        tool["function"]["name"]: Tool(
            name=tool["function"]["name"],
            description=tool["function"]["description"],
            parameters=tool["function"]["parameters"],
        )
        for tool in map(bfcl.openai_tool, docs)
    }


def plain(value: Any) -> Any:
    """`value` as JSON: mappings and sequences item by item (a set sorted), an object as its
    attributes whose names do not start with "_" (a reference back to an object that holds it,
    such as a directory's parent, left out), anything else not JSON as its text."""
    return _plain(value, ())


_HOLDER = object()
"""What `_plain` gives for a reference back to an object holding it: left out by the caller."""


def _plain(value: Any, holders: tuple[int, ...]) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if id(value) in holders:
        return _HOLDER
    inside = (*holders, id(value))
    if isinstance(value, list | tuple | set | frozenset):
        items = [item for item in (_plain(v, inside) for v in value) if item is not _HOLDER]
        return sorted(items, key=json.dumps) if isinstance(value, set | frozenset) else items
    if isinstance(value, dict):
        pairs = value.items()
    elif hasattr(value, "__dict__"):
        pairs = ((k, v) for k, v in vars(value).items() if not k.startswith("_"))
    else:
        return str(value)
    out = {str(k): _plain(v, inside) for k, v in pairs}
    return {k: v for k, v in out.items() if v is not _HOLDER}


def observation(value: Any) -> str:
    """A method's return value as BFCL's executor writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        try:
            return json.dumps(value)
        except (TypeError, ValueError):
            return str(value)
    return str(value)


class Method:
    """One public method of an instance, as a tool of the agent loop."""

    def __init__(self, spec: Tool, bound: Any):
        self.spec = spec
        self.bound = bound

    def call(self, arguments: dict[str, Any]) -> ToolResult:
        try:
            value = self.bound(**arguments)
        except Exception as exc:  # the method's own failure is the model's observation
            return ToolResult.failure(f"Error during execution: {exc}")
        return ToolResult(observation(value), error=isinstance(value, dict) and "error" in value)

    async def run(self, arguments: dict[str, Any]) -> ToolResult:
        return self.call(arguments)


class Environment:
    """The instances of one item, loaded from its initial configuration."""

    def __init__(
        self,
        involved_classes: Iterable[str],
        initial_config: dict[str, Any],
        *,
        long_context: bool = False,
        specs: dict[str, Tool] | None = None,
    ):
        backend = _backend()
        self.instances: dict[str, Any] = {}
        self.methods: dict[str, Method] = {}
        for class_name in involved_classes:
            module = importlib.import_module(backend.CLASS_FILE_PATH_MAPPING[class_name])
            instance = getattr(module, class_name)()
            if class_name not in backend.STATELESS_CLASSES:
                config = copy.deepcopy(initial_config.get(class_name, {}))
                instance._load_scenario(config, long_context=long_context)
            self.instances[class_name] = instance
            for name, bound in inspect.getmembers(instance, predicate=inspect.ismethod):
                if not name.startswith("_"):
                    spec = (specs or {}).get(name) or Tool(name=name)
                    self.methods[name] = Method(spec, bound)

    def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        method = self.methods.get(name)
        if method is None:
            return ToolResult.failure(f"Error during execution: name {name!r} is not defined")
        return method.call(arguments)

    def state(self) -> dict[str, dict[str, Any]]:
        return {
            class_name: {k: v for k, v in vars(instance).items() if not k.startswith("_")}
            for class_name, instance in self.instances.items()
        }

    def state_json(self) -> dict[str, dict[str, Any]]:
        return plain(self.state())
