"""Which network addresses `fetch` may connect to, enforced where the connection is made.

A model-chosen URL must not reach the machine's own services or the private network behind
it (a cloud metadata endpoint, an admin port on localhost). Checking the URL's hostname is not
enough: a public name can resolve to 127.0.0.1, and can resolve differently a second later; and
the HTTP client reads the host its own way (`１２７.０.０.１` and `127。0。0。1` are 127.0.0.1 to
it, and so an address, never sent to a resolver). So the policy is checked twice, on what the
client really uses: every answer of the resolver it connects through (one bad answer refuses
the name), and the address of every socket it opens (`guarded_socket`), IP literals included.

An IPv6 address can carry an IPv4 one that packets to it end up reaching: IPv4-mapped
(::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d) addresses, NAT64 (64:ff9b::/96), 6to4
(2002::/16) and Teredo (2001::/32, its server and its obfuscated client). Each address carried
is judged as well as the address itself.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # RFC 8215: a site's own translators
_COMPATIBLE = ipaddress.IPv6Network("::/96")


class AddressRefused(OSError):
    """A connection the policy forbids; an OSError so aiohttp reports it as a connection failure."""


def embedded_ipv4(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (none for a plain address)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    if ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]
    if ip.teredo is not None:
        return list(ip.teredo)  # (server, client); ipaddress undoes the client's obfuscation
    if ip.sixtofour is not None:
        return [ip.sixtofour]
    if ip in _NAT64 or (ip in _COMPATIBLE and int(ip) > 1):  # :: and ::1 are themselves
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


class AddressPolicy:
    """Public addresses only, plus the networks listed in `allow` (e.g. "127.0.0.1/32")."""

    def __init__(self, allow: Iterable[str] = ()):
        self.allow = [ipaddress.ip_network(item, strict=False) for item in allow]

    def refusal(self, address: str) -> str | None:
        """Why connecting to `address` is refused (e.g. "127.0.0.1 (loopback)"), or None.
        ValueError if `address` is not an IP address."""
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
        for inner in embedded_ipv4(ip):
            why = self._why(inner)
            if why:
                return f"{inner} ({why}, inside {ip})"
        why = self._why(ip)
        return f"{ip} ({why})" if why else None

    def _why(self, ip: IPAddress) -> str | None:
        if any(ip.version == network.version and ip in network for network in self.allow):
            return None
        if ip.is_loopback:
            return "loopback"
        if ip.is_link_local:
            return "link-local"
        if isinstance(ip, ipaddress.IPv6Address) and ip in _NAT64_LOCAL:
            return "a site's own NAT64 prefix"
        if ip.is_private or not ip.is_global or ip.is_multicast:
            return "not a public address"
        return None


def guarded_socket(policy: AddressPolicy):
    """A socket factory for aiohttp's connector that refuses, before connecting, any address
    the policy forbids: the one check no way of spelling a host can get around."""

    def make(addr_info: tuple[Any, ...]) -> socket.socket:
        family, kind, proto, _, address = addr_info
        host = str(address[0])
        try:
            reason = policy.refusal(host)
        except ValueError:  # a name where an address belongs: the OS would resolve it unchecked
            reason = f"{host} (not an IP address)"
        if reason:
            raise AddressRefused(f"{reason} is not allowed")
        return socket.socket(family, kind, proto)

    return make


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
