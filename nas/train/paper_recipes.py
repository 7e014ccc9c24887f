"""The papers' ImageNet-1k training recipes for the paper-scale presets (``nas train PRESET --recipe paper``).

Each recipe is a set of :class:`~nas.train.config.TrainConfig` fields with its source. All three
families train with AdamW, a linear warm-up and a cosine decay, label smoothing 0.1 and DeiT's batch
regularisers; the learning rates are the papers' for their batch sizes (DeiT's rule: 5e-4 x batch / 512).

The image augmentation runs on the device (nas.train.augment): RandomResizedCrop (scale 0.08-1,
ratio 3/4-4/3) replaces the loader's padded crop (the flip stays) and RandAugment follows it:
rand-m9-mstd0.5 (timm's increasing set, 2 ops per image) in DeiT and ShiftViT, 2 layers at magnitude
15 in CoAtNet (its ImageNet-1k appendix recipe as recalled; not checked against a stored copy of the paper; without noise, as in TF's RandAugment).

What the trainer does not reproduce, so a run is close to, not identical with, the papers':
* the crop is taken from the image already fitted to the model's size, not the full-resolution file,
  and resized without antialiasing;
* DeiT's repeated augmentation and the EMA of weights used by CoAtNet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError
from nas.train.config import TrainConfig

__all__ = ["PaperRecipe", "PAPER_RECIPES", "paper_recipe", "paper_config"]

# DeiT's regularisers, reused by the ShiftViT and CoAtNet recipes below where their papers say so.
# DeiT Table 9: RandomResizedCrop (torchvision defaults) and timm's "rand-m9-mstd0.5-inc1".
_DEIT_REGULARISERS: dict[str, Any] = {"label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 1.0,
                                      "random_erasing": 0.25, "augment": True, "rrc_scale_min": 0.08,
                                      "randaugment": "m9-mstd0.5-n2"}


@dataclass(frozen=True)
class PaperRecipe:
    name: str
    fields: dict[str, Any]  # TrainConfig fields
    source: str


_DEIT = PaperRecipe(
    "deit",
    # 300 epochs, batch 1024, lr 5e-4 x 1024/512, weight decay 0.05, 5 warm-up epochs, cosine to 1e-5,
    # no gradient clipping
    {"epochs": 300, "batch_size": 1024, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 5.0,
     "min_lr_ratio": 0.01, "grad_clip": None, **_DEIT_REGULARISERS},
    "Touvron et al., DeiT (ICML 2021), Table 9 and facebookresearch/deit main.py defaults; DeepViT "
    "(Zhou et al., 2021) trains with the same recipe",
)
_SHIFTVIT = PaperRecipe(
    "shiftvit",
    # Swin Transformer's recipe: 300 epochs, batch 1024, lr 1e-3, weight decay 0.05, 20 warm-up
    # epochs, cosine to 1e-5, gradient clipping at norm 5
    {"epochs": 300, "batch_size": 1024, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 20.0,
     "min_lr_ratio": 0.01, "grad_clip": 5.0, **_DEIT_REGULARISERS},
    "Wang et al., ShiftViT (AAAI 2022), Sec. 4.1 (follows Swin Transformer, Liu et al., ICCV 2021, Sec. 4.1)",
)
_COATNET = PaperRecipe(
    "coatnet",
    # ImageNet-1k: 300 epochs, batch 4096, peak lr 1e-3, weight decay 0.05, 10k warm-up steps
    # (about 32 epochs of 1.28M images at batch 4096), label smoothing 0.1, mixup 0.8; no CutMix and no
    # random erasing in the paper's table
    {"epochs": 300, "batch_size": 4096, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 32.0,
     "min_lr_ratio": 0.01, "label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 0.0,
     "random_erasing": 0.0, "augment": True,
     # Inception-style crop (as TF's EfficientNet input pipeline: area 0.08-1, ratio 3/4-4/3) and
     # RandAugment 2 layers, magnitude 15
     "rrc_scale_min": 0.08, "randaugment": "m15-n2"},
    "Dai et al., CoAtNet (NeurIPS 2021), Appendix A.2, hyper-parameter table (ImageNet-1k)",
)

# Preset name -> recipe. The 32x32 presets have none: their recipe is nas.train.recipes'.
PAPER_RECIPES: dict[str, PaperRecipe] = {
    **{name: _DEIT for name in ("deit_tiny", "deit_small", "vit_base_16", "vit_large_16", "vit_16", "vit_24",
                                "vit_32", "deepvit_16", "deepvit_24", "deepvit_32")},
    **{name: _SHIFTVIT for name in ("shiftvit_tiny_light", "shiftvit_tiny", "shiftvit_small_light",
                                    "shiftvit_small", "shiftvit_base")},
    **{name: _COATNET for name in ("coatnet_0", "coatnet_1", "coatnet_2")},
}


def paper_recipe(preset: str) -> PaperRecipe:
    """The recipe of ``preset``; a one-line error for a name without one."""
    if preset not in PAPER_RECIPES:
        raise ConfigError(f"--recipe paper: no paper recipe for {preset!r}; presets with one: "
                          f"{', '.join(PAPER_RECIPES)} (the 32x32 presets use the default recipe)")
    return PAPER_RECIPES[preset]


def paper_config(preset: str, **overrides: Any) -> TrainConfig:
    """The paper's recipe for ``preset`` as a TrainConfig, with ``overrides`` (``None`` ignored) on top."""
    return TrainConfig.from_dict(paper_recipe(preset).fields).replace(**overrides)
