"""The size guard's default for a mixer that declares no estimate: build it and run it on the meta device.

On ``torch.device("meta")`` tensors have shapes and no storage, so building a mixer of any width and
running one image of any size through it costs microseconds and no memory. Parameters are counted
exactly; activations as the sum of every op's output (an upper bound of what backward keeps, so the
guard errs on the safe side); MACs with :class:`torch.utils.flop_counter.FlopCounterMode`, whose
"flops" are two per multiply-add (halved here to the project's MACs).
"""
from __future__ import annotations

from typing import Any

from nas.mixers import BlockShape, MixerEstimate, MixerSpec

__all__ = ["meta_estimate"]


def meta_estimate(spec: MixerSpec, shape: BlockShape) -> MixerEstimate:
    """(params, activation floats, MACs) of one ``spec`` module for one image of ``shape``."""
    key = (spec.name, spec.module_path, shape.h, shape.w, shape.prefix, shape.in_dim, shape.dim, shape.stride,
           shape.position, shape.qkv_bias, tuple(sorted(shape.options.items())))
    try:
        hash(key)
    except TypeError:  # an unhashable option value: count without the cache
        return _estimate(spec, shape)
    if key not in _CACHE:
        if len(_CACHE) > 4096:
            _CACHE.clear()
        _CACHE[key] = _estimate(spec, shape)
    return _CACHE[key]


_CACHE: dict[tuple[Any, ...], MixerEstimate] = {}


def _estimate(spec: MixerSpec, shape: BlockShape) -> MixerEstimate:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from nas.layers.grid import Grid

    class _Outputs(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.floats = 0

        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor):
                    self.floats += t.numel()
            return out

    grid = Grid(shape.h, shape.w, shape.prefix)
    with torch.device("meta"):
        module = spec.cls(shape.dim, in_dim=shape.in_dim, grid=grid, stride=shape.stride, position=shape.position,
                          qkv_bias=shape.qkv_bias, **dict(shape.options))
    params = sum(p.numel() for p in module.parameters())
    x = torch.empty(1, shape.tokens, shape.in_dim, device="meta")
    try:
        counter, outputs = FlopCounterMode(display=False), _Outputs()
        with counter, outputs, torch.no_grad():
            module(x)
        return MixerEstimate(params=params, activations=outputs.floats, macs=counter.get_total_flops() // 2)
    except Exception:  # noqa: BLE001 - an op without a meta kernel: bound it by a dense map per parameter
        n = shape.out_tokens
        return MixerEstimate(params=params, activations=8 * n * shape.dim, macs=n * max(params, shape.dim))
