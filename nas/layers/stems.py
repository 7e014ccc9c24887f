"""Stems (image -> tokens) and ShiftViT/Swin patch merging between stages."""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.layers.grid import Grid, from_map, split_prefix, to_map
from nas.layers.norms import make_norm

__all__ = ["PatchStem", "ConvStem", "PatchMerging"]


class PatchStem(nn.Module):
    """ViT patch embedding: a conv with kernel = stride = patch size (+ optional norm, ShiftViT)."""

    def __init__(self, in_channels: int, dim: int, patch_size: int, norm: str | None = None) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch_size, stride=patch_size)
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
    """Norm, then a 2x2 stride-2 conv without bias (C -> C'); a prefix token gets a linear map."""

    def __init__(self, in_dim: int, dim: int, grid: Grid, norm: str) -> None:
        super().__init__()
        self.grid = grid
        self.norm = make_norm(norm, in_dim)
        self.reduction = nn.Conv2d(in_dim, dim, 2, stride=2, bias=False)
        self.prefix_proj = nn.Linear(in_dim, dim, bias=False) if grid.prefix else None

    def forward(self, x: Tensor) -> Tensor:  # [B, P+HW, in_dim] -> [B, P+HW/4, dim]
        x = self.norm(x)
        prefix, spatial = split_prefix(x, self.grid)
        merged = from_map(self.reduction(to_map(spatial, self.grid)))
        if self.prefix_proj is None:
            return merged
        return torch.cat([self.prefix_proj(prefix), merged], dim=1)
