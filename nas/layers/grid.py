"""Token grids: how a sequence of tokens ``[B, P + H*W, C]`` maps onto an image-like ``H x W`` grid.

All blocks exchange tokens in one format so that any mixer can sit in any stage: ``P`` prefix tokens
(the cls token, when the genome pools by it) followed by the spatial tokens in row-major order.
Spatial mixers (shift, MBConv) view the spatial part as a map and leave the prefix alone.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["Grid", "split_prefix", "to_map", "from_map", "pool_tokens"]


class Grid(NamedTuple):
    h: int
    w: int
    prefix: int = 0  # number of non-spatial tokens in front (cls)

    @property
    def tokens(self) -> int:
        return self.prefix + self.h * self.w

    def halved(self) -> "Grid":
        return Grid(self.h // 2, self.w // 2, self.prefix)


def split_prefix(x: Tensor, grid: Grid) -> tuple[Tensor, Tensor]:
    """``[B, P+HW, C]`` -> (prefix ``[B, P, C]``, spatial ``[B, HW, C]``)."""
    return x[:, : grid.prefix], x[:, grid.prefix :]


def to_map(spatial: Tensor, grid: Grid) -> Tensor:
    """``[B, HW, C]`` -> ``[B, C, H, W]`` (a channels-last view, no copy)."""
    b, _, c = spatial.shape
    return spatial.reshape(b, grid.h, grid.w, c).permute(0, 3, 1, 2)


def from_map(fmap: Tensor) -> Tensor:
    """``[B, C, H, W]`` -> ``[B, HW, C]``."""
    return fmap.flatten(2).transpose(1, 2)


def pool_tokens(x: Tensor, grid: Grid) -> Tensor:
    """CoAtNet's downsampling pool: 3x3 max-pool, stride 2, on the spatial tokens; prefix kept."""
    prefix, spatial = split_prefix(x, grid)
    pooled = from_map(F.max_pool2d(to_map(spatial, grid), kernel_size=3, stride=2, padding=1))
    return torch.cat([prefix, pooled], dim=1) if grid.prefix else pooled
