"""benchmarks/gpu.py: its smoke mode runs both parts end to end on the CPU; the peak table and MFU."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_peak_table_matches_specific_names_first(bench: ModuleType) -> None:
    assert bench.peak_tflops("NVIDIA H100 80GB HBM3", None) == 989.4
    assert bench.peak_tflops("NVIDIA H100 PCIe", None) == 756.0
    assert bench.peak_tflops("NVIDIA A100-SXM4-80GB", None) == 312.0
    assert bench.peak_tflops("NVIDIA L40S", None) == 362.0 and bench.peak_tflops("NVIDIA L4", None) == 121.0
    assert bench.peak_tflops("Some Future GPU", None) is None
    assert bench.peak_tflops("NVIDIA H100 PCIe", 500.0) == 500.0  # the flag wins


@pytest.mark.skipif(torch.cuda.is_available(), reason="the smoke mode is the CPU stand-in")
def test_smoke_mode_runs_both_parts(bench: ModuleType, capsys: pytest.CaptureFixture[str]) -> None:
    # one small preset and one packing keep it short on two shared cores; the other presets and
    # packings run the same code
    out = bench.main(["--smoke", "--models", "shiftvit_cifar", "--packings", "0.5", "--peak-tflops", "1"])
    rows = out["throughput"]
    assert [r["model"] for r in rows] == ["shiftvit_cifar@32"]
    for row in rows:
        assert all(row[m] > 0 for m in ("fp32", "bf16", "bf16+compile"))
        assert "bf16+compile+graphs" not in row  # CUDA graphs need CUDA
        # MFU by its definition: 3 x (2 x forward MACs) x img/s / peak
        best = max(row["fp32"], row["bf16"], row["bf16+compile"])
        assert row["mfu"] == pytest.approx(6 * row["gmacs"] * 1e9 * best / 1e12)
    packs = out["trials"]
    assert [(p["gpu"], p["concurrent"], p["trials"], p["complete"]) for p in packs] == [(0.5, 2, 2, 2)]
    assert all(p["notes"] == [f"Ray assigned GPU 0 but torch {torch.__version__} sees no CUDA device; ran on CPU"]
               for p in packs)
    text = capsys.readouterr().out
    assert "SMOKE" in text and "trials/hour" in text and "MFU" in text


def test_without_cuda_the_full_run_is_refused(bench: ModuleType) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(SystemExit) as info:
        bench.main([])
    assert info.value.code == 2
