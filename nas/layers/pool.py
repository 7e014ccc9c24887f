"""Pooling (PoolFormer, Yu et al., "MetaFormer is Actually What You Need for Vision", CVPR 2022).

``Pool(x) = AvgPool3x3(Norm(x), stride 1, padding 1, count_include_pad=False) - Norm(x)``: the input is
subtracted because the block adds its residual (sail-sg/poolformer ``Pooling``; timm's
``metaformer.Pooling``). The norm is the block's pre-norm, GroupNorm with one group as in the paper.
No weights beyond the norm and no multiply-accumulates. Prefix tokens (cls) take no part: zero update.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nas.layers.grid import Grid, from_map, split_prefix, to_map
from nas.layers.norms import make_norm

__all__ = ["Pool", "pool_mixing"]


def pool_mixing(fmap: Tensor, pool_size: int = 3) -> Tensor:
    """PoolFormer's token mixing on a ``[B, C, H, W]`` map: average of the neighbourhood minus the centre."""
    return F.avg_pool2d(fmap, pool_size, stride=1, padding=pool_size // 2, count_include_pad=False) - fmap


class Pool(nn.Module):
    """Declared in :mod:`nas.mixers.builtin` as ``pool`` (letter P): residual, GroupNorm-MLP after it."""

    def __init__(self, dim: int, *, grid: Grid, **_: object) -> None:
        super().__init__()
        self.grid = grid
        self.norm = make_norm("group", dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, N, C]
        x = self.norm(x)
        prefix, spatial = split_prefix(x, self.grid)
        y = from_map(pool_mixing(to_map(spatial, self.grid)))  # [B, HW, C]
        if self.grid.prefix:
            y = torch.cat([torch.zeros_like(prefix), y], dim=1)
        return y
