"""Artifact ids are pinned: moving or renaming code must not change what identifies a result."""

import pytest
from luigi.cmdline_parser import CmdlineParser
from luigi.task_register import Register

import tasks  # noqa: F401 - registers the task families
from pipeline.training import numerics
from tasks.steps import Evaluate

PINNED_NUMERICS = ["--Train-precision", "float32", "--Train-kernels", "stock"]


def evaluation_ids(*args: str) -> tuple[str, str, str]:
    """Return the (Evaluate, Train, ExtractToNpy) artifact ids of ``luigi --module tasks Evaluate ARGS``."""
    Register.clear_instance_cache()  # Luigi caches config and task objects across command lines
    try:
        with CmdlineParser.global_instance(["Evaluate", *args]):
            evaluation = Evaluate()
            return (evaluation.artifact_id, evaluation.upstream()["model"].artifact_id,
                    evaluation.upstream()["data"].artifact_id)
    finally:
        Register.clear_instance_cache()


@pytest.mark.parametrize("dataset, evaluate_id, train_id, extract_id", [
    ("synthetic", "0db727f82f79", "67ebb1549658", "58213d1fc838"),
    ("mnist", "33612f17f06f", "3d0f5baecc02", "f83d02637a62"),
])
def test_pinned_run_ids_are_unchanged(dataset, evaluate_id, train_id, extract_id):
    """A changed id here re-runs every user's finished work: bump a code_version on purpose only.

    Train is pinned to explicit numerics: with `auto` its id is what `auto` means on the host.
    """
    assert evaluation_ids("--data-dataset", dataset, *PINNED_NUMERICS) == (evaluate_id, train_id, extract_id)


@pytest.fixture
def host(monkeypatch, tmp_path):
    """Pretend to be a CPU-only host with the given CPU flags and compiler presence."""
    def pretend(flags: str, compiler: bool):
        cpuinfo = tmp_path / f"cpuinfo-{flags.replace(' ', '-')}"
        cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 {flags}\n")
        monkeypatch.setattr(numerics, "cpu_supports_bfloat16",
                            lambda: numerics.__dict__["_cpu_bf16"](cpuinfo))
        monkeypatch.setattr(numerics, "cpu_flags", lambda: numerics.__dict__["_cpu_flags"](cpuinfo))
        monkeypatch.setattr(numerics, "nvidia_gpus_listed", lambda: [])
        monkeypatch.setattr("pipeline.training.native.available", lambda: compiler)
        numerics.resolve_numerics.cache_clear()
        numerics.gpu_capabilities.cache_clear()
    monkeypatch.setitem(numerics.__dict__, "_cpu_bf16", numerics.cpu_supports_bfloat16)
    monkeypatch.setitem(numerics.__dict__, "_cpu_flags", numerics.cpu_flags)
    yield pretend
    numerics.resolve_numerics.cache_clear()


def test_auto_is_one_artifact_with_what_it_resolves_to_on_each_host(host):
    host("avx2", compiler=False)
    avx2 = evaluation_ids("--data-dataset", "synthetic")
    assert avx2 == evaluation_ids("--data-dataset", "synthetic", *PINNED_NUMERICS)
    host("avx2 avx512_bf16", compiler=True)
    bf16 = evaluation_ids("--data-dataset", "synthetic")
    assert bf16 == evaluation_ids("--data-dataset", "synthetic", "--Train-precision", "mixed_bfloat16",
                                  "--Train-kernels", "winograd")
    host("avx2 avx512_bf16 amx_bf16", compiler=True)
    amx = evaluation_ids("--data-dataset", "synthetic")
    assert amx == evaluation_ids("--data-dataset", "synthetic", "--Train-precision", "mixed_bfloat16",
                                 "--Train-kernels", "fused")
    host("avx2 avx512_bf16", compiler=False)
    bf16_stock = evaluation_ids("--data-dataset", "synthetic")
    assert len({avx2[1], bf16[1], amx[1], bf16_stock[1]}) == 4, "hosts whose numerics differ share a Train artifact"
    assert avx2[2] == bf16[2] == amx[2] == bf16_stock[2], "the data steps do not depend on the numerics"


def test_explicit_numerics_are_one_artifact_on_every_host(host):
    host("avx2", compiler=False)
    pinned = evaluation_ids("--data-dataset", "synthetic", "--Train-precision", "mixed_bfloat16", "--Train-kernels", "fused")
    host("avx2 avx512_bf16", compiler=True)
    assert pinned == evaluation_ids("--data-dataset", "synthetic", "--Train-precision", "mixed_bfloat16",
                                    "--Train-kernels", "fused")
