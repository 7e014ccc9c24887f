"""The block's MLP (Linear C->tau*C, GELU, Linear tau*C->C) and stochastic depth."""
from __future__ import annotations

from torch import Tensor, nn

__all__ = ["Mlp", "DropPath"]


class Mlp(nn.Module):
    """Two-layer MLP applied per token; equal to ShiftViT's 1x1-conv MLP on the token grid."""

    def __init__(self, dim: int, ratio: float) -> None:
        super().__init__()
        hidden = max(1, int(round(dim * ratio)))
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, N, C]
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Drop the whole residual branch per sample with probability ``p`` (stochastic depth)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


