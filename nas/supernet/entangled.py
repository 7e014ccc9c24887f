"""How each token mixer's largest block holds all its smaller ones: ONE table keyed by mixer name.

A supernet block position holds, for every candidate mixer, the block that mixer builds at the
largest width, head count, MLP ratio and expansion the space allows there; a smaller choice uses the
leading slices of those tensors (AutoFormer's weight entanglement, Chen et al. 2021, Sec. 3.1). What a
mixer must declare for that is small, and declared here only:

- ``parts``: tensors whose first axis stacks equal parts, sliced part by part (the ``[q | k | v]``
  rows of the QKV projection), keyed by their name inside the block;
- ``fixed``: stage options that change a block's *structure* rather than its sizes (DeepViT's head
  norm kind; a squeeze-excitation ratio, which may turn SE off), so a space must hold them constant.

The shift, pooling and identity mixers have no weights at all: its entry is empty, and its block's MLP is entangled like any other's.
A mixer missing from the table cannot sit in a one-shot space (a clear error names the known ones).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from nas.errors import ConfigError

__all__ = ["Entangled", "ENTANGLED", "entangled"]


@dataclass(frozen=True)
class Entangled:
    """One mixer's entry in :data:`ENTANGLED` (see the module docstring)."""

    parts: Mapping[str, int] = field(default_factory=dict)  # block-relative tensor name -> parts on axis 0
    fixed: tuple[str, ...] = ()  # stage options a one-shot space must hold constant for this mixer


_QKV = {"mixer.qkv.weight": 3, "mixer.qkv.bias": 3}  # rearrange "(three h d)": q rows, then k, then v

ENTANGLED: dict[str, Entangled] = {
    "attention": Entangled(parts=_QKV),
    "reattention": Entangled(parts=_QKV, fixed=("reattn_norm",)),  # theta [H, H] and the head norm: leading slices
    "shift": Entangled(),  # zero parameters (ShiftViT); the block's MLP is sliced like every block's
    "conv": Entangled(fixed=("se_ratio",)),  # expand/dw/SE/project: leading slices of the widest MBConv
    "pool": Entangled(),  # PoolFormer's average pooling: no weights of its own
    "identity": Entangled(),  # MetaFormer's identity mixer: no weights of its own
}


def entangled(mixer: str) -> Entangled:
    try:
        return ENTANGLED[mixer]
    except KeyError:
        raise ConfigError(f"mixer {mixer!r} has no weight-sharing entry; one-shot studies support "
                          f"{', '.join(ENTANGLED)}") from None
