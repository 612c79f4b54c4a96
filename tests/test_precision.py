"""The precision choice: what `auto`, `fp32` and `bf16` pick on each kind of hardware."""

import pytest

from fcsft.errors import UserError
from fcsft.models.precision import cpu_flags, decide

AMX = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
AVX512_BF16 = frozenset({"avx512f", "avx512_bf16"})
PLAIN = frozenset({"avx2", "fma"})


@pytest.mark.parametrize(
    ("setting", "flags", "want"),
    [
        ("auto", AMX, "bf16"),
        ("auto", AVX512_BF16, "fp32"),
        ("auto", PLAIN, "fp32"),
        ("fp32", AMX, "fp32"),
        ("bf16", AMX, "bf16"),
        ("bf16", AVX512_BF16, "bf16"),
    ],
)
def test_cpu_choice(setting, flags, want):
    choice = decide(setting, cuda=False, cuda_bf16=False, flags=flags)
    assert (choice.precision, choice.device) == (want, "cpu")
    assert choice.reason.startswith(f"precision: {setting}")


def test_reasons_say_why():
    assert "amx_bf16" in decide("auto", cuda=False, cuda_bf16=False, flags=AMX).reason
    assert "no AMX" in decide("auto", cuda=False, cuda_bf16=False, flags=AVX512_BF16).reason
    assert "slower" in decide("bf16", cuda=False, cuda_bf16=False, flags=AVX512_BF16).reason


def test_bf16_on_a_cpu_without_it_is_refused_with_the_fix():
    with pytest.raises(UserError, match=r"train.precision: .*use precision: auto or fp32"):
        decide("bf16", cuda=False, cuda_bf16=False, flags=PLAIN, where="train.precision")


@pytest.mark.parametrize(
    ("setting", "cuda_bf16", "want"),
    [
        ("auto", True, "bf16"),
        ("auto", False, "fp32"),
        ("fp32", True, "fp32"),
        ("bf16", True, "bf16"),
    ],
)
def test_cuda_choice(setting, cuda_bf16, want):
    choice = decide(setting, cuda=True, cuda_bf16=cuda_bf16, flags=PLAIN)
    assert (choice.precision, choice.device) == (want, "cuda")


def test_bf16_on_a_cuda_device_without_it_is_refused():
    with pytest.raises(UserError, match="does not support it"):
        decide("bf16", cuda=True, cuda_bf16=False, flags=AMX)


def test_unknown_setting_names_the_choices():
    with pytest.raises(UserError, match="auto, fp32, bf16"):
        decide("fp16", cuda=False, cuda_bf16=False, flags=AMX)


def test_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f avx512_bf16 amx_bf16\n\nflags : x\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()
