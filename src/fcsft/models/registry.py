"""Model providers register a URI scheme here; config names a model by its URI.

openai:deepseek-chat@https://api.deepseek.com
local:smollm2            local:/path/to/checkpoint
mock:replies.yaml
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcsft.errors import UserError
from fcsft.models.base import Provider

_FACTORIES: dict[str, Callable[..., Provider]] = {}
_MODULES = {
    "openai": "fcsft.models.openai",
    "local": "fcsft.models.local",
    "mock": "fcsft.models.mock",
}


_PATH_SCHEMES = ("local", "mock")  # schemes whose rest is a path (or an embedded model's name)


def uri_path(uri: str) -> Path | None:
    """The file or folder a `local:PATH` or `mock:FILE` URI names (`~` expanded); None for other
    URIs and embedded names (`local:smollm2`)."""
    from fcsft.models.weights import EMBEDDED

    scheme, sep, rest = uri.partition(":")
    if not sep or scheme not in _PATH_SCHEMES or not rest or rest in EMBEDDED:
        return None
    return Path(rest).expanduser()


def anchored(uri: str, base_dir: Path) -> str:
    """`uri` with a relative `local:PATH` or `mock:FILE` joined to `base_dir` (the folder of
    project.yaml, where every relative path in a config starts); other URIs, absolute paths and
    embedded names (`local:smollm2`) are returned as they are."""
    path = uri_path(uri)
    if path is None or path.is_absolute():
        return uri
    return f"{uri.partition(':')[0]}:{base_dir / path}"


def register(scheme: str) -> Callable[[Callable[..., Provider]], Callable[..., Provider]]:
    """Decorator: `@register("openai")` on a factory `f(rest_of_uri, **options) -> Provider`."""

    def wrap(factory: Callable[..., Provider]) -> Callable[..., Provider]:
        _FACTORIES[scheme] = factory
        return factory

    return wrap


def load_model(uri: str, **options: Any) -> Provider:
    """The provider a model URI names, or a UserError that lists the schemes."""
    scheme, sep, rest = uri.partition(":")
    if not sep or not rest:
        raise UserError(
            f"model {uri!r}: expected SCHEME:NAME, e.g. openai:deepseek-chat@https://api.deepseek.com"
        )
    if scheme not in _FACTORIES and scheme in _MODULES:
        __import__(_MODULES[scheme])
    if scheme not in _FACTORIES:
        known = ", ".join(sorted(set(_FACTORIES) | set(_MODULES)))
        raise UserError(f"model {uri!r}: unknown scheme {scheme!r}; known: {known}")
    return _FACTORIES[scheme](rest, **options)
