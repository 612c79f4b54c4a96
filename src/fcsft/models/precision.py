"""Which number format local models compute in: `auto`, `fp32` or `bf16`.

bfloat16 halves the bytes of every weight and activation; where the hardware has bf16 matrix
instructions (CUDA devices that support it, CPUs with AMX-BF16 or AVX512-BF16) it also runs the
matrix products several times faster. Elsewhere a CPU emulates it, slower than float32, so
`auto` picks bf16 only where the instructions are there and says why it chose what it chose.
Training keeps float32 master weights and uses bf16 through autocast (see `fcsft.train`), so
small LoRA updates are not rounded away; inference casts the weights themselves.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from fcsft.errors import UserError, require

Precision = Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
FAST_CPU_BF16 = "amx_bf16"
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


@dataclass(frozen=True)
class Choice:
    """What a model runs in (`bf16` or `fp32`), on which device, and the reason, for stats."""

    precision: Literal["fp32", "bf16"]
    device: str
    reason: str

    @property
    def bf16(self) -> bool:
        return self.precision == "bf16"

    def dtype(self) -> Any:
        torch = require("torch", "local")
        return torch.bfloat16 if self.bf16 else torch.float32

    def to_json(self) -> dict[str, str]:
        return {"precision": self.precision, "device": self.device, "reason": self.reason}


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The CPU's feature flags as Linux lists them (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def decide(
    setting: str, *, cuda: bool, cuda_bf16: bool, flags: frozenset[str], where: str = "precision"
) -> Choice:
    """The choice for a setting on given hardware (pure, so every branch is testable)."""
    if setting not in PRECISIONS:
        raise UserError(f"{where}: {setting!r} is not one of {', '.join(PRECISIONS)}")
    if cuda:
        if setting == "fp32":
            return Choice("fp32", "cuda", "precision: fp32 asked for")
        if cuda_bf16:
            return Choice("bf16", "cuda", f"precision: {setting}; the CUDA device supports bf16")
        if setting == "bf16":
            raise UserError(
                f"{where}: bf16 asked for, but this CUDA device does not support it; "
                "use precision: auto or fp32"
            )
        return Choice("fp32", "cuda", "precision: auto; the CUDA device has no bf16")
    have = [f for f in CPU_BF16_FLAGS if f in flags]
    if setting == "fp32":
        return Choice("fp32", "cpu", "precision: fp32 asked for")
    if FAST_CPU_BF16 in flags:
        return Choice("bf16", "cpu", f"precision: {setting}; the CPU has {' and '.join(have)}")
    if have and setting == "bf16":
        return Choice(
            "bf16",
            "cpu",
            "precision: bf16 asked for; the CPU has avx512_bf16 but no AMX, "
            "where bf16 is likely slower than fp32",
        )
    if have:
        return Choice(
            "fp32",
            "cpu",
            "precision: auto; the CPU has avx512_bf16 but no AMX, where bf16 "
            "matrix products are slower than fp32",
        )
    if setting == "bf16":
        raise UserError(
            f"{where}: bf16 asked for, but this CPU has neither AMX-BF16 nor AVX512-BF16 "
            "and would emulate it, slower than float32; use precision: auto or fp32"
        )
    return Choice("fp32", "cpu", "precision: auto; the CPU has neither AMX-BF16 nor AVX512-BF16")


@functools.cache
def choose(setting: str = "auto", where: str = "precision") -> Choice:
    """The choice for a setting on this machine."""
    torch = require("torch", "local")
    cuda = torch.cuda.is_available()
    cuda_bf16 = cuda and torch.cuda.is_bf16_supported()
    return decide(setting, cuda=cuda, cuda_bf16=cuda_bf16, flags=cpu_flags(), where=where)
