"""Single-purpose layers: token mixers (one file each, one registry), the block, stems, norms."""
from nas.layers import attention, mbconv, reattention, shift  # noqa: F401  (registers the mixers)
from nas.layers.block import Block
from nas.layers.grid import Grid
from nas.layers.registry import MIXERS, get_mixer, register_mixer

__all__ = ["MIXERS", "Block", "Grid", "get_mixer", "register_mixer"]
