"""Multi-head self-attention (ViT) with optional relative position bias (CoAtNet).

The fast path is ``F.scaled_dot_product_attention``; when attention maps are being recorded for
diagnostics (:func:`nas.models.diagnostics.record_attention`) the softmax is computed explicitly.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from nas.layers.grid import Grid, pool_tokens

__all__ = ["Attention", "RelativePositionBias"]


class RelativePositionBias(nn.Module):
    """A learned bias per head for each relative offset: a table of (2H-1)(2W-1) entries per head.

    Added to Q.K^T before the softmax (CoAtNet eq. 3). Prefix tokens (cls) get zero bias.
    """

    def __init__(self, heads: int, grid: Grid) -> None:
        super().__init__()
        self.grid = grid
        self.rel_bias = nn.Parameter(torch.zeros((2 * grid.h - 1) * (2 * grid.w - 1), heads))
        nn.init.trunc_normal_(self.rel_bias, std=0.02)
        ys, xs = torch.meshgrid(torch.arange(grid.h), torch.arange(grid.w), indexing="ij")
        coords = torch.stack([ys.flatten(), xs.flatten()])  # [2, HW]
        rel = coords[:, :, None] - coords[:, None, :]  # [2, HW, HW]
        index = (rel[0] + grid.h - 1) * (2 * grid.w - 1) + (rel[1] + grid.w - 1)
        self.register_buffer("index", index, persistent=False)  # [HW, HW]

    def forward(self) -> Tensor:
        bias = self.rel_bias[self.index].permute(2, 0, 1)  # [heads, HW, HW]
        p = self.grid.prefix
        return F.pad(bias, (p, 0, p, 0)) if p else bias  # [heads, N, N]


class Attention(nn.Module):
    """``Attention(Norm(x))`` with its own pre-norm; with ``stride=2`` it is CoAtNet's pooled form
    ``Attention(Pool(Norm(x)))`` whose output has the new width ``dim`` (declared in :mod:`nas.mixers.builtin`)."""

    def __init__(
        self,
        dim: int,
        *,
        in_dim: int,
        grid: Grid,
        stride: int = 1,
        heads: int = 1,
        position: str = "absolute",
        qkv_bias: bool = True,
        **_: object,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.in_grid = grid
        self.grid = grid.halved() if stride == 2 else grid
        self.stride = stride
        self.norm = nn.LayerNorm(in_dim)
        self.qkv = nn.Linear(in_dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.rel = RelativePositionBias(heads, self.grid) if position == "relative" else None
        self.record = False  # set by record_attention(); keeps the last maps in self.last_attn
        self.last_attn: Tensor | None = None

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        """Softmax attention of ``[B, heads, N, d]`` tensors (fused unless maps are recorded)."""
        # Fused unless maps are recorded; with a learned bias on CPU the fused kernel falls back to a
        # general path that is slower than two matmuls (benchmarks/mixer_speed.py), so it is skipped there.
        if not self.record and (bias is None or q.is_cuda):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
        attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # [B, heads, N, N]
        if bias is not None:
            attn = attn + bias
        attn = attn.softmax(dim=-1)
        self.last_attn = attn.detach()
        return attn @ v

    def forward(self, x: Tensor) -> Tensor:  # [B, N_in, in_dim] -> [B, N, dim]
        x = self.norm(x)
        if self.stride == 2:
            x = pool_tokens(x, self.in_grid)
        q, k, v = rearrange(self.qkv(x), "b n (three h d) -> three b h n d", three=3, h=self.heads)
        bias = self.rel() if self.rel is not None else None
        out = self.attend(q, k, v, bias)  # [B, heads, N, d]
        return self.proj(rearrange(out, "b h n d -> b n (h d)"))
