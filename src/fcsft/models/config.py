"""A model's entry in `models:` of project.yaml: which model, and how it is called.

It sits with the models so that every part that asks a model (the runner by role, evaluation
by role or URI) reads the same settings; `concurrency`, requests in flight to the model, is
the one setting for how hard a model is driven (a stage keeps as many records in flight).
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from fcsft.section import Section

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _looks_like_a_key(name: str) -> bool:
    """A name-shaped value that is more likely a secret: a stretch of 16 or more characters
    between underscores with digits in it (AKIAIOSFODNN7EXAMPLE, 32 hex digits)."""
    return any(len(part) >= 16 and any(c.isdigit() for c in part) for part in name.split("_"))


class Price(Section):
    input_per_mtok: float = Field(0.0, ge=0)
    """Cost in your currency per million prompt tokens."""
    output_per_mtok: float = Field(0.0, ge=0)
    """Cost per million completion tokens."""


class ModelConfig(Section):
    uri: str
    """Which model: `openai:NAME@BASE_URL`, `local:smollm2`, `local:PATH` or `mock:FILE`."""
    api_key_env: str = "OPENAI_API_KEY"
    """Name of the environment variable holding the API key (the key itself never goes here)."""
    concurrency: int = Field(16, ge=1, le=4096)
    """Requests in flight at once."""
    max_retries: int = Field(6, ge=0)
    """Retries on 429, 5xx, timeouts and dropped connections before a request is given up."""
    timeout_s: float = Field(120.0, gt=0)
    """Seconds one attempt may take."""
    price: Price = Field(default_factory=Price)
    """Token prices, for the cost shown in progress and stats."""
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    """Number format of a `local:` model: `auto` picks bf16 where the hardware runs it fast
    (CUDA with bf16, a CPU with AMX-BF16) and float32 elsewhere; API models ignore it."""

    @field_validator("api_key_env")
    @classmethod
    def _a_variable_name(cls, name: str) -> str:
        # The value is never echoed: if it is a key, the error message must not print it.
        if not _ENV_NAME.fullmatch(name) or _looks_like_a_key(name):
            raise ValueError(
                "expected the name of an environment variable, e.g. OPENAI_API_KEY, not a key: "
                "put the key in that variable (export OPENAI_API_KEY=...) and its name here"
            )
        return name

    @field_validator("uri")
    @classmethod
    def _has_scheme(cls, uri: str) -> str:
        scheme, sep, rest = uri.partition(":")
        if not sep or not rest or scheme not in {"openai", "local", "mock"}:
            raise ValueError(
                "expected openai:NAME@BASE_URL, local:smollm2, local:PATH or mock:FILE"
            )
        return uri
