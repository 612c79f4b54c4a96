"""`openai:MODEL@BASE_URL`: any server that speaks the OpenAI chat-completions API.

DeepSeek, vLLM, Ollama, llama.cpp's server and OpenAI itself all answer
`POST {BASE_URL}/chat/completions`. The transport is aiohttp, straight: one ClientSession
per event loop with a connector sized for hundreds of requests in flight. At concurrency 64
on small machines httpx's pool and the openai SDK reach a fraction of what bare aiohttp does,
and a teacher run is mostly waiting on the network, so the client must not be the limit.

Each attempt has `timeout_s` to be answered in full. A single watchdog task per provider
enforces it, not aiohttp's per-request timeout: that arms and cancels a loop timer for every
request, a tenth of what the client itself costs at hundreds of requests in flight, while the
watchdog looks at the attempts in flight a few times a timeout (an attempt ends between
`timeout_s` and 1.25 x `timeout_s`, and within a second of `timeout_s`).

A failed attempt is retried with exponential backoff and jitter when trying again can help:
429, 408, 5xx, timeouts, dropped or reset connections, and bodies that are not a completion.
A server's Retry-After (seconds or an HTTP date) is honoured. Anything else (400, 401, 404)
fails at once; 401, 403 and 404 (a refused key, an unknown model or URL), and a connection
refused before this provider ever had an answer from the server, fail as `ModelUnusable`:
every other request would fail the same way. Either way the caller gets a ModelError that says what went wrong, never an
aiohttp exception. The API key lives in one request header and nowhere else: it is not in
`repr`, in error messages, or in anything the cache stores.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import time
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from yarl import URL

from fcsft.errors import UserError
from fcsft.models.base import (
    ChatRequest,
    ChatResponse,
    ModelError,
    ModelUnusable,
    completion_reply,
    json_scalar,
)
from fcsft.models.registry import register

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_URI = re.compile(r"^(?P<model>[^@]+?)(?:@(?P<base_url>https?://\S+))?$")
_RETRY_STATUSES = frozenset({408, 409, 425, 429})  # plus every 5xx
_LONGEST_WAIT_S = 120.0  # a Retry-After beyond this is clamped: the run should not stall
_REASON_CHARS = 300


@register("openai")
def openai_provider(
    rest: str,
    *,
    api_key_env: str = "OPENAI_API_KEY",
    timeout_s: float = 120.0,
    max_retries: int = 6,
    backoff_s: float = 0.5,
    connections: int = 1024,
) -> OpenAIProvider:
    """`MODEL@BASE_URL` (BASE_URL defaults to OpenAI's); the key is read from `api_key_env`.

    A missing key is fine: local servers (vLLM, Ollama, llama.cpp) need none. A server that
    does need one answers 401, and the error names the variable to set.
    """
    match = _URI.match(rest.strip())
    if match is None:
        raise UserError(
            f"model 'openai:{rest}': expected openai:MODEL@BASE_URL, "
            "e.g. openai:deepseek-chat@https://api.deepseek.com"
        )
    return OpenAIProvider(
        match["model"],
        match["base_url"] or DEFAULT_BASE_URL,
        api_key=os.environ.get(api_key_env) or None,
        api_key_env=api_key_env,
        timeout_s=timeout_s,
        max_retries=max_retries,
        backoff_s=backoff_s,
        connections=connections,
    )


class _Retryable(Exception):
    """One attempt failed in a way that another attempt may not."""

    def __init__(self, reason: str, kind: str, wait_s: float | None = None):
        super().__init__(reason)
        self.kind = kind  # e.g. "HTTP 500", "timeout": see ModelError.kind
        self.wait_s = wait_s  # what the server asked for, if it did


class OpenAIProvider:
    """Chat completions from one model on one OpenAI-compatible server."""

    def __init__(
        self,
        model: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        api_key: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 6,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        connections: int = 1024,
    ):
        self.name = model
        self.base_url = base_url.rstrip("/")
        self.url = f"{self.base_url}/chat/completions"
        self._url = URL(self.url)  # parsed once, not by aiohttp for every request
        self._name_json = json_scalar(model)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.connections = connections
        self._api_key = api_key
        self._api_key_env = api_key_env
        self._answered = False  # the server has answered at least once (any status)
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Attempts in flight: the task running each and when it times out. The watchdog takes
        # an attempt out when it cancels it, so an attempt missing from here has timed out.
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._watchdog: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.name!r}, {self.base_url!r})"

    async def chat(self, request: ChatRequest) -> ChatResponse:
        """The assistant's reply, after as many retries as it takes; else a ModelError."""
        session = self._session_for_this_loop()
        body = self._body(request)
        started = time.monotonic()
        attempts = self.max_retries + 1
        for attempt in range(attempts):
            try:
                response = await self._attempt(session, body)
            except _Retryable as failure:
                if attempt + 1 == attempts:
                    raise ModelError(
                        f"{self.name} at {self.url}: gave up after {attempts} attempts; "
                        f"last: {self._redact(str(failure))}",
                        failure.kind,
                    ) from None
                delay = retry_delay(attempt, failure.wait_s, self.backoff_s, self.max_backoff_s)
                log.debug(
                    "%s: attempt %d failed (%s); next in %.2fs",
                    self.name,
                    attempt + 1,
                    self._redact(str(failure)),
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            response.latency_s = time.monotonic() - started
            response.extra["attempts"] = attempt + 1
            return response
        raise AssertionError("unreachable: the loop returns or raises")

    async def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    def _session_for_this_loop(self) -> aiohttp.ClientSession:
        """One shared session, remade only if the caller moved to another event loop."""
        session = self._session
        loop = asyncio.get_running_loop()
        if session is None or session.closed or self._loop is not loop:
            headers = {"Content-Type": "application/json", "Accept": "application/json"}
            if self._api_key:
                headers["Authorization"] = f"Bearer {self._api_key}"
            connector = aiohttp.TCPConnector(
                limit=self.connections, limit_per_host=self.connections, ttl_dns_cache=300
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers=headers,
                # The watchdog times attempts out; a connection that cannot even be opened
                # is still aiohttp's to give up on.
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.timeout_s),
                cookie_jar=aiohttp.DummyCookieJar(),  # the API is stateless: keep no cookies
                raise_for_status=False,
            )
            self._session, self._loop = session, loop
            self._deadlines, self._watchdog = {}, None
        return session

    def _body(self, request: ChatRequest) -> bytes:
        """The request as the server reads it, with the messages and tools spliced in from the
        request's own encoding of them (the cache key used the same text)."""
        messages, tools = request.encoded()
        # The URI names the model the server runs; `request.model` is the caller's label.
        body = (
            f'{{"model": {self._name_json}, "messages": {messages}, '
            f'"temperature": {json_scalar(request.temperature)}, '
            f'"max_tokens": {json_scalar(request.max_tokens)}'
        )
        if request.tools:
            body += f', "tools": {tools}'
        if request.stop:
            body += f', "stop": {json_scalar(request.stop)}'
        if request.seed is not None:
            body += f', "seed": {json_scalar(request.seed)}'
        return (body + "}").encode()

    async def _attempt(self, session: aiohttp.ClientSession, body: bytes) -> ChatResponse:
        """One POST: a reply, a _Retryable, or a ModelError for failures retrying cannot fix."""
        wait_s = None
        task = asyncio.current_task()
        assert task is not None, "a request runs in a task"
        cancelling = task.cancelling()
        self._deadlines[task] = time.monotonic() + self.timeout_s
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())
        # Every await of the attempt is inside this try, so the watchdog's cancel lands here.
        try:
            async with session.post(self._url, data=body) as http:
                status = http.status
                self._answered = True
                raw = await http.read()
                if status != 200:
                    wait_s = retry_after_seconds(
                        http.headers.get("Retry-After"), http.headers.get("retry-after-ms")
                    )
        except asyncio.CancelledError:
            # The watchdog's own cancel becomes a timeout, unless someone else cancelled too.
            if task not in self._deadlines and task.uncancel() <= cancelling:
                raise _Retryable(
                    f"no complete answer within {self.timeout_s:g}s", "timeout"
                ) from None
            raise
        except TimeoutError:  # connecting took longer than timeout_s
            raise _Retryable(f"no connection within {self.timeout_s:g}s", "timeout") from None
        except aiohttp.ClientConnectionError as exc:
            if isinstance(exc, aiohttp.ClientConnectorError) and not self._answered:
                # Never reached: a wrong URL, or a server that is not up.
                raise ModelUnusable(
                    f"{self.name} at {self.url}: cannot connect ({exc.os_error or exc}); check "
                    f"that the server is running and the base URL {self.base_url!r}"
                ) from None
            reason = f"connection failed: {type(exc).__name__}: {exc}"
            raise _Retryable(reason, "connection failed") from None
        except aiohttp.ClientError as exc:  # payload cut short, bad chunking, bad headers
            reason = f"transfer failed: {type(exc).__name__}: {exc}"
            raise _Retryable(reason, "transfer failed") from None
        finally:
            self._deadlines.pop(task, None)  # gone if it timed out
        if status == 200:
            try:
                return parse_completion(raw)
            except ValueError as exc:
                raise _Retryable(f"malformed response body: {exc}", "malformed body") from None
        reason = f"HTTP {status}: {error_text(raw)}"
        if status in _RETRY_STATUSES or status >= 500:
            raise _Retryable(reason, f"HTTP {status}", wait_s)
        message = f"{self.name} at {self.url}: {self._redact(reason)}{self._hint(status)}"
        if status in (401, 403, 404):
            raise ModelUnusable(message, f"HTTP {status}")
        raise ModelError(message, f"HTTP {status}")

    async def _watch(self) -> None:
        """Cancel the attempts past their deadline; runs while any attempt is in flight."""
        tick = min(1.0, self.timeout_s / 4)
        try:
            while self._deadlines:
                await asyncio.sleep(tick)
                now = time.monotonic()
                for task, deadline in list(self._deadlines.items()):
                    if deadline <= now:
                        del self._deadlines[task]
                        task.cancel()
        finally:
            if self._watchdog is asyncio.current_task():
                self._watchdog = None

    def _hint(self, status: int) -> str:
        if status in (401, 403):
            if self._api_key is None:
                return f"; no API key was sent: set ${self._api_key_env}"
            return f"; check the key in ${self._api_key_env}"
        if status == 404:
            return f"; check the model name {self.name!r} and the base URL {self.base_url!r}"
        return ""

    def _redact(self, text: str) -> str:
        """Error text with the key blanked, in case a server echoes what it was sent."""
        return text.replace(self._api_key, "***") if self._api_key else text


def retry_delay(
    attempt: int, server_wait_s: float | None, backoff_s: float = 0.5, max_backoff_s: float = 30.0
) -> float:
    """Seconds before retry `attempt + 1`: the server's wish, else capped exponential backoff.

    Both get jitter, so that many requests refused at once do not all return at once.
    """
    if server_wait_s is not None:
        wait = min(server_wait_s, _LONGEST_WAIT_S)
        return wait + random.uniform(0.0, 0.1 * wait + 0.01)
    ceiling = min(max_backoff_s, backoff_s * 2**attempt)
    return random.uniform(0.5 * ceiling, ceiling)


def parse_completion(raw: bytes) -> ChatResponse:
    """A chat-completion body as a ChatResponse that keeps the body's text for the cache;
    ValueError says what is missing or wrong."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not JSON ({exc}): {raw[:80]!r}") from None
    try:
        response = completion_reply(data)
    except ValueError as exc:
        raise ValueError(f"{exc} in {raw[:120]!r}") from None
    # JSON in UTF-16 or 32 is rare and does not decode: the cache then encodes the reply.
    with contextlib.suppress(UnicodeDecodeError):
        response.body = raw.decode()
    return response


def retry_after_seconds(header: str | None, header_ms: str | None = None) -> float | None:
    """How long a server asked us to wait: `Retry-After` as seconds or an HTTP date.

    OpenAI also sends `retry-after-ms`; it is finer-grained, so it wins when present.
    """
    if header_ms:
        try:
            return max(0.0, float(header_ms) / 1000)
        except ValueError:
            pass
    if not header:
        return None
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def error_text(raw: bytes) -> str:
    """The readable part of an error body: OpenAI's `error.message` if there is one."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        if isinstance(error, dict) and error.get("message"):
            text = str(error["message"])
        elif isinstance(error, str):
            text = error
    text = " ".join(text.split())
    if not text:
        return "(empty body)"
    return text[:_REASON_CHARS] + ("…" if len(text) > _REASON_CHARS else "")
