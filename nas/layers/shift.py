"""Partial shift (ShiftViT, Wang et al. 2022): the zero-parameter, zero-FLOP token mixer.

``g = floor(gamma * C)`` channels per direction move one pixel: channels ``[0, g)`` left along W,
``[g, 2g)`` right, ``[2g, 3g)`` up along H, ``[3g, 4g)`` down; the rest stay; vacated borders are
zero. There is no residual around the shift and no norm before it: ``x = shift(x)``, then the
block's ``x + MLP(Norm(x))``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.mixers import shifted_channels
from nas.layers.grid import Grid, split_prefix

__all__ = ["Shift", "shift_map"]


def shift_map(x: Tensor, g: int) -> Tensor:
    """Shift ``[B, H, W, C]`` (channels last) by one pixel in four directions, ``g`` channels each."""
    out = torch.zeros_like(x)
    out[:, :, :-1, 0:g] = x[:, :, 1:, 0:g]  # left
    out[:, :, 1:, g : 2 * g] = x[:, :, :-1, g : 2 * g]  # right
    out[:, :-1, :, 2 * g : 3 * g] = x[:, 1:, :, 2 * g : 3 * g]  # up
    out[:, 1:, :, 3 * g : 4 * g] = x[:, :-1, :, 3 * g : 4 * g]  # down
    out[..., 4 * g :] = x[..., 4 * g :]
    return out


class Shift(nn.Module):
    """Declared in :mod:`nas.mixers.builtin`: no residual around it, a GroupNorm-MLP after it."""

    def __init__(self, dim: int, *, grid: Grid, shift_ratio: float = 1 / 12, **_: object) -> None:
        super().__init__()
        self.grid = grid
        self.g = shifted_channels(shift_ratio, dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, N, C]
        prefix, spatial = split_prefix(x, self.grid)
        b, _, c = spatial.shape
        shifted = shift_map(spatial.reshape(b, self.grid.h, self.grid.w, c), self.g).reshape(b, -1, c)
        return torch.cat([prefix, shifted], dim=1) if self.grid.prefix else shifted

    def extra_repr(self) -> str:
        return f"channels_per_direction={self.g}"
