"""The size guard: closed-form estimates, refusals that name the field, nothing allocated before them."""
from __future__ import annotations

import time
from typing import Any

import pytest

from nas.cli.build import meta_model
from nas.errors import GenomeError
from nas.genome import PRESETS, load_genome, parse_genome
from nas.models import build_model
from nas.models.footprint import (
    LIMIT_ENV,
    MAX_BLOCKS,
    check_fits,
    estimate_footprint,
    estimate_macs,
    memory_limit,
)
from nas.search.objective import TrialContext, run_trial

ISSUE = {"image_size": 32, "num_classes": 10, "patch_size": 4,
         "stages": [{"mixer": "attention", "depth": 1, "dim": 64, "heads": 4}]}


def issue_genome(**stage: Any) -> dict[str, Any]:
    top = {k: stage.pop(k) for k in list(stage) if k in ("image_size", "num_classes")}
    return {**ISSUE, **top, "stages": [{**ISSUE["stages"][0], **stage}]}


@pytest.mark.parametrize("name", ["deit_tiny", "vit_base_16", "deepvit_16", "shiftvit_tiny", "coatnet_0",
                                  "poolformer_s12", "vit_cifar", "coatnet_cifar"])
def test_params_estimate_is_within_five_percent_of_the_built_network(name: str) -> None:
    genome = load_genome(name)
    built = sum(p.numel() for p in meta_model(genome).parameters())
    assert abs(estimate_footprint(genome).params - built) <= 0.05 * built


@pytest.mark.parametrize("change, field", [
    ({"dim": 10**9}, "dim 1000000000"),
    ({"image_size": 10**6}, "image_size 1000000"),
    ({"mlp_ratio": 1e9}, "mlp_ratio 1e+09"),
    ({"dim": 16384}, "dim 16384"),
])
def test_too_large_genomes_are_refused_at_once_naming_the_field(change: dict, field: str,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_ENV, "4")
    genome = parse_genome(issue_genome(**change))
    start = time.perf_counter()
    with pytest.raises(GenomeError, match=r"too large for this device: ~[\d.,e+]+ GB") as info:
        check_fits(genome)
    assert field in str(info.value) and f"{LIMIT_ENV}=4" in str(info.value)
    with pytest.raises(GenomeError, match="too large"):
        build_model(genome)  # the builder refuses before creating a module
    assert time.perf_counter() - start < 1.0


def test_a_million_blocks_is_refused_without_building() -> None:
    genome = parse_genome(issue_genome(depth=10**6, dim=8, heads=1))
    with pytest.raises(GenomeError, match=rf"stages\[0\].depth 1000000 .* at most {MAX_BLOCKS}"):
        check_fits(genome)


def test_training_needs_more_than_inference(monkeypatch: pytest.MonkeyPatch) -> None:
    genome = load_genome("deit_small")
    fp = estimate_footprint(genome)
    assert fp.bytes(1) < fp.bytes(1, training=True) < fp.bytes(64, training=True)
    need_gb = fp.bytes(1) / 1e9
    monkeypatch.setenv(LIMIT_ENV, str(need_gb * 2))
    check_fits(genome)  # inference fits
    with pytest.raises(GenomeError, match="training at batch_size 64"):
        check_fits(genome, batch_size=64, training=True)


def test_the_limit_comes_from_the_environment_or_the_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_ENV, "2.5")
    assert memory_limit() == (2_500_000_000, f"{LIMIT_ENV}=2.5")
    monkeypatch.setenv(LIMIT_ENV, "lots")
    with pytest.raises(GenomeError, match=rf"{LIMIT_ENV} must be a number of gigabytes in \(0, 1,000,000\], got 'lots'"):
        memory_limit()
    for raw in ("1e300", "nan", "inf", "-1", "0"):
        monkeypatch.setenv(LIMIT_ENV, raw)
        with pytest.raises(GenomeError, match=rf"^{LIMIT_ENV} must be a number of gigabytes in \(0, 1,000,000\], got '{raw}'$"):
            memory_limit()
    monkeypatch.delenv(LIMIT_ENV)
    limit, source = memory_limit("cpu")
    assert limit > 0 and "RAM" in source


def test_a_trial_records_a_too_large_genome_without_building(tmp_path, monkeypatch) -> None:
    from optuna.trial import TrialState

    from nas.search.records import classify_result

    monkeypatch.setenv(LIMIT_ENV, "1")

    def no_build(*_: Any, **__: Any) -> None:
        raise AssertionError("nothing may be built for a genome that is too large")

    monkeypatch.setattr("nas.models.builder.VisionNet", no_build)
    reports: list[dict[str, Any]] = []
    ctx = TrialContext(study_dir=str(tmp_path), data="synthetic", budget={"epochs": 1, "batch_size": 8},
                       objectives=("val_acc", "flops", "val_loss"))
    final = run_trial({"genome": issue_genome(depth=1, dim=16384), "key": "k"}, ctx, reports.append)
    assert final["status"] == "too_large" and final["error"].startswith("too large for this device: ~")
    assert reports == [final] and not (tmp_path / "cost.jsonl").exists()
    genome = parse_genome(issue_genome(depth=1, dim=16384))
    assert final["flops"] == estimate_macs(genome) and final["params"] == estimate_footprint(genome).params
    assert final["sampler_values"] == [0.0, float(final["flops"]), 1e6] and final["sampler_violation"] >= 1.0
    outcome = classify_result(final, False, list(ctx.objectives))
    assert outcome.state == TrialState.PRUNED and outcome.attrs["status"] == "too_large"
    assert outcome.attrs["sampler_values"] == final["sampler_values"]


@pytest.mark.parametrize("name", ["vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar"])
def test_flops_estimate_matches_the_traced_count(name: str) -> None:
    from nas.cost import count_cost

    genome = load_genome(name)
    traced = count_cost(genome).flops
    assert abs(estimate_macs(genome) - traced) <= 0.05 * traced


def test_overlapping_embeddings_and_layer_scale_are_estimated_exactly() -> None:
    """PoolFormer's 7x7/4 stem, 3x3/2 merging and layer scale, on a 32x32 pyramid: the guard's walk
    over the network counts what the builder builds and fvcore traces (norms aside)."""
    from nas.cost import count_cost

    genome = parse_genome({"image_size": 32, "num_classes": 10, "patch_size": 4, "overlap": True, "layout": "P-P",
                           "depths": [2, 1], "dims": [16, 32], "layer_scale": 1e-5, "pool": "mean"})
    report = count_cost(genome)
    assert estimate_macs(genome) == report.flops
    assert abs(estimate_footprint(genome).params - report.params) <= 0.01 * report.params


def test_every_preset_fits_an_ordinary_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LIMIT_ENV, "16")
    for name in PRESETS:
        check_fits(load_genome(name))
