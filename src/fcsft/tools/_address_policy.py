"""Which network addresses `fetch` may connect to, enforced where the connection is made.

A model-chosen URL must not reach the machine's own services or the private network behind
it (a cloud metadata endpoint, an admin port on localhost). Checking the URL's hostname is not
enough: a public name can resolve to 127.0.0.1, and can resolve differently a second later.
So the check sits in the resolver aiohttp connects through: every address a name resolves to
is checked, and aiohttp connects only to addresses that passed. IP literals never reach a
resolver, so the caller checks those itself with `refusal`.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AddressRefused(OSError):
    """A connection the policy forbids; an OSError so aiohttp reports it as a connection failure."""


class AddressPolicy:
    """Public addresses only, plus the networks listed in `allow` (e.g. "127.0.0.1/32")."""

    def __init__(self, allow: Iterable[str] = ()):
        self.allow = [ipaddress.ip_network(item, strict=False) for item in allow]

    def refusal(self, address: str) -> str | None:
        """Why connecting to `address` is refused (e.g. "127.0.0.1 (loopback)"), or None."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        if any(ip in network for network in self.allow):
            return None
        if ip.is_loopback:
            return f"{ip} (loopback)"
        if ip.is_link_local:
            return f"{ip} (link-local)"
        if ip.is_private or not ip.is_global or ip.is_multicast:
            return f"{ip} (not a public address)"
        return None


class GuardedResolver(AbstractResolver):
    """aiohttp's own resolver, with every answer checked against the policy before use."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None):
        self._policy = policy
        self._inner = inner or DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[Any]:
        answers = await self._inner.resolve(host, port, family)
        for answer in answers:
            reason = self._policy.refusal(answer["host"])
            if reason:
                # One bad answer refuses the name: with round-robin DNS a retry could land on it.
                raise AddressRefused(f"{host} resolves to {reason}, which is not allowed")
        return answers

    async def close(self) -> None:
        await self._inner.close()
