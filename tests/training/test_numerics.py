"""What `auto` numerics mean on a host: read cheaply, TensorFlow asked only where GPUs are, once."""

import subprocess
import sys

import pytest

from pipeline.training import native, numerics


@pytest.fixture(autouse=True)
def fresh_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    numerics.resolve_numerics.cache_clear()
    numerics.gpu_capabilities.cache_clear()
    yield
    numerics.resolve_numerics.cache_clear()
    numerics.gpu_capabilities.cache_clear()


def cpu(monkeypatch, bf16: bool, compiler: bool, flags=("avx2",)):
    monkeypatch.setattr(numerics, "cpu_supports_bfloat16", lambda: bf16)
    monkeypatch.setattr(numerics, "cpu_flags", lambda: list(flags))
    monkeypatch.setattr(numerics, "nvidia_gpus_listed", lambda: [])
    monkeypatch.setattr(native, "available", lambda: compiler)


@pytest.mark.parametrize("bf16, compiler, expected", [
    (False, True, ("float32", "winograd")),
    (False, False, ("float32", "stock")),
    (True, True, ("mixed_bfloat16", "fused")),
    (True, False, ("mixed_bfloat16", "stock")),
])
def test_auto_resolves_from_cpu_flags_and_compiler(monkeypatch, bf16, compiler, expected):
    cpu(monkeypatch, bf16, compiler, flags=("avx2", "avx512_bf16", "amx_bf16") if bf16 else ("avx2",))
    assert numerics.resolve_numerics("auto", "auto") == expected


@pytest.mark.parametrize("flags, expected", [
    (("avx2", "avx512f", "avx512_bf16"), "winograd"),  # AVX512-BF16 without AMX: the Winograd conv2 measured faster
    (("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"), "fused"),  # AMX: oneDNN's AMX convolutions
])
def test_auto_kernels_for_bfloat16_depend_on_amx(monkeypatch, flags, expected):
    cpu(monkeypatch, True, True, flags)
    assert numerics.resolve_numerics("auto", "auto") == ("mixed_bfloat16", expected)


def test_explicit_values_are_kept_whatever_the_host(monkeypatch):
    cpu(monkeypatch, bf16=False, compiler=False)
    assert numerics.resolve_numerics("mixed_bfloat16", "fused") == ("mixed_bfloat16", "fused")
    assert numerics.resolve_numerics("mixed_bfloat16", "auto") == ("mixed_bfloat16", "stock")


def test_a_host_with_gpus_asks_tensorflow_once_and_caches_the_answer(monkeypatch):
    monkeypatch.setattr(numerics, "nvidia_gpus_listed", lambda: ["0000:3b:00.0"])
    monkeypatch.setattr(numerics, "cpu_supports_bfloat16", lambda: False)
    calls, real_run = [], subprocess.run

    def probe(command, **kwargs):
        calls.append(command)
        return subprocess.CompletedProcess(command, 0, stdout="[[9, 0]]\n", stderr="")

    monkeypatch.setattr(numerics.subprocess, "run", probe)
    assert numerics.resolve_numerics("auto", "auto") == ("mixed_bfloat16", "stock")
    assert calls and calls[0][1:] == ["-m", "pipeline.training.numerics"]
    numerics.resolve_numerics.cache_clear()
    numerics.gpu_capabilities.cache_clear()
    assert numerics.resolve_numerics("auto", "auto") == ("mixed_bfloat16", "stock")
    assert len(calls) == 1, "the GPU probe ran again instead of using this host's cached answer"
    monkeypatch.setattr(numerics.subprocess, "run", real_run)


def test_the_probe_itself_reports_what_tensorflow_sees():
    result = subprocess.run([sys.executable, "-m", "pipeline.training.numerics"], capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "[]", result.stderr
