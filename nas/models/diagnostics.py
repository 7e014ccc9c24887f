"""Looking inside a network: record the attention maps of its attention-type blocks, and measure
how alike consecutive blocks' maps are (attention collapse).

Attention collapse (Zhou et al., DeepViT, arXiv 2103.11886, Sec. 3 and eq. 2).

DeepViT observes that as ViTs get deeper the attention maps of consecutive blocks become nearly the
same, so extra blocks stop changing the representation. It measures this per head ``h`` and token
column ``t`` with the cosine similarity of the two blocks' maps,

    M^{p,q}_{h,t} = <A^p[h, :, t], A^q[h, :, t]> / (||A^p[h, :, t]|| ||A^q[h, :, t]||),

and counts the blocks whose maps are highly similar (> 0.9) to their neighbour's: ViT-32 has 15 such
blocks, DeepViT-32 none. Here the similarity of a block to the previous one is ``M`` averaged over the
batch, heads and columns; blocks of a pyramid whose maps differ in shape (another token count or head
count) are not compared.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from nas.layers.attention import Attention

__all__ = ["attention_mixers", "record_attention", "CollapseReport", "column_similarity", "collapse_report",
           "measure_collapse", "validation_batch", "collapse_metrics", "SIMILAR_THRESHOLD"]


def attention_mixers(model: nn.Module) -> list[Attention]:
    """Attention and re-attention mixers in forward order."""
    return [m for m in model.modules() if isinstance(m, Attention)]


@contextmanager
def record_attention(model: nn.Module) -> Iterator[list[Tensor]]:
    """Within the block, forward passes keep each attention block's maps ``[B, H, N, N]``.

    The yielded list is filled on exit with the maps of the last forward pass, in block order
    (for re-attention: the maps after head mixing and norm, the ones that weight V).
    """
    mixers = attention_mixers(model)
    maps: list[Tensor] = []
    for m in mixers:
        m.record, m.last_attn = True, None
    try:
        yield maps
    finally:
        for m in mixers:
            if m.last_attn is not None:
                maps.append(m.last_attn)
            m.record, m.last_attn = False, None


# -- attention collapse ------------------------------------------------------------------------------
SIMILAR_THRESHOLD = 0.9  # DeepViT's reading of "highly similar"


@dataclass(frozen=True)
class CollapseReport:
    """Similarity of each attention block's maps to the previous block's (``None``: not comparable)."""

    similarities: tuple[float | None, ...]  # one per attention block; the first is always None
    threshold: float = SIMILAR_THRESHOLD

    @property
    def similar_blocks(self) -> int:
        """Blocks whose maps are more similar than ``threshold`` to the previous block's."""
        return sum(1 for s in self.similarities if s is not None and s > self.threshold)

    @property
    def mean_similarity(self) -> float | None:
        known = [s for s in self.similarities if s is not None]
        return sum(known) / len(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        return {"collapse_similarity": self.mean_similarity, "similar_blocks": self.similar_blocks,
                "block_similarity": list(self.similarities)}


def column_similarity(a: Tensor, b: Tensor, eps: float = 1e-12) -> float:
    """Mean cosine similarity of the columns of two maps ``[B, H, N, N]`` (per batch item, head, column).

    A column ``A[b, h, :, t]`` says how much every query attends to token ``t``. A column that is zero
    in either map contributes 0 (cosine with a zero vector is taken as no similarity).
    """
    if a.shape != b.shape or a.ndim != 4:
        raise ValueError(f"attention maps must both be [B, H, N, N] of one shape, "
                         f"got {list(a.shape)} and {list(b.shape)}")
    a, b = a.double(), b.double()
    dot = (a * b).sum(dim=-2)  # [B, H, N]: over the query axis, per column t
    norms = a.norm(dim=-2) * b.norm(dim=-2)  # [B, H, N]
    return float((dot / norms.clamp_min(eps)).mean())


def collapse_report(maps: Sequence[Tensor], threshold: float = SIMILAR_THRESHOLD) -> CollapseReport:
    """Similarity of each map to the one before it, in block order."""
    sims: list[float | None] = [None] if maps else []
    for prev, cur in zip(maps, maps[1:]):
        sims.append(column_similarity(prev, cur) if prev.shape == cur.shape else None)
    return CollapseReport(tuple(sims), threshold)


@torch.no_grad()
def measure_collapse(model: nn.Module, images: Tensor, threshold: float = SIMILAR_THRESHOLD) -> CollapseReport:
    """Forward ``images`` (normalized ``[B, C, H, W]``) in eval mode and compare the recorded maps."""
    was_training = model.training
    model.eval()
    try:
        with record_attention(model) as maps:
            model(images)
    finally:
        model.train(was_training)
    return collapse_report(maps, threshold)


def validation_batch(data: Any, image_size: int, n: int = 64, device: torch.device | str = "cpu") -> Tensor:
    """The first ``n`` validation images, fitted to ``image_size`` and normalized as the trainer does."""
    from nas.data import DeviceLoader, fit_images

    x = fit_images(data.x_val[:n].to(device), image_size)  # [n, C, S, S] uint8
    loader = DeviceLoader(x, data.y_val[: len(x)], batch_size=max(len(x), 1), mean=data.mean, std=data.std,
                          device=device)
    return loader.normalize(loader.x)  # [n, C, S, S] float


def collapse_metrics(model: nn.Module, data: Any, image_size: int, n: int = 64) -> dict[str, Any]:
    """Collapse columns for a trained network (empty when it has no attention-type block)."""
    if not attention_mixers(model):
        return {}
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return measure_collapse(model, validation_batch(data, image_size, n, device)).to_dict()
