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
start with "_".
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
from fcsft.records import Tool
from fcsft.tools.result import ToolResult


def _backend() -> Any:
    try:
        from bfcl_eval.constants import executable_backend_config
    except ImportError as exc:
        raise UserError(f"BFCL multi-turn needs the bfcl-eval package: {bfcl.INSTALL}") from exc
    return executable_backend_config


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
