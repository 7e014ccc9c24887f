"""Re-attention (DeepViT, Zhou et al. 2021): mix the heads' attention maps with a learned H x H matrix.

``A' = Norm(Theta^T A)``, i.e. ``A'[g] = sum_h Theta[h, g] A[h]``, then ``out = A' V``. Regenerating
the maps from all heads keeps deep stacks from "attention collapse" (maps of consecutive blocks
becoming nearly identical). Norm over the head axis: ``batch`` follows the paper's code (a 1x1 conv
with bias, then BatchNorm2d over heads), ``layer`` follows the seed's code (no bias, LayerNorm over
heads), ``none`` leaves the mixed maps unnormalised.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.layers.attention import Attention
from nas.layers.grid import Grid

__all__ = ["ReAttention"]


class ReAttention(Attention):
    def __init__(self, dim: int, *, in_dim: int, grid: Grid, heads: int = 1, reattn_norm: str = "batch", **kw: object) -> None:
        super().__init__(dim, in_dim=in_dim, grid=grid, heads=heads, **kw)
        # Starts at the identity so an untrained block is plain attention; noise breaks head symmetry.
        self.theta = nn.Parameter(torch.eye(heads) + 0.02 * torch.randn(heads, heads))  # [H_in, H_out]
        self.theta_bias = nn.Parameter(torch.zeros(heads)) if reattn_norm == "batch" else None
        self.reattn_norm = reattn_norm
        if reattn_norm == "batch":
            self.head_norm: nn.Module | None = nn.BatchNorm2d(heads)
        elif reattn_norm == "layer":
            self.head_norm = nn.LayerNorm(heads)
        else:
            self.head_norm = None

    def attend(self, q: Tensor, k: Tensor, v: Tensor, bias: Tensor | None) -> Tensor:
        attn = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5  # [B, H, N, N]
        if bias is not None:
            attn = attn + bias
        attn = attn.softmax(dim=-1)
        attn = torch.einsum("bhij,hg->bgij", attn, self.theta)  # mix heads: [B, H, N, N]
        if self.theta_bias is not None:
            attn = attn + self.theta_bias[None, :, None, None]
        if self.reattn_norm == "batch":
            attn = self.head_norm(attn)
        elif self.reattn_norm == "layer":
            attn = self.head_norm(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        if self.record:
            self.last_attn = attn.detach()
        return attn @ v
