"""Norm layers over tokens ``[B, N, C]``, chosen by name so that blocks stay mixer-agnostic."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["make_norm", "NORMS"]


class TokenGroupNorm(nn.GroupNorm):
    """GroupNorm with one group over all tokens and channels of a sample (ShiftViT's "LayerNorm")."""

    def __init__(self, dim: int) -> None:
        super().__init__(1, dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C]
        return F.group_norm(x.transpose(1, 2), 1, self.weight, self.bias, self.eps).transpose(1, 2)


class TokenBatchNorm(nn.BatchNorm1d):
    """BatchNorm over the channel axis of tokens (CoAtNet's MBConv pre-norm)."""

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C]
        return super().forward(x.transpose(1, 2)).transpose(1, 2)


NORMS: dict[str, type[nn.Module]] = {"layer": nn.LayerNorm, "group": TokenGroupNorm, "batch": TokenBatchNorm}


def make_norm(kind: str, dim: int) -> nn.Module:
    return NORMS[kind](dim)
