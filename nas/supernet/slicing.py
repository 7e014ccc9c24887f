"""Weight entanglement: a smaller layer's tensor is the leading block of the largest one (AutoFormer).

``take(t, shape)`` returns ``t[:s0, :s1, ...]``; a tensor whose first axis stacks several equal parts
(the ``[q | k | v]`` rows of a QKV projection) is sliced part by part, so that row ``r`` of the query of a
narrow subnet is row ``r`` of the widest query, never a key row of the wide one. Every slice is checked
against the largest tensor first: a subnet can never read outside it (a bigger request is an error,
not a silent clamp or a read of neighbouring memory).
"""
from __future__ import annotations

import torch
from torch import Tensor

from nas.errors import NasError

__all__ = ["SliceError", "take"]


class SliceError(NasError):
    """A subnet asked for a larger tensor than the supernet holds (its space and the supernet's differ)."""


def _check(name: str, have: tuple[int, ...], want: tuple[int, ...], parts: int) -> None:
    if len(have) != len(want):
        raise SliceError(f"{name}: the supernet holds a {len(have)}-d tensor {list(have)}, the subnet needs "
                         f"{len(want)}-d {list(want)}")
    if parts > 1 and (have[0] % parts or want[0] % parts):
        raise SliceError(f"{name}: axis 0 of {list(have)} and {list(want)} must split into {parts} equal parts")
    for axis, (h, w) in enumerate(zip(have, want)):
        if not 0 <= w <= h:
            raise SliceError(f"{name}: the subnet needs {list(want)} but the supernet holds only {list(have)} "
                             f"(axis {axis}: {w} > {h}); build the supernet from the space the genome comes from")


def take(t: Tensor, shape: torch.Size | tuple[int, ...], *, parts: int = 1, name: str = "tensor") -> Tensor:
    """The leading ``shape`` block of ``t`` (with ``parts``: of each of the ``parts`` stacked blocks of axis 0).

    1-d results are views (batch-norm statistics updated in place land in the supernet's buffer);
    larger ones are contiguous copies that still carry gradients back to ``t``, so a convolution or
    matrix product sees the same memory layout as in the plain module and gives bitwise the same result.
    """
    want = tuple(int(s) for s in shape)
    _check(name, tuple(t.shape), want, parts)
    if t.ndim == 0:
        return t
    if parts > 1:
        step, each = t.shape[0] // parts, want[0] // parts
        rest = tuple(slice(0, s) for s in want[1:])
        out = torch.cat([t[(slice(i * step, i * step + each),) + rest] for i in range(parts)], dim=0)
        return out
    out = t[tuple(slice(0, s) for s in want)]
    return out if t.ndim == 1 else out.contiguous()
