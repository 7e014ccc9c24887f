"""Mixer modules by genome name: the module classes of the declarations in :mod:`nas.mixers`.

Every mixer follows one contract (see :class:`nas.mixers.MixerSpec` and :mod:`nas.layers.block`):
``Mixer(dim, *, in_dim, grid, stride, position, qkv_bias, **stage_options)`` with
``forward(x: [B, N_in, in_dim]) -> [B, N_out, dim]``. How the block wraps it (residual, MLP, norm,
stride) is part of the declaration, not of the class.
"""
from __future__ import annotations

from torch import nn

from nas.mixers import MixerSpec, mixer_spec

__all__ = ["get_mixer", "get_spec"]


def get_spec(name: str) -> MixerSpec:
    """The declaration of mixer ``name`` (:class:`~nas.errors.GenomeError` naming the choices if unknown)."""
    return mixer_spec(name)


def get_mixer(name: str) -> type[nn.Module]:
    """The module class of mixer ``name``."""
    return mixer_spec(name).cls
