"""Identity mapping as the token mixer (MetaFormer's lower bound: Yu et al., CVPR 2022, Table 5; the
IdentityFormer of "MetaFormer Baselines for Vision", 2022).

``x <- x + Norm(x)``: no token talks to any other inside the block; only the patch embeddings and the
downsampling layers mix neighbouring positions. What such a network still learns is what the
macro-structure (embeddings, norms, MLPs, residuals, the pyramid) provides by itself.
"""
from __future__ import annotations

from torch import Tensor, nn

from nas.layers.norms import make_norm

__all__ = ["IdentityMixer"]


class IdentityMixer(nn.Module):
    """Declared in :mod:`nas.mixers.builtin` as ``identity`` (letter I): the block's pre-norm and nothing else."""

    def __init__(self, dim: int, **_: object) -> None:
        super().__init__()
        self.norm = make_norm("group", dim)

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, N, C]
        return self.norm(x)
