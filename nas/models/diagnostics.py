"""Looking inside a network: record the attention maps of its attention-type blocks."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import Tensor, nn

from nas.layers.attention import Attention

__all__ = ["attention_mixers", "record_attention"]


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
