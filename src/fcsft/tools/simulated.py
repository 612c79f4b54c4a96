"""Tools for APIs that cannot be called (paid, private, destructive): a model plays the API.

The simulation is held to the API's declared return schema: a reply that does not match is
sent back once with what is wrong, and a second failure is an error observation, never an
invented shape. Answers are cached per (tool, arguments), so a call asked twice, in one run
or the next, gets the same observation, as it would from a real, stable API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from pathlib import Path
from typing import Any

from fcsft.formats.json_text import JsonProblem, loads_lenient
from fcsft.models.base import ChatLike, ChatRequest
from fcsft.records import Tool
from fcsft.tools._observation_cache import ObservationCache, canonical
from fcsft.tools.base import BaseTool
from fcsft.tools.result import ToolResult
from fcsft.tools.validation import SchemaChecker

SYSTEM_PROMPT = """\
You stand in for a real API so that an agent can be trained against it. Reply with only the \
JSON value the API returns for the call: no prose, no code fence. The value must match the \
return schema. Make the data realistic and consistent with the arguments: specific, plausible \
names, numbers and dates, never placeholders like "string" or "example". When the arguments \
ask for something that does not exist, return what the API would return for nothing found, \
if the schema allows it."""


class SimulatedTool(BaseTool):
    """A tool whose results a model invents, checked against `returns` and cached."""

    def __init__(
        self,
        spec: Tool,
        returns: dict[str, Any],
        model: ChatLike,
        *,
        model_name: str | None = None,
        cache: ObservationCache | Path | str | None = None,
        temperature: float = 0.3,
        timeout: float | None = 120.0,
    ):
        super().__init__(spec, timeout)
        self.returns = returns
        self._result_checker = SchemaChecker(returns, f"simulated tool {spec.name}, return schema")
        self._model = model
        self._model_name = model_name or getattr(model, "name", "simulator")
        self._cache = ObservationCache(cache) if isinstance(cache, str | Path) else cache
        self._memory: dict[str, str] = {}  # used when no cache file is given
        self._temperature = temperature
        self._in_flight: dict[str, asyncio.Future[ToolResult]] = {}
        blob = json.dumps([spec.description, spec.parameters, returns], sort_keys=True)
        self._fingerprint = hashlib.sha256(blob.encode()).hexdigest()[:16]

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        """Identical calls in flight together share one answer, and so one model request."""
        key = canonical(arguments)
        answer = self._in_flight.get(key)
        if answer is None:
            answer = asyncio.ensure_future(self._answer(arguments))
            self._in_flight[key] = answer
            answer.add_done_callback(lambda _: self._in_flight.pop(key, None))
        # Shielded: one caller's timeout must not cancel the answer the others wait for.
        return await asyncio.shield(answer)

    async def _answer(self, arguments: dict[str, Any]) -> ToolResult:
        stored = await self._stored(arguments)
        if stored is not None:
            return ToolResult(stored)
        value, problem = await self._simulate(arguments)
        if problem is not None:
            return ToolResult.failure(f"simulated tool {self.name} gave no valid result: {problem}")
        return ToolResult(await self._store(arguments, json.dumps(value, ensure_ascii=False)))

    async def _simulate(self, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        """Ask the model; on a reply that does not fit, say why and ask once more."""
        messages = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": self._describe_call(arguments)},
        ]
        problem = None
        for _attempt in range(2):
            response = await self._model.chat(
                ChatRequest(
                    model=self._model_name, messages=messages, temperature=self._temperature
                )
            )
            reply = response.message.get("content") or ""
            value, problem = self._check(reply)
            if problem is None:
                return value, None
            messages = [  # a new list: the request just sent keeps the one it was given
                *messages,
                {"role": "assistant", "content": reply},
                {
                    "role": "user",
                    "content": f"That reply is not valid: {problem}. "
                    "Reply again with only the JSON value.",
                },
            ]
        return None, problem

    def _check(self, reply: str) -> tuple[Any, str | None]:
        try:
            value = loads_lenient(reply)
        except JsonProblem as exc:
            return None, f"not JSON ({exc} at offset {exc.offset})"
        problems = self._result_checker.problems(value)
        if problems:
            return None, "it does not match the return schema: " + "; ".join(problems)
        return value, None

    def _describe_call(self, arguments: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"API: {self.spec.name}",
                f"Description: {self.spec.description}",
                f"Parameters schema: {json.dumps(self.spec.parameters, ensure_ascii=False)}",
                f"Return schema: {json.dumps(self.returns, ensure_ascii=False)}",
                "",
                f"Call arguments: {json.dumps(arguments, ensure_ascii=False)}",
            ]
        )

    async def _stored(self, arguments: dict[str, Any]) -> str | None:
        if self._cache is None:
            return self._memory.get(canonical(arguments))
        return await asyncio.to_thread(self._cache.get, self.name, self._fingerprint, arguments)

    async def _store(self, arguments: dict[str, Any], content: str) -> str:
        if self._cache is None:
            return self._memory.setdefault(canonical(arguments), content)
        return await asyncio.to_thread(
            self._cache.put, self.name, self._fingerprint, arguments, content
        )
