"""MBConv (CoAtNet's convolution block, after MobileNetV2/EfficientNet), in pre-activation form.

``x + Proj1x1(SE(GELU(BN(DW3x3(GELU(BN(Expand1x1(BN(x)))))))))``: the expansion is the block's
inverted bottleneck, so a conv stage has no separate MLP. With ``stride=2`` the expansion conv
halves the grid (the block's shortcut then pools and projects, see :mod:`nas.layers.block`).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.layers.grid import Grid, from_map, split_prefix, to_map

__all__ = ["MBConv", "SqueezeExcite"]


class SqueezeExcite(nn.Module):
    """Channel gating from globally pooled features (Hu et al. 2018)."""

    def __init__(self, channels: int, reduced: int) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(channels, reduced, 1)
        self.act = nn.SiLU()
        self.expand = nn.Conv2d(reduced, channels, 1)

    def forward(self, x: Tensor) -> Tensor:  # [B, C, H, W]
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Declared in :mod:`nas.mixers.builtin`: residual, its own expansion instead of an MLP, strides itself."""

    def __init__(
        self,
        dim: int,
        *,
        in_dim: int,
        grid: Grid,
        stride: int = 1,
        expansion: float = 4.0,
        se_ratio: float = 0.25,
        **_: object,
    ) -> None:
        super().__init__()
        self.in_grid = grid
        self.grid = grid.halved() if stride == 2 else grid
        mid = max(1, int(round(dim * expansion)))  # expansion of the output width, as CoAtNet
        self.norm = nn.BatchNorm2d(in_dim)
        # The stride sits on the 1x1 expansion, as CoAtNet's appendix A.1 writes the downsampling block
        # Conv(DepthConv(Conv(Norm(x), stride=2))): the x4-wide tensor is never made at full resolution.
        self.expand = nn.Sequential(nn.Conv2d(in_dim, mid, 1, stride=stride, bias=False), nn.BatchNorm2d(mid), nn.GELU())
        self.dw = nn.Sequential(nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.GELU())
        reduced = max(1, int(in_dim * se_ratio))
        self.se = SqueezeExcite(mid, reduced) if se_ratio > 0 else nn.Identity()
        self.project = nn.Conv2d(mid, dim, 1)

    def forward(self, x: Tensor) -> Tensor:  # [B, N_in, in_dim] -> [B, N, dim]
        prefix, spatial = split_prefix(x, self.in_grid)
        y = self.norm(to_map(spatial, self.in_grid))  # [B, C, H, W]
        y = from_map(self.project(self.se(self.dw(self.expand(y)))))  # [B, HW', dim]
        if self.in_grid.prefix:  # the cls token takes no part in convolutions: zero update
            y = torch.cat([prefix.new_zeros(prefix.shape[0], prefix.shape[1], y.shape[-1]), y], dim=1)
        return y
