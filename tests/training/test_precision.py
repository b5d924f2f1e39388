"""What ``precision = auto`` picks on which hardware."""

import pytest

from pipeline.training.precision import choose_precision, cpu_supports_bfloat16


@pytest.mark.parametrize("gpus, cpu_bf16, expected", [
    ([], True, "mixed_bfloat16"),
    ([], False, "float32"),
    ([(9, 0)], False, "mixed_bfloat16"),
    ([(8, 0), (7, 5)], True, "mixed_float16"),
    ([(6, 1)], True, "float32"),
])
def test_auto_choice(gpus, cpu_bf16, expected):
    assert choose_precision(gpus, cpu_bf16) == expected


def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_supports_bfloat16(cpuinfo)
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2\n")
    assert not cpu_supports_bfloat16(cpuinfo)
    assert not cpu_supports_bfloat16(tmp_path / "missing")
