"""A tool made from a typed Python function, in-process: the user's own code or a built-in.

Sync functions run on a pool of their own, not asyncio's default one: a function that hangs
past its timeout keeps its thread (Python cannot kill a thread), and it must not starve the
event loop's own work such as DNS lookups.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fcsft.errors import UserError
from fcsft.tools.base import DEFAULT_TIMEOUT, ArgumentError, BaseTool
from fcsft.tools.schema import function_spec, parameter_types

_POOL = ThreadPoolExecutor(max_workers=16, thread_name_prefix="fcsft-tool")
_PLAIN_JSON = {str, int, float, bool, Any, list, dict, inspect.Parameter.empty}


class FunctionTool(BaseTool):
    """Wrap `fn`; its schema comes from its signature and docstring (see `schema.function_spec`)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        description: str | None = None,
        timeout: float | None = DEFAULT_TIMEOUT,
    ):
        spec = function_spec(fn, name)
        if description is not None:
            spec = spec.model_copy(update={"description": description})
        super().__init__(spec, timeout)
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(
            fn if inspect.isroutine(fn) else type(fn).__call__
        )
        self._converters = _converters(fn)

    async def call(self, arguments: dict[str, Any]) -> Any:
        kwargs = dict(arguments)
        for key, adapter in self._converters.items():
            if key in kwargs:
                try:
                    kwargs[key] = adapter.validate_python(kwargs[key])
                except ValidationError as exc:
                    raise ArgumentError(f"{key}: {_first_problem(exc)}") from None
        if self._is_async:
            return await self._fn(**kwargs)
        loop = asyncio.get_running_loop()
        value = await loop.run_in_executor(_POOL, partial(self._fn, **kwargs))
        return await value if inspect.isawaitable(value) else value


def load_function(target: str) -> Callable[..., Any]:
    """The object a `package.module:function` string names, or a UserError that says what failed."""
    module_name, sep, attribute = target.partition(":")
    if not sep or not module_name or not attribute:
        raise UserError(f"tool {target!r}: expected MODULE:FUNCTION, e.g. mytools.weather:forecast")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"tool {target!r}: cannot import {module_name}: {exc}") from None
    value: Any = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UserError(f"tool {target!r}: {module_name} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not callable(value) and not isinstance(value, BaseTool):
        raise UserError(f"tool {target!r}: {attribute} is not callable")
    return value


def _converters(fn: Callable[..., Any]) -> dict[str, TypeAdapter[Any]]:
    """Adapters that turn JSON values into the declared types (enums, models, tuples, sets).

    Plain JSON types need no conversion and get none, which keeps the common call cheap.
    """
    hints = parameter_types(fn)
    adapters: dict[str, TypeAdapter[Any]] = {}
    for param in inspect.signature(fn).parameters.values():
        hint = hints.get(param.name, param.empty)
        if hint not in _PLAIN_JSON and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            adapters[param.name] = TypeAdapter(hint)
    return adapters


def _first_problem(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}" if where else error["msg"]
