"""Single-purpose layers: token mixers (one file each, declared in :mod:`nas.mixers`), the block, stems, norms."""
from nas.layers.block import Block
from nas.layers.grid import Grid
from nas.layers.registry import get_mixer, get_spec

__all__ = ["Block", "Grid", "get_mixer", "get_spec"]
