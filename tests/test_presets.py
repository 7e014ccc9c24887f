"""Presets land on their papers' published parameter counts and say where they come from."""
from __future__ import annotations

import json

import pytest
import torch

from nas.cli.main import main
from nas.genome import PRESETS, load_genome
from nas.models import build_model

PUBLISHED = sorted(name for name, p in PRESETS.items() if p.params_m is not None)
CIFAR_PRESETS = ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar")


def _param_count(name: str) -> int:
    """Parameters of the built preset; a meta-device build has every shape and costs no memory."""
    with torch.device("meta"):
        model = build_model(load_genome(name))
    return sum(p.numel() for p in model.parameters())


def test_the_seed_papers_are_all_there() -> None:
    assert {"deit_tiny", "deit_small", "vit_base_16", "vit_large_16", "vit_16", "deepvit_16", "vit_32", "deepvit_32",
            "shiftvit_tiny_light", "shiftvit_tiny", "shiftvit_base", "coatnet_0", "coatnet_1", "coatnet_2",
            *CIFAR_PRESETS} <= set(PRESETS)


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_parameter_count(name: str) -> None:
    preset = PRESETS[name]
    count = _param_count(name)
    assert count / 1e6 == pytest.approx(preset.params_m, rel=preset.params_rtol), f"{name}: {count:,}"


def test_exact_counts_of_the_isotropic_models() -> None:
    """ViT/DeiT counts follow in closed form: D=192, 12 blocks, 14x14 patches of 16x16x3, cls, 1000 classes.

    stem 3*16*16*D + D, cls D, positions 197*D, per block 2 LN (4D) + qkv (3D^2 + 3D) + proj (D^2 + D)
    + MLP (8D^2 + 5D), final LN 2D, head 1000*D + 1000.
    """
    d, depth = 192, 12
    block = 4 * d + 3 * d * d + 3 * d + d * d + d + 8 * d * d + 5 * d
    expected = 768 * d + d + d + 197 * d + depth * block + 2 * d + 1000 * d + 1000
    assert expected == 5_717_416
    assert _param_count("deit_tiny") == expected
    # Re-attention adds Theta (H x H), its bias (H) and a BatchNorm over heads (2H) per block: 12 heads.
    assert _param_count("deepvit_16") - _param_count("vit_16") == 16 * (144 + 12 + 24)


@pytest.mark.parametrize("name", CIFAR_PRESETS)
def test_cifar_presets_are_small(name: str) -> None:
    genome = load_genome(name)
    assert genome.image_size == 32 and genome.num_classes == 10
    assert _param_count(name) < 2_000_000


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_cites_its_source(name: str) -> None:
    preset = PRESETS[name]
    assert preset.name == name
    assert preset.source.strip()
    assert 0 < preset.params_rtol < 0.1
    load_genome(name)  # every preset is a valid genome


# -- nas presets ---------------------------------------------------------------------------------------
def test_presets_command_lists_every_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in PRESETS)
    assert "Dai et al., CoAtNet (NeurIPS 2021)" in out


def test_presets_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert list(listed) == list(PRESETS)
    assert listed["deit_tiny"]["params_m"] == 5.72 and listed["deit_tiny"]["layout"] == "A"
    assert listed["coatnet_cifar"]["params_m"] is None and listed["coatnet_cifar"]["image_size"] == 32
    assert listed["shiftvit_cifar"]["key"] == load_genome("shiftvit_cifar").key
    assert all(entry["source"] for entry in listed.values())
