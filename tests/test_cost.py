"""Cost: FLOPs (MACs) through fvcore against closed forms, the cache, latency and ``nas cost``."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.cli.main import main
from nas.cost import ELEMENTWISE_OPS, CostCache, CostReport, count_cost, count_params, measure_latency
from nas.cost import analytic as cf
from nas.cost.handles import einsum_macs, matmul_macs, sdpa_macs
from nas.errors import NasError
from nas.genome import load_genome
from nas.models import build_model, record_attention


def tiny(layout: str = "A", **kw: object) -> dict:
    doc = {"image_size": 32, "patch_size": 8, "num_classes": 10, "layout": layout, "depths": [1], "dims": [32],
           "heads": 2, "mlp_ratio": 4}
    doc.update(kw)
    return doc


# -- closed forms per mixer -------------------------------------------------------------------------
def test_isotropic_attention_block_matches_closed_form() -> None:
    r = count_cost(tiny("A"))
    n, d = 17, 32  # 4x4 patches + cls
    assert cf.attention_block_macs(n, d, 4) == 4 * n * d * d + 2 * n * n * d + 2 * 4 * n * d * d == 227_392
    assert r.flops_by_stage["stem"] == cf.patch_embed_macs(32, 8, 3, 32) == 98_304
    assert r.flops_by_stage["stages.0"] == 227_392
    assert r.flops_by_stage["head"] == cf.head_macs(32, 10) == 320
    assert r.flops == 98_304 + 227_392 + 320


def test_reattention_adds_heads_squared_times_tokens_squared() -> None:
    plain, re = count_cost(tiny("A", depths=[2])), count_cost(tiny("R", depths=[2]))
    assert re.flops - plain.flops == 2 * cf.reattention_extra_macs(17, 2) == 2 * 2 * 2 * 17 * 17
    assert re.flops_by_operator["einsum"] == 2 * 4 * 17 * 17


def test_shift_counts_zero_and_only_the_mlp_remains() -> None:
    r = count_cost({"image_size": 16, "patch_size": 4, "patch_norm": True, "pool": "mean", "num_classes": 10,
                    "layout": "S", "depths": [2], "dims": [32], "mlp_ratio": 2})
    assert cf.shift_macs() == 0
    assert r.flops_by_stage["stages.0"] == 2 * cf.mlp_macs(16, 32, 2) == 2 * 2 * 2 * 16 * 32 * 32
    assert r.flops_by_stage["stem"] == 16 * 3 * 16 * 32


def test_mbconv_counts_its_convolutions() -> None:
    r = count_cost({"image_size": 16, "stem": "conv", "stem_dim": 16, "stem_stride": 1, "pool": "mean",
                    "num_classes": 10, "layout": "C", "depths": [2], "dims": [32], "expansion": 4, "se_ratio": 0.25})
    first = cf.mbconv_macs(16, 16, 32, stride=2)  # halves the grid, widens 16 -> 32
    second = cf.mbconv_macs(8, 32, 32)
    # expand (stride 2) 8*8*16*128 + dw 8*8*128*9 + project 8*8*128*32 + SE 2*128*4 + shortcut 8*8*16*32
    assert first == 131_072 + 73_728 + 262_144 + 1_024 + 32_768
    assert second == 262_144 + 73_728 + 262_144 + 2_048
    assert r.flops_by_stage["stages.0"] == first + second
    assert r.flops_by_stage["stem"] == 16 * 16 * (3 * 9 * 16 + 16 * 9 * 16)


@pytest.mark.parametrize("position", ["absolute", "relative"])
def test_sdpa_and_explicit_attention_cost_the_same(position: str) -> None:
    model = build_model(load_genome(tiny("A", depths=[2], position=position, pool="mean")))
    default = count_cost(model)  # fused, except with a learned bias on CPU (explicit there: faster)
    with record_attention(model):
        explicit = count_cost(model)
    assert default.flops == explicit.flops
    if position == "absolute":
        assert default.flops_by_operator["scaled_dot_product_attention"] == explicit.flops_by_operator["matmul"]


# -- handles ----------------------------------------------------------------------------------------
def test_einsum_is_exact() -> None:
    assert einsum_macs("bhij,hg->bgij", [[2, 3, 5, 5], [3, 4]]) == 2 * 3 * 4 * 5 * 5
    assert einsum_macs("ij,jk", [[3, 4], [4, 5]]) == 60  # implicit output
    assert einsum_macs("...ij,...jk->...ik", [[7, 3, 4], [4, 5]]) == 7 * 60  # ellipsis broadcast
    assert einsum_macs("ij,jk,kl->il", [[2, 3], [3, 4], [4, 5]]) == 2 * 3 * 4 + 2 * 4 * 5  # left to right
    assert einsum_macs("ii->i", [[4, 4]]) == 0

    class Mix(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.randn(3, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.einsum("bchw,cd->bdhw", x, self.w)

    assert count_cost(Mix(), image_size=4).flops == 1 * 3 * 4 * 4 * 5


def test_matmul_and_sdpa_formulas() -> None:
    assert matmul_macs([5, 3], [2, 3, 4]) == 2 * 5 * 3 * 4  # fvcore's handle would say 60
    assert matmul_macs([3], [3, 4]) == 12
    assert sdpa_macs([2, 3, 7, 4], [2, 3, 7, 4], [2, 3, 7, 4]) == 2 * 2 * 3 * 7 * 7 * 4


# -- breakdowns and the unsupported list -------------------------------------------------------------
MIXED = [
    tiny("A"), tiny("R", reattn_norm="layer"), tiny("R", reattn_norm="none", position="relative"),
    {"image_size": 32, "patch_size": 4, "patch_norm": True, "num_classes": 10, "layout": "S-A-R-C",
     "depths": [1, 1, 1, 1], "dims": [16, 32, 32, 64], "heads": 2},
    {"image_size": 32, "stem": "conv", "stem_dim": 16, "stem_stride": 1, "num_classes": 10, "layout": "C-S-A-R",
     "depths": [1, 1, 1, 1], "dims": [16, 32, 32, 64], "heads": 2, "position": "relative", "head_hidden": 32},
]


def _sampled(n: int, seed: int = 0) -> list[dict]:
    """Random small genomes over mixers, layouts and options (a stand-in for the search spaces)."""
    rng, docs = random.Random(seed), []
    for _ in range(n):
        stages = rng.randint(1, 3)
        conv_stem = rng.random() < 0.5
        doc = {"image_size": 32, "num_classes": 10,
               "layout": "-".join(rng.choice("ARSC") for _ in range(stages)),
               "depths": [rng.randint(1, 2) for _ in range(stages)], "dims": [16 * 2**i for i in range(stages)],
               "heads": 2, "position": rng.choice(["absolute", "relative", "none"])}
        # the cls token needs an attention-type last stage to read from
        doc["pool"] = rng.choice(["cls", "mean"]) if doc["layout"][-1] in "AR" else "mean"
        if conv_stem:
            doc.update(stem="conv", stem_dim=16, stem_stride=1)
        else:
            doc.update(patch_size=4)
        docs.append(doc)
    return docs


@pytest.mark.parametrize("doc", MIXED + _sampled(6), ids=lambda d: d["layout"])
def test_unsupported_ops_are_only_elementwise_and_stages_sum(doc: dict) -> None:
    r = count_cost(doc)
    assert set(r.unsupported_ops) <= ELEMENTWISE_OPS, set(r.unsupported_ops) - ELEMENTWISE_OPS
    assert r.uncounted_arithmetic == {}
    assert sum(r.flops_by_stage.values()) == r.flops == sum(r.flops_by_operator.values())
    assert sum(r.params_by_stage.values()) == r.params
    assert list(r.flops_by_stage) == ["stem"] + [f"stages.{i}" for i in range(len(doc["depths"]))] + ["head"]
    assert "MAC" in r.unit


SPACES = sorted((Path(__file__).resolve().parents[1] / "nas" / "configs" / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", SPACES, ids=lambda p: p.stem)
def test_genomes_sampled_from_the_search_spaces_leave_only_elementwise_ops(path: Path) -> None:
    optuna = pytest.importorskip("optuna")
    from nas.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        r = count_cost(space.sample(study.ask()))
        assert set(r.unsupported_ops) <= ELEMENTWISE_OPS, set(r.unsupported_ops) - ELEMENTWISE_OPS
        assert sum(r.flops_by_stage.values()) == r.flops


def test_params_need_no_trace() -> None:
    model = build_model(load_genome(MIXED[3]))
    total, trainable, by_stage = count_params(model)
    assert total == sum(p.numel() for p in model.parameters()) == trainable == sum(by_stage.values())


def test_counting_leaves_threads_and_rng_alone() -> None:
    threads, state = torch.get_num_threads(), torch.get_rng_state()
    count_cost(tiny("R"))
    assert torch.get_num_threads() == threads and torch.equal(torch.get_rng_state(), state)


def test_plain_module_needs_image_size() -> None:
    with pytest.raises(NasError, match="image_size"):
        count_cost(nn.Sequential(nn.Conv2d(3, 4, 3)))


# -- cache ------------------------------------------------------------------------------------------
def test_cache_hit_does_not_retrace() -> None:
    calls: list[str] = []

    def counted(g):  # noqa: ANN001, ANN202
        calls.append(g.key)
        return count_cost(g)

    cache = CostCache(None)
    g = load_genome(tiny("A"))
    first = cache.get_or_compute(g, compute=counted)
    again = cache.get_or_compute(tiny("A"), compute=counted)  # same genome, other spelling
    assert first == again and calls == [g.key] and (cache.hits, cache.misses) == (1, 1)


def test_disk_cache_round_trip_and_a_second_writer(tmp_path) -> None:  # noqa: ANN001
    g, other = load_genome(tiny("A")), load_genome(tiny("R"))
    writer, reader = CostCache(tmp_path), CostCache(tmp_path)
    report = writer.get_or_compute(g)
    with open(tmp_path / CostCache.FILENAME, "a") as fh:
        fh.write('{"key": "torn"')  # left by a worker that died mid-write
    assert reader.get(g.key) == report  # appended after the reader opened: picked up on a miss
    writer.get_or_compute(other)
    reopened = CostCache(tmp_path)
    assert g.key in reopened and len(reopened) == 2
    assert reopened.get_or_compute(g, compute=lambda _: pytest.fail("retraced")) == report
    assert CostReport.from_dict(json.loads(json.dumps(report.to_dict()))) == report


# -- presets ----------------------------------------------------------------------------------------
def test_deit_tiny_lands_on_fvcore_count() -> None:
    r = count_cost("deit_tiny")
    assert r.gflops == pytest.approx(1.26, rel=0.02)
    assert r.params == pytest.approx(5.72e6, rel=0.005)


def test_coatnet0_preset_lands_on_the_paper() -> None:
    r = count_cost("coatnet_0")  # MBConv strides its 1x1 expansion, as CoAtNet's appendix A.1 writes it
    assert r.gflops == pytest.approx(4.2, rel=0.05)
    assert r.params == pytest.approx(25e6, rel=0.02)


# -- latency ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("train_step", [False, True])
def test_latency_report_is_sane_on_cpu(train_step: bool) -> None:
    model = build_model(load_genome(tiny("A", image_size=16)))
    before = [p.detach().clone() for p in model.parameters()]
    r = measure_latency(model, batch_size=2, device="cpu", train_step=train_step, warmup=1, repeats=3)
    assert r.latency_ms > 0 and r.latency_iqr_ms >= 0 and r.peak_mem_mb >= 0
    assert r.img_per_s == pytest.approx(2 / (r.latency_ms / 1e3))
    assert (r.device, r.mode, r.repeats) == ("cpu", "train_step" if train_step else "inference", 3)
    assert model.training and all(torch.equal(a, b) for a, b in zip(before, model.parameters()))


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_json(tmp_path, capsys) -> None:  # noqa: ANN001
    path = tmp_path / "g.json"
    path.write_text(json.dumps(tiny("R")))
    assert main(["cost", str(path), "--image-size", "16", "--json", "--latency", "--repeats", "2", "--warmup", "0",
                 "--device", "cpu", "--cache", str(tmp_path)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("params", "flops", "unit", "flops_by_operator", "flops_by_stage", "unsupported_ops", "latency_ms",
                "img_per_s"):
        assert key in out
    assert out["image_size"] == 16 and out["flops"] == count_cost(tiny("R", image_size=16)).flops
    assert (tmp_path / CostCache.FILENAME).is_file()
    assert main(["cost", str(path)]) == 0 and "MACs" in capsys.readouterr().out


def test_cpu_peak_memory_counts_the_weights_and_the_training_state() -> None:
    """About 25 MB of weights: inference needs at least them, a training step also gradients and AdamW's
    two moments (4x the weights in all); the old count over the timed runs alone saw a few MiB."""
    from nas.genome import parse_genome

    genome = parse_genome({"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "A", "depths": 2,
                           "dims": 512, "heads": 8})
    weights_mb = sum(p.numel() for p in build_model(genome).parameters()) * 4 / 2**20
    infer = measure_latency(genome, device="cpu", warmup=0, repeats=1)
    train = measure_latency(genome, device="cpu", warmup=0, repeats=1, train_step=True)
    assert infer.peak_mem_mb >= 0.8 * weights_mb
    assert train.peak_mem_mb >= 3 * weights_mb
    assert infer.memory_source.startswith("cpu") and train.memory_source.startswith("cpu")

