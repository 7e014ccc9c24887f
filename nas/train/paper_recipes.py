"""The papers' ImageNet-1k training recipes for the paper-scale presets (``nas train PRESET --recipe paper``).

Each recipe is a set of :class:`~nas.train.config.TrainConfig` fields with its source: the paper's
table where it prints one (DeiT Table 9, CoAtNet Table 10), otherwise the official code's training
defaults and configs (ShiftViT: microsoft/SPACH main.py; DeepViT: zhoudaquan/dvit_repo scripts/*.yaml).
All train with AdamW, a linear warm-up and a cosine decay to 1e-5 and label smoothing 0.1.

The image augmentation runs on the device (nas.train.augment): RandomResizedCrop (scale 0.08-1,
ratio 3/4-4/3) replaces the loader's padded crop (the flip stays) and RandAugment follows it:
rand-m9-mstd0.5 (timm's increasing set, 2 ops per image) in DeiT, DeepViT and ShiftViT; 2 layers at
magnitude 15 in CoAtNet (without noise, as in TF's RandAugment). Repeated augmentation
(``repeated_aug``) and the weights' moving average (``ema_decay``) are set where the source sets them.

What the trainer does not reproduce, so a run is close to, not identical with, the papers':
* the crop is taken from the image already fitted to the model's size, not the full-resolution file,
  and resized without antialiasing; CoAtNet's evaluation centre crop is not taken either;
* DeiT's sampler also trims each epoch to a multiple of 256 images per GPU; here an epoch keeps its length;
* DeepViT-32's cosine regularisation of the re-attention (``cos_reg_component: 12``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError
from nas.train.config import TrainConfig

__all__ = ["PaperRecipe", "PAPER_RECIPES", "paper_recipe", "paper_config"]

# DeiT's batch regularisers and augmentation (Table 9: RandAugment 9/0.5, mixup 0.8, CutMix 1.0,
# erasing 0.25, label smoothing 0.1; RandomResizedCrop at torchvision's defaults), shared by the
# recipes built on DeiT's code.
_DEIT_REGULARISERS: dict[str, Any] = {"label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 1.0,
                                      "random_erasing": 0.25, "augment": True, "rrc_scale_min": 0.08,
                                      "randaugment": "m9-mstd0.5-n2"}
# The moving average that DeiT's, ShiftViT's and DeepViT's code keep by default (timm ModelEma,
# --model-ema-decay 0.99996). Their reported accuracy is the trained weights' (DeiT Table 8: the
# average is worth 0.1 point): ``val_acc`` stays that, ``ema_val_acc`` is the average's.
_CODE_EMA = 0.99996


@dataclass(frozen=True)
class PaperRecipe:
    name: str
    fields: dict[str, Any]  # TrainConfig fields
    source: str


_DEIT = PaperRecipe(
    "deit",
    # 300 epochs, batch 1024, lr 5e-4 x 1024/512, weight decay 0.05, 5 warm-up epochs, cosine to 1e-5,
    # no gradient clipping, repeated augmentation with 3 repetitions
    {"epochs": 300, "batch_size": 1024, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 5.0,
     "min_lr_ratio": 0.01, "grad_clip": None, "repeated_aug": 3, "ema_decay": _CODE_EMA, **_DEIT_REGULARISERS},
    "Touvron et al., DeiT (ICML 2021), Table 9 (\"Repeated Aug\" ✓; the text: 3 repetitions); "
    "facebookresearch/deit main.py defaults (model EMA 0.99996)",
)
# DeepViT: the official configs for the 24- and 32-block models (these presets' shapes): lr 5e-4 with no
# batch scaling, 5 warm-up epochs, cosine to 1e-5, weight decay 0.05, no clipping, no repeated
# augmentation, EMA 0.99996, DeiT's augmentation. They give 32 images per GPU but not the GPU count:
# the batch here is 512, where DeiT's rule (5e-4 x batch / 512) gives the configs' learning rate.
_DEEPVIT_FIELDS: dict[str, Any] = {
    "epochs": 300, "batch_size": 512, "lr": 5e-4, "weight_decay": 0.05, "warmup_epochs": 5.0,
    "min_lr_ratio": 0.02, "grad_clip": None, "repeated_aug": 1, "ema_decay": _CODE_EMA, **_DEIT_REGULARISERS}
_DEEPVIT_SOURCE = ("Zhou et al., DeepViT (arXiv 2103.11886); zhoudaquan/dvit_repo "
                   "scripts/DeepViT_24B_pure_transformer.yaml")
_DEEPVIT = PaperRecipe("deepvit", _DEEPVIT_FIELDS, _DEEPVIT_SOURCE)
_DEEPVIT_32 = PaperRecipe(  # the 32-block config lowers mixup to 0.1 and drops CutMix
    "deepvit_32", {**_DEEPVIT_FIELDS, "mixup_alpha": 0.1, "cutmix_alpha": 0.0},
    "Zhou et al., DeepViT (arXiv 2103.11886); zhoudaquan/dvit_repo scripts/DeepViT_32B_pure_transformer.yaml",
)
_SHIFTVIT = PaperRecipe(
    "shiftvit",
    # SPACH's main.py is DeiT's with 20 warm-up epochs instead of 5: 300 epochs, lr 5e-4 x batch/512 (1e-3
    # at 1024: 8 GPUs x its default 128), weight decay 0.05, cosine to 1e-5, no clipping, repeated
    # augmentation, EMA 0.99996
    {**_DEIT.fields, "warmup_epochs": 20.0},
    "Wang et al., ShiftViT (AAAI 2022); microsoft/SPACH main.py defaults (the code ShiftViT's results "
    "come from; it builds on DeiT's)",
)
_COATNET = PaperRecipe(
    "coatnet",
    # ImageNet-1k pre-training: 300 epochs, batch 4096, AdamW, peak lr 1e-3, min lr 1e-5, 10k warm-up
    # steps (32 epochs of 1.28M images at batch 4096), cosine, weight decay 0.05, gradient clip 1.0,
    # label smoothing 0.1, RandAugment 2 layers at magnitude 15, mixup 0.8, no EMA; CutMix and random
    # erasing are not used (Sec. 4.1: "only RandAugment and MixUp")
    {"epochs": 300, "batch_size": 4096, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 32.0,
     "min_lr_ratio": 0.01, "grad_clip": 1.0, "label_smoothing": 0.1, "mixup_alpha": 0.8, "cutmix_alpha": 0.0,
     "random_erasing": 0.0, "augment": True, "repeated_aug": 1, "ema_decay": None,
     # Inception-style crop (as TF's EfficientNet input pipeline: area 0.08-1, ratio 3/4-4/3)
     "rrc_scale_min": 0.08, "randaugment": "m15-n2"},
    "Dai et al., CoAtNet (NeurIPS 2021; arXiv 2106.04803v2), Appendix A.2, Table 10 (ImageNet-1K pre-training)",
)
_POOLFORMER = PaperRecipe(
    "poolformer",
    # sail-sg/poolformer train.sh: 8 GPUs x 128 images (batch 1024), --lr 1e-3, timm's train.py with DeiT's
    # schedule and augmentation (300 epochs, 5 warm-up epochs, cosine, weight decay 0.05, RandAugment
    # m9-mstd0.5, mixup 0.8, CutMix 1.0, random erasing 0.25, label smoothing 0.1); no repeated
    # augmentation and no model EMA in the script (the presets' drop_path 0.1 is the script's for S12/S24)
    {"epochs": 300, "batch_size": 1024, "lr": 1e-3, "weight_decay": 0.05, "warmup_epochs": 5.0,
     "min_lr_ratio": 0.01, "grad_clip": None, "repeated_aug": 1, "ema_decay": None, **_DEIT_REGULARISERS},
    "Yu et al., MetaFormer is Actually What You Need for Vision (CVPR 2022), Sec. 4.1; sail-sg/poolformer train.sh",
)

# Preset name -> recipe. The 32x32 presets have none: their recipe is nas.train.recipes'.
PAPER_RECIPES: dict[str, PaperRecipe] = {
    **{name: _DEIT for name in ("deit_tiny", "deit_small", "vit_base_16", "vit_large_16")},
    # the depth study's plain-attention baselines train with the same code and config as DeepViT
    **{name: _DEEPVIT for name in ("vit_16", "vit_24", "deepvit_16", "deepvit_24")},
    **{name: _DEEPVIT_32 for name in ("vit_32", "deepvit_32")},
    **{name: _SHIFTVIT for name in ("shiftvit_tiny_light", "shiftvit_tiny", "shiftvit_small_light",
                                    "shiftvit_small", "shiftvit_base")},
    **{name: _COATNET for name in ("coatnet_0", "coatnet_1", "coatnet_2")},
    **{name: _POOLFORMER for name in ("poolformer_s12", "poolformer_s24")},
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
