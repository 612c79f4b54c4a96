"""The `fetch` built-in: the text of an http(s) URL, or of a file under one configured folder.

Limits a model cannot talk its way past: a byte cap (the rest is never downloaded), a time
cap on the whole exchange, a redirect cap, and an address policy checked on every address a
connection is made to, at every hop (see `_address_policy`). Redirects are followed here
rather than by aiohttp so that each hop's URL is checked like the first.
"""

from __future__ import annotations

import asyncio
import ipaddress
import mimetypes
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from fcsft.tools._address_policy import (
    AddressPolicy,
    AddressRefused,
    GuardedResolver,
    guarded_socket,
)
from fcsft.tools._file_url import FileRefused, read_file_url
from fcsft.tools._html_text import html_to_text
from fcsft.tools.function import FunctionTool
from fcsft.tools.result import ToolResult

_REDIRECTS = {301, 302, 303, 307, 308}
_TEXT_TYPES = ("text/", "application/json", "application/xml", "application/xhtml", "+json", "+xml")


class FetchOptions(BaseModel):
    """Limits and permissions of the `fetch` built-in."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    root: Path | None = None
    """Folder whose files `file://` URLs may read; unset, file URLs are refused."""
    allow_networks: list[str] = Field(default_factory=list)
    """Non-public addresses fetch may reach anyway, e.g. `127.0.0.1` or `10.0.0.0/8`."""
    max_bytes: int = Field(1_000_000, ge=1)
    """Bytes read from a response or file; the rest is dropped and the text says so."""
    timeout_s: float = Field(20.0, gt=0)
    """Seconds for the whole fetch, redirects included."""
    max_redirects: int = Field(5, ge=0)
    """Redirects followed before giving up."""
    user_agent: str = "fcsft-fetch/0.1"
    """The User-Agent header sent."""

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, networks: list[str]) -> list[str]:
        for network in networks:
            ipaddress.ip_network(network, strict=False)  # a ValueError names the bad one
        return networks


class Fetcher:
    """Fetch settings; `fetch` is the function the model calls."""

    def __init__(self, options: FetchOptions | None = None):
        self.options = options or FetchOptions()
        self.policy = AddressPolicy(self.options.allow_networks)

    async def fetch(self, url: str) -> ToolResult:
        """Fetch a web page or document by URL and return its text.

        Args:
            url: An http:// or https:// URL (or a file:// URL inside the allowed folder).
        """
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            try:
                data, truncated = await asyncio.to_thread(
                    read_file_url, url, self.options.root, self.options.max_bytes
                )
            except FileRefused as exc:
                return ToolResult.failure(f"refused: {exc}")
            except OSError as exc:
                return ToolResult.failure(f"cannot read {url}: {exc.strerror or exc}")
            return ToolResult(self._text(data, mimetypes.guess_type(url)[0] or "", truncated))
        if scheme not in ("http", "https"):
            return ToolResult.failure(
                f"unsupported URL scheme {scheme or '(none)'!r}; use http or https"
            )
        try:
            async with asyncio.timeout(self.options.timeout_s):
                return await self._fetch_http(url)
        except TimeoutError:
            return ToolResult.failure(f"fetch of {url} timed out after {self.options.timeout_s:g}s")
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, AddressRefused):
                return ToolResult.failure(f"refused: {exc.os_error}")
            return ToolResult.failure(f"cannot connect to {url}: {exc.os_error}")
        except AddressRefused as exc:
            return ToolResult.failure(f"refused: {exc}")
        except aiohttp.ClientError as exc:
            return ToolResult.failure(f"fetch of {url} failed: {type(exc).__name__}: {exc}")

    async def _fetch_http(self, url: str) -> ToolResult:
        connector = aiohttp.TCPConnector(
            resolver=GuardedResolver(self.policy),
            use_dns_cache=False,
            socket_factory=guarded_socket(self.policy),
        )
        headers = {
            "User-Agent": self.options.user_agent,
            "Accept": "text/html, text/plain, application/json, */*",
        }
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:
            for _hop in range(self.options.max_redirects + 1):
                async with session.get(url, allow_redirects=False) as response:
                    location = response.headers.get("Location")
                    if response.status in _REDIRECTS and location:
                        url = urljoin(url, location)
                        if urlsplit(url).scheme.lower() not in ("http", "https"):
                            return ToolResult.failure(f"refused: redirect to a non-http URL {url}")
                        continue
                    return await self._read(response, url)
        return ToolResult.failure(
            f"more than {self.options.max_redirects} redirects, last to {url}"
        )

    async def _read(self, response: aiohttp.ClientResponse, url: str) -> ToolResult:
        content_type = response.headers.get("Content-Type", "").lower()
        if content_type and not any(kind in content_type for kind in _TEXT_TYPES):
            return ToolResult.failure(f"{url} is {content_type.split(';')[0]}, not text")
        data = bytearray()
        async for chunk in response.content.iter_chunked(65536):
            data += chunk
            if len(data) > self.options.max_bytes:
                break  # the rest is never read; closing the response drops the connection
        truncated = len(data) > self.options.max_bytes
        text = self._text(
            bytes(data[: self.options.max_bytes]), content_type, truncated, response.charset
        )
        if response.status >= 400:
            return ToolResult.failure(
                f"HTTP {response.status} {response.reason or ''}".rstrip() + f"\n\n{text}"
            )
        return ToolResult(text)

    def _text(
        self, data: bytes, content_type: str, truncated: bool, charset: str | None = None
    ) -> str:
        try:
            text = data.decode(charset or "utf-8", errors="replace")
        except LookupError:  # a charset name Python does not know
            text = data.decode("utf-8", errors="replace")
        if "html" in content_type:
            text = html_to_text(text)
        if truncated:
            text += f"\n[truncated: the content is larger than {self.options.max_bytes} bytes]"
        return text


def fetch_tool(
    *, name: str = "fetch", timeout: float | None = None, **options: Any
) -> FunctionTool:
    """A `fetch` tool; `options` are `FetchOptions` fields (root, allow_networks, ...)."""
    fetcher = Fetcher(FetchOptions(**options))
    # The tool's own limit sits just above the fetcher's, which reports a timeout with the URL.
    return FunctionTool(fetcher.fetch, name=name, timeout=timeout or fetcher.options.timeout_s + 5)
