"""Closed-form MAC counts of the building blocks, per image, in the convention of :mod:`nas.cost.handles`.

These are the formulas the papers use to report FLOPs (ViT/DeiT: Dosovitskiy et al. 2021 and
Touvron et al. 2021; DeepViT: Zhou et al. 2021, Sec. 4; ShiftViT: Wang et al. 2022, Sec. 3.2;
CoAtNet: Dai et al. 2021, Sec. 2). The traced count must agree with them exactly on every block, which
is how the tests check that no op is missed or double-counted. ``N`` is the number of tokens (with the
cls token), ``D`` the width, ``tau`` the MLP ratio, ``H`` the number of heads.
"""
from __future__ import annotations

__all__ = [
    "linear_macs",
    "patch_embed_macs",
    "attention_macs",
    "reattention_extra_macs",
    "mlp_macs",
    "attention_block_macs",
    "shift_macs",
    "mbconv_macs",
    "head_macs",
]


def linear_macs(tokens: int, d_in: int, d_out: int) -> int:
    """A Linear ``d_in -> d_out`` applied to ``tokens`` tokens; the bias add is not counted."""
    return tokens * d_in * d_out


def patch_embed_macs(image_size: int, patch_size: int, in_channels: int, dim: int) -> int:
    """ViT patch embedding: a ``p x p`` conv with stride ``p``, i.e. a Linear ``C·p² -> D`` per patch."""
    patches = (image_size // patch_size) ** 2
    return patches * in_channels * patch_size**2 * dim


def attention_macs(n: int, d: int) -> int:
    """Multi-head self-attention on ``N`` tokens of width ``D``: ``4·N·D² + 2·N²·D``.

    ``3·N·D²`` for the QKV projection, ``N·D²`` for the output projection, and ``N²·D`` each for
    ``Q Kᵀ`` and ``A V`` (summed over heads; independent of the number of heads).
    """
    return 4 * n * d * d + 2 * n * n * d


def reattention_extra_macs(n: int, heads: int) -> int:
    """Re-attention's head mixing ``Θᵀ A``: an ``H x H`` matrix applied to ``H`` maps of ``N²``: ``H²·N²``."""
    return heads * heads * n * n


def mlp_macs(n: int, d: int, tau: float) -> int:
    """The block MLP ``D -> τD -> D`` on ``N`` tokens: ``2·τ·N·D²`` (hidden width rounded as the builder)."""
    hidden = max(1, int(round(d * tau)))
    return 2 * n * d * hidden


def attention_block_macs(n: int, d: int, tau: float = 4.0, heads: int | None = None, reattention: bool = False) -> int:
    """A pre-norm transformer block: attention + MLP (+ head mixing for re-attention)."""
    total = attention_macs(n, d) + mlp_macs(n, d, tau)
    if reattention:
        if heads is None:
            raise ValueError("re-attention needs the number of heads")
        total += reattention_extra_macs(n, heads)
    return total


def shift_macs() -> int:
    """The partial shift moves data and multiplies nothing (ShiftViT, Sec. 3.1): zero."""
    return 0


def mbconv_macs(
    side: int, in_dim: int, dim: int, *, expansion: float = 4.0, se_ratio: float = 0.25, stride: int = 1
) -> int:
    """CoAtNet's MBConv on a ``side x side`` map, from its convolutions, as :mod:`nas.layers.mbconv` builds it.

    Expand 1x1 ``C_in -> E`` with stride ``s`` (CoAtNet, appendix A.1), depthwise 3x3 on ``E`` channels,
    squeeze-excitation ``E -> r·C_in -> E`` on the pooled vector, project 1x1 ``E -> C`` at the output
    resolution, plus the shortcut's 1x1 projection when the width changes. ``E = round(expansion·C)``.
    """
    mid = max(1, int(round(dim * expansion)))
    out = side // stride
    total = out * out * in_dim * mid + out * out * mid * 9 + out * out * mid * dim
    if se_ratio > 0:
        total += 2 * mid * max(1, int(in_dim * se_ratio))
    if in_dim != dim:
        total += out * out * in_dim * dim
    return total


def head_macs(dim: int, num_classes: int, hidden: int | None = None) -> int:
    """Classifier (and CoAtNet's pre-logits Linear) on the pooled vector; the pooling itself is free."""
    if hidden:
        return dim * hidden + hidden * num_classes
    return dim * num_classes
