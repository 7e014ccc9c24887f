"""Stems (image -> tokens) and ShiftViT/Swin patch merging between stages."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.layers.grid import Grid, from_map, split_prefix, to_map
from nas.layers.norms import make_norm

__all__ = ["PatchStem", "ConvStem", "PatchMerging", "conv_window"]


def conv_window(stride: int, overlap: bool) -> dict[str, int]:
    """Kernel, stride and padding of a downsampling conv: ``k = s`` (patches), or overlapping ``k = 2s-1``
    with padding ``s//2``, which keeps the output side at ``side // s`` for every side divisible by ``s``."""
    if not overlap:
        return {"kernel_size": stride, "stride": stride, "padding": 0}
    return {"kernel_size": 2 * stride - 1, "stride": stride, "padding": stride // 2}


class PatchStem(nn.Module):
    """ViT patch embedding: a conv with kernel = stride = patch size (+ optional norm, ShiftViT); with
    ``overlap`` MetaFormer's overlapping one, kernel ``2p-1`` and padding ``p//2`` (PoolFormer: 7x7, stride 4,
    padding 2), which gives the same grid."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, norm: str | None = None,
                 overlap: bool = False) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, **conv_window(patch_size, overlap))
        self.norm = make_norm(norm, dim) if norm else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:  # [B, C, H, W] -> [B, HW/p^2, dim]
        return self.norm(from_map(self.proj(x)))


class ConvStem(nn.Module):
    """CoAtNet S0: two 3x3 convs, the first with stride ``stride`` (2 in the paper)."""

    def __init__(self, in_channels: int, dim: int, stride: int = 2) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, dim, 3, stride=stride, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(dim)
        self.act = nn.GELU()
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, H, W] -> [B, HW/s^2, dim]
        return from_map(self.conv2(self.act(self.norm1(self.conv1(x)))))


class PatchMerging(nn.Module):
    """Norm, then a 2x2 stride-2 conv without bias (C -> C'); a prefix token gets a linear map. With
    ``overlap``, a 3x3 stride-2 conv with padding 1 (MetaFormer's downsampling)."""

    def __init__(self, in_dim: int, dim: int, grid: Grid, norm: str, overlap: bool = False) -> None:
        super().__init__()
        self.grid = grid
        self.norm = make_norm(norm, in_dim)
        self.reduction = nn.Conv2d(in_dim, dim, bias=False, **conv_window(2, overlap))
        self.prefix_proj = nn.Linear(in_dim, dim, bias=False) if grid.prefix else None

    def forward(self, x: Tensor) -> Tensor:  # [B, P+HW, in_dim] -> [B, P+HW/4, dim]
        x = self.norm(x)
        prefix, spatial = split_prefix(x, self.grid)
        merged = from_map(self.reduction(to_map(spatial, self.grid)))
        if self.prefix_proj is None:
            return merged
        return torch.cat([self.prefix_proj(prefix), merged], dim=1)
