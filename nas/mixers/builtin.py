"""The built-in token mixers, declared through the same :class:`MixerSpec` a plugin uses.

This is the one place that lists them. Each declaration carries its stage fields (types, ranges,
defaults), how the block wraps it, and a closed-form estimate of its parameters, saved activations
and MACs for the size guard (the formulas of :mod:`nas.cost.analytic`, which the traced counts are
tested against).
"""
from __future__ import annotations

import math

from nas.errors import GenomeError
from nas.mixers.registry import end_builtin_phase, register_mixer
from nas.mixers.spec import BlockShape, MixerEstimate, MixerField, MixerSpec

__all__ = ["BUILTIN_MIXERS", "DEFAULT_TRANSFORMER_MIXER", "shifted_channels"]

# What a layout's T stands for when the document names no transformer_mixer.
DEFAULT_TRANSFORMER_MIXER = "attention"


def shifted_channels(shift_ratio: float, dim: int) -> int:
    """Channels the shift moves per direction: ``floor(gamma * C)`` (ShiftViT). The tolerance keeps a
    ratio written as ``g / C`` on exactly ``g`` channels despite floating-point rounding."""
    return math.floor(shift_ratio * dim + 1e-9)


# -- field rules that depend on the stage's width -----------------------------------------------------
def _heads_divide(heads: int, dim: int, where: str) -> int:
    if dim % heads:
        small = [h for h in range(1, math.isqrt(dim) + 1) if dim % h == 0]
        divisors = ", ".join(str(h) for h in sorted({*small, *(dim // h for h in small)}))
        raise GenomeError(f"{where} {heads} does not divide dim {dim}; allowed: a divisor of {dim} ({divisors})")
    return heads


def _shift_channels(ratio: float, dim: int, where: str) -> float:
    channels = shifted_channels(ratio, dim)
    if channels < 1:
        stage = where.rpartition(".")[0]
        raise GenomeError(f"{stage}: shift_ratio {ratio:g} of dim {dim} shifts no channel; need shift_ratio*dim >= 1")
    # Canonical: the ratio the network really uses (floor(gamma * dim) / dim), so two ratios that shift
    # the same channels are one genome with one key (a search never trains it twice).
    return channels / dim


HEADS = MixerField("heads", "int", lambda dim: max(1, dim // 64), low=1, check=_heads_divide,
                   doc="attention heads; must divide dim (default: one per 64 channels)")
SHIFT_RATIO = MixerField("shift_ratio", "float", 1 / 12, low=0, high=0.25, low_open=True, check=_shift_channels,
                         doc="gamma: fraction of channels shifted per direction (4 directions)")
EXPANSION = MixerField("expansion", "float", 4.0, low=0, low_open=True,
                       doc="MBConv inverted-bottleneck expansion of the output width (CoAtNet: 4)")
SE_RATIO = MixerField("se_ratio", "float", 0.25, low=0, high=1,
                      doc="squeeze-excitation width, of the block input width; 0 disables it")
REATTN_NORM = MixerField("reattn_norm", "choice", "batch", choices=("batch", "layer", "none"),
                         doc="DeepViT's norm over heads: batch (paper's code), layer (seed's code), none")


# -- size-guard estimates (per block, the mixer module alone) -----------------------------------------
def _attention(shape: BlockShape, reattention: bool) -> MixerEstimate:
    from nas.cost import analytic as cf

    d, heads = shape.dim, int(shape.options.get("heads") or 1)
    n_in, n = shape.tokens, shape.out_tokens
    params = shape.in_dim * 3 * d + d * d + 2 * shape.in_dim + 4 * d
    if reattention:
        params += heads * heads + 3 * heads
    if shape.position == "relative":
        oh, ow = shape.out_side
        params += (2 * oh - 1) * (2 * ow - 1) * heads
    maps = heads * n * n * (2 if reattention else 1)
    act = 2 * n_in * shape.in_dim + 4 * n * d + 2 * maps
    macs = n * shape.in_dim * 3 * d + n * d * d + 2 * n * n * d
    if reattention:
        macs += cf.reattention_extra_macs(n, heads)
    return MixerEstimate(params=params, activations=act, macs=macs)


def estimate_attention(shape: BlockShape) -> MixerEstimate:
    return _attention(shape, reattention=False)


def estimate_reattention(shape: BlockShape) -> MixerEstimate:
    return _attention(shape, reattention=True)


def estimate_zero(shape: BlockShape) -> MixerEstimate:
    """A mixer without weights that multiplies nothing (shift, pooling): one map kept per block."""
    return MixerEstimate(params=0, activations=shape.tokens * shape.dim, macs=0)


def estimate_mbconv(shape: BlockShape) -> MixerEstimate:
    d, c_in = shape.dim, shape.in_dim
    expansion, se_ratio = float(shape.options.get("expansion") or 4.0), float(shape.options.get("se_ratio") or 0.0)
    mid = max(1, int(round(d * expansion)))
    oh, ow = shape.out_side
    hw, hw_in = oh * ow, shape.h * shape.w
    reduced = max(1, int(c_in * se_ratio))
    params = 2 * c_in + c_in * mid + 9 * mid + 4 * mid + mid * d + d
    macs = hw * c_in * mid + hw * mid * 9 + hw * mid * d
    if se_ratio > 0:
        params += 2 * mid * reduced + mid + reduced
        macs += 2 * mid * reduced
    act = 2 * hw_in * c_in + 6 * hw * mid + hw * d
    return MixerEstimate(params=params, activations=act, macs=macs)


def estimate_pool(shape: BlockShape) -> MixerEstimate:
    """PoolFormer's pooling: a GroupNorm (2·C parameters), a 3x3 average and a subtraction: no MACs."""
    return MixerEstimate(params=2 * shape.dim, activations=3 * shape.tokens * shape.dim, macs=0)


def estimate_identity(shape: BlockShape) -> MixerEstimate:
    """Only the pre-norm: 2·C parameters, its output kept, no MACs."""
    return MixerEstimate(params=2 * shape.dim, activations=2 * shape.tokens * shape.dim, macs=0)


_VIT = "Dosovitskiy et al., ViT (ICLR 2021); CoAtNet's relative bias and pooled downsampling (Dai et al. 2021)"
BUILTIN_MIXERS: tuple[MixerSpec, ...] = (
    MixerSpec(
        name="attention", letter="A", module="nas.layers.attention:Attention", fields=(HEADS,),
        residual=True, has_mlp=True, norm="layer", supports_stride=True, attention=True, family="transformer",
        estimate=estimate_attention, description="multi-head self-attention (relative bias with position: relative)",
        source=_VIT,
    ),
    MixerSpec(
        name="reattention", letter="R", module="nas.layers.reattention:ReAttention", fields=(HEADS, REATTN_NORM),
        residual=True, has_mlp=True, norm="layer", supports_stride=True, attention=True, family="transformer",
        estimate=estimate_reattention, description="re-attention: the heads' maps mixed by a learned HxH matrix",
        source="Zhou et al., DeepViT (arXiv 2103.11886)",
    ),
    MixerSpec(
        name="shift", letter="S", module="nas.layers.shift:Shift", fields=(SHIFT_RATIO,),
        residual=False, has_mlp=True, norm="group", supports_stride=False, family="shift",
        estimate=estimate_zero, description="partial shift of channel groups by one pixel; no parameters, no MACs",
        source="Wang et al., ShiftViT (AAAI 2022)",
    ),
    MixerSpec(
        name="conv", letter="C", module="nas.layers.mbconv:MBConv", fields=(EXPANSION, SE_RATIO),
        residual=True, has_mlp=False, norm="batch", supports_stride=True,
        estimate=estimate_mbconv, description="MBConv: 1x1 expand, 3x3 depthwise, squeeze-excitation, 1x1 project",
        source="Dai et al., CoAtNet (NeurIPS 2021); Sandler et al., MobileNetV2",
    ),
    MixerSpec(
        name="pool", letter="P", module="nas.layers.pool:Pool",
        residual=True, has_mlp=True, norm="group", supports_stride=False, family="shift",
        estimate=estimate_pool,
        description="AvgPool3x3(x) - x (count_include_pad=False); no parameters beyond its norm",
        source="Yu et al., MetaFormer is Actually What You Need for Vision (CVPR 2022), sail-sg/poolformer",
    ),
    MixerSpec(
        name="identity", letter="I", module="nas.layers.identity:IdentityMixer",
        residual=True, has_mlp=True, norm="group", supports_stride=False, family="shift",
        estimate=estimate_identity, description="no token mixing: x + Norm(x) (MetaFormer's lower bound)",
        source="Yu et al., MetaFormer is Actually What You Need for Vision (CVPR 2022), Table 5",
    ),
)

for _spec in BUILTIN_MIXERS:
    register_mixer(_spec)
end_builtin_phase()
