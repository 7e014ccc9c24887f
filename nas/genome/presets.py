"""Named genomes: the seed papers' published configurations and four small 32x32 variants.

The ImageNet presets also carry what their official code sets outside the layer shapes: the
initialisation (``init``), LayerNorm's epsilon (``norm_eps``) and the stochastic-depth rate
(``drop_path``), each with its source below. None of these changes a parameter count or FLOPs. The
32x32 presets keep nas's own initialisation (a unit-scale position table ahead of attention, measured
to help short runs; :mod:`nas.models.builder`) and no stochastic depth.

Every preset records where its configuration comes from and, where the paper prints them, the
published parameter count and FLOPs (multiply-accumulates, the papers' convention) so that tests and
``nas build`` can check that the builder lands on them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Preset", "PRESETS"]


@dataclass(frozen=True)
class Preset:
    name: str
    genome: dict[str, Any]
    source: str  # paper and table the configuration follows
    params_m: float | None = None  # published parameter count, millions
    flops_g: float | None = None  # published FLOPs (MACs) per image at the preset's resolution, G
    params_rtol: float = 0.02  # the paper's rounding: "20M" is only good to a few percent
    notes: str = field(default="")


PRESETS: dict[str, Preset] = {}


def _add(preset: Preset) -> None:
    PRESETS[preset.name] = preset


# -- ViT / DeiT (isotropic) -------------------------------------------------------------------------
# Init and eps as timm's vision_transformer.py (DeiT's code builds on it): position table and linear
# layers trunc-normal 0.02, patch projection at PyTorch's default, LayerNorm(eps=1e-6). Stochastic depth
# 0.1: DeiT's recipe (Table 9, "Stoch. Depth 0.1") for DeiT-Ti/S/B; ViT-L/16 has no published
# ImageNet-1k-from-scratch rate and takes the same recipe.
_DEIT = "Touvron et al., DeiT (ICML 2021), Table 1; Dosovitskiy et al., ViT (ICLR 2021), Table 1"
_VIT_INIT = {"init": "vit", "norm_eps": 1e-6, "drop_path": 0.1}
for name, dim, depth, heads, params, flops in (
    ("deit_tiny", 192, 12, 3, 5.72, 1.26),
    ("deit_small", 384, 12, 6, 22.05, 4.61),
    ("vit_base_16", 768, 12, 12, 86.57, 17.58),
    ("vit_large_16", 1024, 24, 16, 304.33, 61.6),
):
    _add(Preset(
        name=name,
        genome={"image_size": 224, "num_classes": 1000, "stem": "patch", "patch_size": 16, "pool": "cls",
                "position": "absolute", "layout": "A", "depths": [depth], "dims": [dim], "heads": heads, "mlp_ratio": 4,
                **_VIT_INIT},
        source=_DEIT, params_m=params, flops_g=flops, params_rtol=0.005,
    ))

# -- DeepViT depth study (D=384, 12 heads of 32, MLP ratio 3) ---------------------------------------
# The DeepViT code builds on timm's ViT (LayerNorm eps 1e-6, trunc-normal 0.02 init). Stochastic depth
# 0.2: zhoudaquan/dvit_repo scripts/DeepViT_24B_pure_transformer.yaml and DeepViT_32B_pure_transformer.yaml
# (``drop_path: 0.2``; models deepvit_patch16_224_re_attn_24b / _32b, these presets' shapes). The
# 16-block model has no published config and takes the same rate, as do the plain-attention baselines
# of the depth study, which the same code trains.
_DVIT = "Zhou et al., DeepViT (arXiv 2103.11886), Table 3 / zhoudaquan/dvit_repo deep_vision_transformer.py"
for depth, params in ((16, 24.5), (24, 36.3), (32, 48.1)):
    for prefix, mixer in (("vit", "attention"), ("deepvit", "reattention")):
        _add(Preset(
            name=f"{prefix}_{depth}",
            genome={"image_size": 224, "num_classes": 1000, "stem": "patch", "patch_size": 16, "pool": "cls",
                    "position": "absolute", "layout": "T", "transformer_mixer": mixer, "depths": [depth],
                    "dims": [384], "heads": 12, "mlp_ratio": 3, **_VIT_INIT, "drop_path": 0.2},
            source=_DVIT, params_m=params, params_rtol=0.01,
        ))

# -- ShiftViT (Swin-like pyramid, zero-parameter shift) ----------------------------------------------
# Init as microsoft/SPACH models/shiftvit.py ``_init_weights``: linear and convolution weights
# trunc-normal 0.02, zero biases. Its norms are GroupNorm(1)/BatchNorm at PyTorch's eps (no
# ``norm_eps``). Stochastic depth per model as registered in SPACH's models/registry.py:
# shiftvit_light_tiny 0.2, shiftvit_r2_tiny 0.2, shiftvit_light_small 0.4, shiftvit_r2_small 0.4,
# shiftvit_r2_base 0.6.
_SHIFT = "Wang et al., When Shift Operation Meets Vision Transformer (AAAI 2022), Table 1 / microsoft/SPACH"
for name, dim, depths, tau, gamma, params, flops, drop_path in (
    ("shiftvit_tiny_light", 96, [2, 2, 6, 2], 4, "1/12", 20.0, 3.0, 0.2),
    ("shiftvit_tiny", 96, [6, 8, 18, 6], 2, "1/12", 29.0, 4.5, 0.2),
    ("shiftvit_small_light", 96, [2, 2, 18, 2], 4, "1/12", 34.0, 5.7, 0.4),
    ("shiftvit_small", 96, [10, 18, 36, 10], 2, "1/12", 50.0, 8.8, 0.4),
    ("shiftvit_base", 128, [10, 18, 36, 10], 2, "1/16", 89.0, 15.6, 0.6),
):
    _add(Preset(
        name=name,
        genome={"image_size": 224, "num_classes": 1000, "stem": "patch", "patch_size": 4, "patch_norm": True,
                "pool": "mean", "position": "none", "downsample": "merge", "layout": "S-S-S-S", "depths": depths,
                "dims": [dim, 2 * dim, 4 * dim, 8 * dim], "mlp_ratio": tau, "shift_ratio": gamma,
                "init": "shiftvit", "drop_path": drop_path},
        source=_SHIFT, params_m=params, flops_g=flops, params_rtol=0.03,
    ))

# -- CoAtNet (conv stem, MBConv, then relative attention: C-C-T-T) -----------------------------------
# No official CoAtNet code is public; init and eps follow timm's maxxvit.py, which reproduces the
# paper: convolutions N(0, sqrt(2 / fan_out)) (``_init_conv``), linear layers trunc-normal 0.02,
# BatchNorm at 1e-5 in the MBConv stages and LayerNorm eps 1e-6 in the transformer stages
# (``MaxxVitTransformerCfg.norm_eps``). Stochastic depth on ImageNet-1k: 0.2 / 0.3 / 0.5 for
# CoAtNet-0 / 1 / 2 (arXiv 2106.04803v2, Appendix A.2, Table 10: "0.2 / 0.3 / 0.5 / 0.7" for 0-3).
_COAT = "Dai et al., CoAtNet (NeurIPS 2021), Table 3 and Table 4"
for name, depths, dims, params, flops, drop_path in (
    ("coatnet_0", [2, 3, 5, 2], [96, 192, 384, 768], 25.0, 4.2, 0.2),
    ("coatnet_1", [2, 6, 14, 2], [96, 192, 384, 768], 42.0, 8.4, 0.3),
    ("coatnet_2", [2, 6, 14, 2], [128, 256, 512, 1024], 75.0, 15.7, 0.5),
):
    stem_dim = 64 if name != "coatnet_2" else 128
    _add(Preset(
        name=name,
        genome={"image_size": 224, "num_classes": 1000, "stem": "conv", "stem_dim": stem_dim, "stem_stride": 2,
                "pool": "mean", "position": "relative", "downsample": "pool", "layout": "C-C-T-T",
                "depths": depths, "dims": dims, "heads": [None, None, dims[2] // 32, dims[3] // 32],
                "mlp_ratio": 4, "expansion": 4, "se_ratio": 0.25, "head_hidden": dims[3],
                "init": "coatnet", "norm_eps": 1e-6, "drop_path": drop_path},
        source=_COAT, params_m=params, flops_g=flops, params_rtol=0.05,
    ))

# -- 32x32 variants for studies and tests (each under ~2M parameters) --------------------------------
_SMALL = "nas: 32x32 scaled-down member of the family, for CIFAR-sized data and CPU studies"
_add(Preset("vit_cifar", {"image_size": 32, "num_classes": 10, "stem": "patch", "patch_size": 4, "pool": "cls",
                          "position": "absolute", "layout": "A", "depths": [6], "dims": [128], "heads": 4,
                          "mlp_ratio": 2}, _SMALL))
_add(Preset("deepvit_cifar", {"image_size": 32, "num_classes": 10, "stem": "patch", "patch_size": 4, "pool": "cls",
                              "position": "absolute", "layout": "R", "depths": [6], "dims": [128], "heads": 4,
                              "mlp_ratio": 2}, _SMALL))
_add(Preset("shiftvit_cifar", {"image_size": 32, "num_classes": 10, "stem": "patch", "patch_size": 2,
                               "patch_norm": True, "pool": "mean", "position": "none", "layout": "S-S-S-S",
                               "depths": [1, 1, 3, 1], "dims": [32, 64, 128, 256], "mlp_ratio": 4,
                               "shift_ratio": "1/12"}, _SMALL))
# The conv stages carry what a short run on small data learns: widening them (stem 48, stages 64-128,
# doubling from S1 to S2 as CoAtNet-0) took 5-epoch mnist5k val_acc from 0.964 (32-64) and 0.969 (48-96)
# to 0.98 (seeds 0-2), where widening the first attention stage instead (128 -> 192) gave nothing.
_add(Preset("coatnet_cifar", {"image_size": 32, "num_classes": 10, "stem": "conv", "stem_dim": 48, "stem_stride": 1,
                              "pool": "mean", "position": "relative", "downsample": "pool", "layout": "C-C-T-T",
                              "depths": [1, 1, 2, 1], "dims": [64, 128, 128, 192], "heads": [None, None, 4, 6],
                              "mlp_ratio": 4, "expansion": 4}, _SMALL))

# -- PoolFormer (MetaFormer with pooling as the token mixer) -----------------------------------------
# Yu et al., Table 1 / sail-sg/poolformer poolformer.py: overlapping patch embedding 7x7/4 (padding 2),
# 3x3/2 downsampling between stages, GroupNorm(1) norms, MLP ratio 4, layer scale 1e-5 on both residual
# branches, final norm, global average pooling, linear head; stochastic depth 0.1 (sail-sg/poolformer
# train.sh for S12 and S24). Published: 12M params, 1.8G MACs (timm's
# poolformer_s12: 11.9M, 1.8 GMACs). nas's merging puts a GroupNorm before a bias-free conv where
# PoolFormer's downsampling conv has a bias and no norm (a few hundred parameters apart).
_POOL = "Yu et al., MetaFormer is Actually What You Need for Vision (CVPR 2022), Table 1 / sail-sg/poolformer"
for name, depths, dims, params, flops in (
    ("poolformer_s12", [2, 2, 6, 2], [64, 128, 320, 512], 11.9, 1.8),
    ("poolformer_s24", [4, 4, 12, 4], [64, 128, 320, 512], 21.4, 3.4),
):
    _add(Preset(
        name=name,
        genome={"image_size": 224, "num_classes": 1000, "stem": "patch", "patch_size": 4, "overlap": True,
                "pool": "mean", "position": "none", "downsample": "merge", "layout": "P-P-P-P", "depths": depths,
                "dims": dims, "mlp_ratio": 4, "layer_scale": 1e-5, "drop_path": 0.1},
        source=_POOL, params_m=params, flops_g=flops, params_rtol=0.03,
    ))
