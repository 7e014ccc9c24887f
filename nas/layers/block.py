"""The one block contract every mixer plugs into.

``x <- shortcut(x) + DropPath(Mixer(x))`` for residual mixers (their pre-norm lives inside the
mixer) or ``x <- Mixer(x)`` for the shift, then ``x <- x + DropPath(MLP(Norm(x)))`` when the mixer
has an MLP. A block that halves the grid (CoAtNet's first block of a stage) uses the shortcut
``Proj(Pool(x))``; a mixer that cannot stride gets the pooled, projected input instead.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from nas.layers.grid import Grid, pool_tokens
from nas.layers.mlp import DropPath, Mlp
from nas.layers.norms import make_norm
from nas.layers.registry import get_spec

__all__ = ["Block", "PoolProject", "LayerScale"]


class LayerScale(nn.Module):
    """``gamma * x`` with a learned per-channel ``gamma`` starting at ``init`` (PoolFormer: 1e-5)."""

    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), float(init)))

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C]
        return x * self.gamma


class PoolProject(nn.Module):
    """``Proj(Pool(x))``: 3x3/2 max-pool on the spatial tokens (when striding), then a 1x1 projection."""

    def __init__(self, in_dim: int, dim: int, grid: Grid, stride: int) -> None:
        super().__init__()
        self.grid = grid
        self.stride = stride
        self.proj = nn.Linear(in_dim, dim) if in_dim != dim else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 2:
            x = pool_tokens(x, self.grid)
        return self.proj(x)


class Block(nn.Module):
    def __init__(
        self,
        mixer: str,
        dim: int,
        *,
        in_dim: int,
        grid: Grid,
        stride: int = 1,
        mlp_ratio: float | None = None,
        drop_path: float = 0.0,
        layer_scale: float | None = None,
        **mixer_options: Any,
    ) -> None:
        super().__init__()
        spec = get_spec(mixer)
        cls = spec.cls
        changes_shape = stride != 1 or in_dim != dim
        self.pre: nn.Module | None = None
        self.shortcut: nn.Module = nn.Identity()
        if changes_shape and not spec.supports_stride:
            self.pre = PoolProject(in_dim, dim, grid, stride)
            grid, in_dim, stride = (grid.halved() if stride == 2 else grid), dim, 1
        elif changes_shape:
            self.shortcut = PoolProject(in_dim, dim, grid, stride)
        self.mixer = cls(dim, in_dim=in_dim, grid=grid, stride=stride, **mixer_options)
        self.residual = spec.residual
        self.drop_path = DropPath(drop_path)
        self.grid = grid.halved() if stride == 2 else grid  # output grid
        if spec.has_mlp:
            self.norm2: nn.Module | None = make_norm(spec.norm, dim)
            self.mlp: nn.Module | None = Mlp(dim, mlp_ratio if mlp_ratio is not None else 4.0)
        else:
            self.norm2 = self.mlp = None
        # MetaFormer's layer scale (Touvron et al., CaiT): a per-channel factor on each residual branch
        self.scale1 = LayerScale(dim, layer_scale) if layer_scale and spec.residual else None
        self.scale2 = LayerScale(dim, layer_scale) if layer_scale and self.mlp is not None else None

    def forward(self, x: Tensor) -> Tensor:  # [B, N_in, in_dim] -> [B, N, dim]
        if self.pre is not None:
            x = self.pre(x)
        if self.residual:
            y = self.mixer(x)
            x = self.shortcut(x) + self.drop_path(self.scale1(y) if self.scale1 is not None else y)
        else:
            x = self.mixer(x)
        if self.mlp is not None:
            y = self.mlp(self.norm2(x))
            x = x + self.drop_path(self.scale2(y) if self.scale2 is not None else y)
        return x
