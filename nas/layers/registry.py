"""The mixer registry: genome mixer names -> module classes.

Every mixer follows one contract (see :class:`MixerSpec` and :mod:`nas.layers.block`):
``Mixer(dim, *, in_dim, grid, stride, position, qkv_bias, **stage_options)`` with
``forward(x: [B, N_in, in_dim]) -> [B, N_out, dim]``. Class attributes say how the block wraps it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from torch import nn

from nas.errors import GenomeError, closest

__all__ = ["MIXERS", "register_mixer", "get_mixer"]

MIXERS: dict[str, type[nn.Module]] = {}
T = TypeVar("T", bound=type[nn.Module])


def register_mixer(name: str) -> Callable[[T], T]:
    """Class decorator adding a mixer under ``name``.

    The class must define ``residual`` (block computes ``x + mixer(x)``; else ``x = mixer(x)``),
    ``has_mlp`` (a pre-norm MLP follows), ``mlp_norm`` (``layer``/``group``/``batch``) and
    ``supports_stride`` (it can halve the grid itself, as CoAtNet's first block of a stage does).
    """

    def wrap(cls: T) -> T:
        for attr in ("residual", "has_mlp", "mlp_norm", "supports_stride"):
            if not hasattr(cls, attr):
                raise TypeError(f"mixer {cls.__name__} must define class attribute {attr!r}")
        MIXERS[name] = cls
        return cls

    return wrap


def get_mixer(name: str) -> type[nn.Module]:
    try:
        return MIXERS[name]
    except KeyError:
        raise GenomeError(f"unknown mixer {name!r}{closest(name, MIXERS)}; known: {', '.join(sorted(MIXERS))}") from None
