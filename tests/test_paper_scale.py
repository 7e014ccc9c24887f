"""Paper-scale presets: official-code init, LayerNorm eps and stochastic depth; the papers' recipes."""
from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch import nn

from nas.cli.main import main
from nas.errors import ConfigError, GenomeError
from nas.genome import PRESETS, load_genome, parse_genome
from nas.models import build_model
from nas.train.paper_recipes import PAPER_RECIPES, paper_config

# Reduced-resolution builds keep these fast; init and eps do not depend on the image size.
SMALL_VIT = {"image_size": 32, "patch_size": 16, "layout": "A", "depths": [2], "dims": [48], "heads": 2,
             "mlp_ratio": 2, "num_classes": 10}


def test_defaults_stay_out_of_the_canonical_document_so_old_keys_hold() -> None:
    plain = parse_genome(SMALL_VIT)
    assert "norm_eps" not in plain.to_dict() and "init" not in plain.to_dict()
    assert parse_genome({**SMALL_VIT, "norm_eps": 1e-5, "init": "nas"}).key == plain.key  # defaults, spelled out
    tuned = parse_genome({**SMALL_VIT, "norm_eps": 1e-6, "init": "vit"})
    assert tuned.key != plain.key and tuned.to_dict()["norm_eps"] == 1e-6 and tuned.to_dict()["init"] == "vit"
    assert parse_genome(tuned.to_dict()) == tuned  # round trip


def test_bad_values_are_one_line_errors() -> None:
    with pytest.raises(GenomeError, match="init must be one of nas, vit, shiftvit, coatnet; got 'timm'"):
        parse_genome({**SMALL_VIT, "init": "timm"})
    with pytest.raises(GenomeError, match=r"norm_eps must be a number in \(0, 0.1\), got 0.5"):
        parse_genome({**SMALL_VIT, "norm_eps": 0.5})


def test_vit_init_uses_a_002_position_table_and_sets_every_layernorm_eps() -> None:
    torch.manual_seed(0)
    nas_net = build_model(parse_genome({**SMALL_VIT, "dims": [384], "heads": 6}))
    torch.manual_seed(0)
    vit_net = build_model(parse_genome({**SMALL_VIT, "dims": [384], "heads": 6, "init": "vit", "norm_eps": 1e-6}))
    assert float(nas_net.pos_embed.detach().std()) > 0.8  # the short-run unit-scale table
    assert 0.015 < float(vit_net.pos_embed.detach().std()) < 0.025
    norms = [m for m in vit_net.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(m.eps == 1e-6 for m in norms)
    assert all(m.eps == 1e-5 for m in nas_net.modules() if isinstance(m, nn.LayerNorm))


def test_shiftvit_and_coatnet_convolution_inits() -> None:
    shift = build_model(load_genome("shiftvit_tiny_light").replace(image_size=32))
    conv = shift.stem.proj if hasattr(shift.stem, "proj") else next(m for m in shift.modules() if isinstance(m, nn.Conv2d))
    assert 0.015 < float(conv.weight.detach().std()) < 0.025  # trunc-normal 0.02
    coat = build_model(load_genome("coatnet_0").replace(image_size=64))
    for m in (m for m in coat.modules() if isinstance(m, nn.Conv2d) and m.weight.numel() >= 4096):
        fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
        assert float(m.weight.detach().std()) == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
    coat_norms = [m for m in coat.modules() if isinstance(m, nn.LayerNorm)]
    assert coat_norms and all(m.eps == 1e-6 for m in coat_norms)


@pytest.mark.parametrize("name, drop_path, init, eps", [
    ("deit_small", 0.1, "vit", 1e-6), ("deepvit_24", 0.2, "vit", 1e-6), ("vit_16", 0.2, "vit", 1e-6), ("shiftvit_tiny_light", 0.2, "shiftvit", None),
    ("shiftvit_small", 0.4, "shiftvit", None), ("shiftvit_base", 0.6, "shiftvit", None),
    ("coatnet_0", 0.2, "coatnet", 1e-6), ("coatnet_2", 0.5, "coatnet", 1e-6),
    ("vit_cifar", 0.0, None, None), ("coatnet_cifar", 0.0, None, None),
])
def test_presets_carry_their_papers_settings(name: str, drop_path: float, init: str | None, eps: float | None) -> None:
    genome = load_genome(name)
    assert (genome.drop_path, genome.init, genome.norm_eps) == (drop_path, init, eps)


def test_the_32x32_presets_keep_the_unit_scale_table() -> None:
    torch.manual_seed(0)
    assert float(build_model(load_genome("vit_cifar")).pos_embed.detach().std()) > 0.8


def test_paper_recipes_cover_every_paper_scale_preset() -> None:
    paper_scale = {n for n, p in PRESETS.items() if load_genome(n).image_size == 224}
    assert set(PAPER_RECIPES) == paper_scale
    deit = paper_config("deit_small")
    assert (deit.epochs, deit.batch_size, deit.lr, deit.weight_decay, deit.warmup_epochs) == (300, 1024, 1e-3, 0.05, 5.0)
    assert (deit.mixup_alpha, deit.cutmix_alpha, deit.random_erasing, deit.label_smoothing) == (0.8, 1.0, 0.25, 0.1)
    assert (deit.repeated_aug, deit.ema_decay, deit.grad_clip) == (3, 0.99996, None)
    shift, coat = paper_config("shiftvit_tiny"), paper_config("coatnet_1")
    assert (shift.warmup_epochs, shift.grad_clip, shift.repeated_aug, shift.ema_decay) == (20.0, None, 3, 0.99996)
    assert (coat.batch_size, coat.grad_clip, coat.ema_decay, coat.cutmix_alpha, coat.randaugment) == (
        4096, 1.0, None, 0.0, "m15-n2")
    deepvit, deepvit_32 = paper_config("deepvit_24"), paper_config("deepvit_32")
    assert (deepvit.lr, deepvit.warmup_epochs, deepvit.repeated_aug, deepvit.mixup_alpha) == (5e-4, 5.0, 1, 0.8)
    assert (deepvit_32.mixup_alpha, deepvit_32.cutmix_alpha) == (0.1, 0.0)
    assert paper_config("vit_24") == deepvit  # the depth study's baseline trains as DeepViT does
    for name in PAPER_RECIPES:  # every recipe ends its cosine at 1e-5, as all four sources do
        config = paper_config(name)
        assert config.lr * config.min_lr_ratio == pytest.approx(1e-5)
    assert paper_config("deit_small", epochs=2, batch_size=None).epochs == 2  # overrides win, None ignored
    with pytest.raises(ConfigError, match="no paper recipe for 'vit_cifar'"):
        paper_config("vit_cifar")


def test_cli_recipe_paper(capsys: pytest.CaptureFixture[str]) -> None:
    from nas.cli.train import _config

    args = argparse.Namespace(config=None, epochs=1, seconds=None, batch_size=None, lr=None, subset=None,
                              device=None, save=None, recipe="paper", spec="deit_small")
    config = _config(args, load_genome("deit_small"))
    assert (config.epochs, config.batch_size, config.mixup_alpha) == (1, 1024, 0.8)  # the flag over the recipe
    assert main(["train", "vit_cifar", "--recipe", "paper", "--data", "synthetic"]) == 2
    assert "error: --recipe paper: no paper recipe for 'vit_cifar'" in capsys.readouterr().err
