"""The builder: every family, every mixer in every stage position, the 32x32 presets, seeds."""
from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from nas.cli.main import main
from nas.errors import GenomeError
from nas.genome import PRESETS, Genome, load_genome
from nas.layers import Block
from nas.mixers import BUILTIN_MIXERS, mixer_spec
from nas.layers.mbconv import MBConv
from nas.layers.mlp import DropPath
from nas.models import VisionNet, build_model

CIFAR_PRESETS = ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar")

# Each published family shrunk to dim 16-64 and depth 1, everything else (stem, pooling, positions,
# downsampling, patch norm) as in the preset; 32x32 inputs fit every family's total downsampling.
SMALL_FAMILIES: dict[str, dict[str, Any]] = {
    "deit_tiny": {"dims": [32], "heads": 2},
    "deepvit_16": {"dims": [32], "heads": 2},
    "shiftvit_tiny_light": {"dims": [16, 32, 64, 64]},
    "coatnet_0": {"dims": [16, 32, 32, 64], "heads": [None, None, 2, 2], "stem_dim": 16, "head_hidden": 32},
}


def _forward_backward(model: nn.Module, batch: int = 2, image: int = 32) -> torch.Tensor:
    x = torch.randn(batch, model.genome.in_channels, image, image)
    out = model(x)
    nn.functional.cross_entropy(out, torch.arange(batch) % out.shape[1]).backward()
    return out


def _stage_sides(model: VisionNet) -> list[int]:
    """Grid side after each stage of the built network (every stage ends with a block)."""
    blocks = [stage[-1] for stage in model.stages]
    assert all(isinstance(b, Block) for b in blocks)
    return [b.grid.h for b in blocks]


@pytest.mark.parametrize("family", sorted(SMALL_FAMILIES))
def test_each_family_builds_small(family: str) -> None:
    genome = load_genome({**PRESETS[family].genome, "image_size": 32, "num_classes": 7, "depths": 1,
                          **SMALL_FAMILIES[family]})
    model = build_model(genome)
    out = _forward_backward(model)
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    assert _stage_sides(model) == genome.stage_resolutions()
    features = model.forward_features(torch.randn(2, 3, 32, 32))
    side = genome.stage_resolutions()[-1]
    assert features.shape == (2, side * side + (genome.pool == "cls"), genome.stages[-1].dim)


# -- the 32x32 presets ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CIFAR_PRESETS)
def test_cifar_presets_train(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(load_genome(name)).train()
    assert sum(p.numel() for p in model.parameters()) < 2_000_000
    out = _forward_backward(model, batch=4)
    assert out.shape == (4, 10) and torch.isfinite(out).all()
    # MBConv's pre-norm bias feeds a bias-free 1x1 conv and then BatchNorm, which cancels it exactly.
    cancelled = {f"{n}.norm.bias" for n, m in model.named_modules() if isinstance(m, MBConv)}
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname
        if pname not in cancelled:
            assert p.grad.abs().max() > 0, f"{name}: {pname} gets no gradient"


def test_cifar_grids_are_the_hand_computed_ones() -> None:
    sides = {name: _stage_sides(build_model(load_genome(name))) for name in CIFAR_PRESETS}
    assert sides == {
        "vit_cifar": [8],  # 32 / patch 4
        "deepvit_cifar": [8],
        "shiftvit_cifar": [16, 8, 4, 2],  # 32 / patch 2, then patch merging
        "coatnet_cifar": [16, 8, 4, 2],  # stride-1 stem keeps 32, then each stage halves
    }


# -- every mixer in every position of a 4-stage pyramid -----------------------------------------------
PYRAMID = list(itertools.product(sorted(s.name for s in BUILTIN_MIXERS), range(4), ("merge", "pool"), ("mean", "cls")))


@pytest.mark.parametrize("mixer,position,downsample,pool", PYRAMID,
                         ids=[f"{m}@{i}-{d}-{p}" for m, i, d, p in PYRAMID])
def test_any_mixer_in_any_stage(mixer: str, position: int, downsample: str, pool: str) -> None:
    letters = ["A"] * 4
    letters[position] = mixer_spec(mixer).letter
    doc = {"image_size": 32, "num_classes": 5, "patch_size": 4, "layout": "-".join(letters), "depths": 1,
           "dims": [16, 32, 32, 64], "heads": 2, "mlp_ratio": 2, "shift_ratio": 0.25, "expansion": 2,
           "position": "relative", "downsample": downsample, "pool": pool}
    if pool == "cls" and not mixer_spec(mixer).attention and position == 3:
        with pytest.raises(GenomeError, match=r"pool 'cls' needs the last stage to be attention"):
            load_genome(doc)
        return
    genome = load_genome(doc)
    torch.manual_seed(0)
    model = build_model(genome)
    out = _forward_backward(model)
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    assert _stage_sides(model) == [8, 4, 2, 1]  # 32 / patch 4, then halved by each later stage
    for pname, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), pname


@pytest.mark.parametrize("downsample", ["merge", "pool"])
def test_conv_stem_pyramid(downsample: str, tiny_genome: Callable[..., Genome]) -> None:
    genome = tiny_genome(layout="C-S-R-A", stem="conv", patch_size=None, stem_stride=1, stem_dim=8,
                         dims=[16, 32, 32, 64], downsample=downsample, pool="cls", shift_ratio=0.25, image_size=32)
    model = build_model(genome)
    out = _forward_backward(model)
    assert out.shape == (2, 4) and torch.isfinite(out).all()
    assert _stage_sides(model) == genome.stage_resolutions() == [16, 8, 4, 2]


# -- stochastic depth and seeds ------------------------------------------------------------------------
def test_drop_path_rates_rise_linearly(tiny_genome: Callable[..., Genome]) -> None:
    genome = tiny_genome(layout="A-A", depths=[1, 2], dims=[32, 64], image_size=32, drop_path=0.5)
    model = build_model(genome)
    rates = [m.p for m in model.modules() if isinstance(m, DropPath)]  # one per block, both branches
    assert rates == pytest.approx([0.0, 0.25, 0.5])  # from 0 at the first block to drop_path at the last
    x = torch.randn(8, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))  # no dropping at evaluation
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    assert not torch.equal(a, model(x))


def test_same_seed_same_network(tiny_genome: Callable[..., Genome]) -> None:
    genome = tiny_genome(layout="C-T", stem="conv", patch_size=None, dims=[16, 32], image_size=32)
    x = torch.randn(2, 3, 32, 32)

    def build(seed: int) -> VisionNet:
        torch.manual_seed(seed)
        return build_model(genome)

    a, b, c = build(0), build(0), build(1)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.state_dict().values(), b.state_dict().values()))
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), c(x))


@pytest.mark.parametrize("name", ["deit_tiny", *CIFAR_PRESETS])
def test_meta_device_builds_count_the_same(name: str) -> None:
    """Parameter counts are read off a ``torch.device("meta")`` build (no memory, no init), as on CPU."""
    genome = load_genome(name)
    with torch.device("meta"):
        meta = build_model(genome)
    cpu = build_model(genome)
    assert [(n, p.shape) for n, p in meta.named_parameters()] == [(n, p.shape) for n, p in cpu.named_parameters()]


# -- nas build -----------------------------------------------------------------------------------------
def test_build_json_reports_the_built_network(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "shiftvit_cifar", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    genome = load_genome("shiftvit_cifar")
    assert report["key"] == genome.key and report["layout"] == "S-S-S-S"
    assert report["params"] == sum(p.numel() for p in build_model(genome).parameters()) == 1_139_658
    assert [s["grid"] for s in report["stages"]] == [[16, 16], [8, 8], [4, 4], [2, 2]]
    assert [s["tokens"] for s in report["stages"]] == [256, 64, 16, 4]
    assert [s["depth"] for s in report["stages"]] == [1, 1, 3, 1]
    # stem: 2x2x3 -> 32 conv with bias (416) + GroupNorm (64); head: final norm (512) + 256 -> 10 (2570)
    assert (report["stem"]["params"], report["head"]["params"]) == (480, 3082)
    parts = report["stem"]["params"] + sum(s["params"] for s in report["stages"]) + report["head"]["params"]
    assert parts == report["params"]
    path = tmp_path / "g.json"
    path.write_text(json.dumps(report["genome"]))
    assert load_genome(path) == genome  # the printed genome is a genome file


def test_build_table(capsys: pytest.CaptureFixture[str]) -> None:
    """vit_cifar by hand: D=128, 6 blocks, MLP ratio 2, 8x8 patches of 4x4 + cls = 65 tokens, 10 classes.

    stem 48*128+128 + cls 128 + positions 65*128 = 14,720; block 4*128 (LNs) + 3*128^2+3*128 (qkv)
    + 128^2+128 (proj) + 2*128^2+256 + 2*128^2+128 (MLP) = 132,480; head 2*128 + 1,290 = 1,546.
    """
    assert main(["build", "vit_cifar"]) == 0
    out = capsys.readouterr().out
    assert f"genome {load_genome('vit_cifar').key}  layout A  depth 6" in out
    for cells in (["stem", "patch 4x4", "128", "8x8", "65", "14,720"], ["stage 0", "attention", "6", "128", "8x8", "65",
                  "794,880"], ["head", "cls pool", "10", "1,546"], ["total", "6", "811,146"]):
        line = next(line for line in out.splitlines() if cells[0] in line)
        assert [c.strip() for c in re.split(r"[│|]", line) if c.strip()] == cells  # unicode or ASCII box
    assert "params: 811,146 (0.81M)" in out
    assert "preset vit_cifar: nas: 32x32" in out


def test_build_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "vit_cifar", "--image-size", "64", "--num-classes", "100", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stages"][0]["grid"] == [16, 16] and report["stages"][0]["tokens"] == 257
    assert (report["genome"]["image_size"], report["genome"]["num_classes"]) == (64, 100)
    # 192 more position rows of 128 and 90 more classes of 128 + 1
    assert report["params"] == 811_146 + 192 * 128 + 90 * 129


@pytest.mark.parametrize("argv,message", [
    (["build", "vit_cifr"], "error: no preset or genome file named 'vit_cifr'; did you mean 'vit_cifar'?"),
    (["build", "vit_cifar", "--image-size", "30"], "error: image_size 30 is not divisible by the total downsampling 4"),
    (["build", "missing.yaml"], "error: file not found: missing.yaml"),
])
def test_build_bad_input(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(message) and "Traceback" not in captured.err
    assert captured.out == ""


def test_build_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["build", "vit_cifar", "--image-size", "big"]) == 2
    assert capsys.readouterr().err == "error: --image-size must be a whole number >= 1, got 'big'\n"
    assert main(["build", "vit_cifar", "--colour", "red"]) == 2
    assert capsys.readouterr().err == ("error: nas: unrecognized arguments: --colour red (see `nas --help`)\n")


def test_position_table_starts_at_unit_scale() -> None:
    # At ViT's 0.02 the table vanishes next to the ~0.5-scale patch tokens and short runs stall
    # (nas.models.builder); N(0, 1) makes every position visible from the first step.
    torch.manual_seed(0)
    model = build_model(load_genome("vit_cifar"))
    assert model.pos_embed is not None and 0.9 < model.pos_embed.std().item() < 1.1
    tokens = model.stem(torch.randn(8, 3, 32, 32))
    assert model.pos_embed.std().item() > tokens.std().item()


def test_position_table_stays_small_ahead_of_convolutions() -> None:
    # Convs and shifts see positions through padding; a unit-scale table would only be input noise.
    genome = load_genome("vit_cifar").replace(stages=[{"mixer": "conv", "depth": 1, "dim": 32}], pool="mean")
    model = build_model(genome)
    assert model.pos_embed is not None and model.pos_embed.std().item() < 0.05


def test_metaformer_macro_structure(tiny_genome: Callable[..., Genome]) -> None:
    """overlap: PoolFormer's 7x7/4 stem (padding 2) and 3x3/2 merging (padding 1) on the same grids as
    patches; layer_scale: a per-channel factor on each residual branch, starting at its value."""
    genome = tiny_genome(layout="P-P", dims=[16, 32], depths=[1, 1], patch_size=4, image_size=32, overlap=True,
                         layer_scale=1e-5, pool="mean", position="none")
    model = build_model(genome)
    assert model.stem.proj.kernel_size == (7, 7) and model.stem.proj.padding == (2, 2)
    merging = model.stages[1][0]
    assert merging.reduction.kernel_size == (3, 3) and merging.reduction.padding == (1, 1)
    block = model.stages[0][0]
    assert torch.equal(block.scale1.gamma, torch.full((16,), 1e-5)) and block.scale2 is not None
    out = _forward_backward(model)
    assert out.shape == (2, 4) and _stage_sides(model) == [8, 4]
    plain = tiny_genome(layout="P-P", dims=[16, 32], depths=[1, 1], patch_size=4, image_size=32, pool="mean",
                        position="none")
    assert "overlap" not in plain.to_dict() and "layer_scale" not in plain.to_dict()  # old keys unchanged
