"""What a built network accepts as input, and advice that fits each way an input can be wrong.

A network built from a genome takes float images ``[B, C, H, W]`` with ``C = in_channels`` and
``H = W = image_size``, of its weights' dtype, on its weights' device. In a notebook the input is
often nearly right: a numpy array, ``uint8`` pixels, ``float64`` from numpy, channels last
(``[B, H, W, C]``, as PIL and numpy lay images out), one image without its batch axis, a grey image
for an RGB network. Torch would fail deep inside the stem's convolution with a message about
"bias type"; :func:`input_error` names what was given, what the network takes and the one call
that fixes it. The check in ``forward`` is a few comparisons of Python values, nothing on the tensor.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from nas.errors import DataError

__all__ = ["InputShapeError", "InputTypeError", "input_error"]


class InputShapeError(DataError):
    """An input tensor whose shape is not the one the network was built for."""


class InputTypeError(DataError):
    """An input that is not a tensor of the network's dtype on the network's device."""


def _dims(shape: Any) -> str:
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"  # plain ints, also for traced shapes


def _built(model: Any) -> str:
    c, h, w = (int(s) for s in model.input_shape)
    return (f"this network was built for inputs [B, {c}, {h}, {w}] (genome image_size {model.genome.image_size}, "
            f"in_channels {model.genome.in_channels})")


def input_error(model: Any, x: Any, weight: Tensor) -> DataError | None:
    """The error for input ``x`` of ``model`` (whose weights look like ``weight``), or ``None`` if it fits."""
    built = _built(model)
    c, h, w = (int(s) for s in model.input_shape)
    if not isinstance(x, Tensor):
        kind = f"{type(x).__module__}.{type(x).__name__}".removeprefix("builtins.")
        if hasattr(x, "shape") and hasattr(x, "dtype"):  # numpy and friends
            return InputTypeError(f"{built}, as a torch.Tensor; got a {kind} {getattr(x, 'dtype', '')} "
                                  f"{_dims(x.shape)}; convert it with torch.as_tensor(x, dtype=torch.float32)")
        return InputTypeError(f"{built}, as a torch.Tensor; got a {kind}")
    if weight.is_meta:
        return InputTypeError("this network's weights are on the meta device (shapes without values), so it "
                              "cannot run; build it on a real device (outside `with torch.device('meta')`)")
    if x.is_meta:
        return InputTypeError(f"{built}; got a meta tensor {_dims(x.shape)}, which holds no values; give real "
                              f"images on {weight.device}")
    if not (x.is_floating_point() and x.dtype == weight.dtype) and not torch.is_autocast_enabled(x.device.type):
        if x.is_floating_point():
            fix = (f"x.to({weight.dtype}) (or model.to({x.dtype}) to run the network in {x.dtype})")
        elif x.dtype == torch.uint8:
            fix = f"x.to({weight.dtype}) / 255, normalised as the training images were"
        else:
            fix = f"x.to({weight.dtype})"
        return InputTypeError(f"{built}, of dtype {weight.dtype} (its weights'); got {x.dtype}; convert with {fix}")
    if x.device != weight.device:
        return InputTypeError(f"{built} on {weight.device} (its weights' device); got a tensor on {x.device}; "
                              f"move it with x.to('{weight.device}'), or the network with model.to('{x.device}')")
    shape = tuple(int(s) for s in x.shape)
    if shape[1:] == (c, h, w):
        return None
    got = f"{built}, got {_dims(shape)}"
    if shape == (c, h, w):
        return InputShapeError(f"{got}: one image without its batch axis; add it with x.unsqueeze(0)")
    if len(shape) == 4 and shape[3] == c and shape[1:3] == (h, w):
        return InputShapeError(f"{got}: channels last ([B, H, W, C]); move them with x.permute(0, 3, 1, 2)")
    if len(shape) == 3 and shape[2] == c and shape[:2] == (h, w):
        return InputShapeError(f"{got}: one image, channels last; use x.permute(2, 0, 1).unsqueeze(0)")
    if len(shape) == 3 and c == 1 and shape[1:] == (h, w):
        return InputShapeError(f"{got}: grey images without their channel axis; add it with x.unsqueeze(1)")
    if len(shape) != 4:
        return InputShapeError(f"{got}: {len(shape)} axes, the network takes 4 ([B, C, H, W])")
    if shape[1] != c and shape[2:] == (h, w):
        hint = ("repeat a grey channel with x.expand(-1, 3, -1, -1)" if (shape[1], c) == (1, 3) else
                "convert to grey with x.mean(dim=1, keepdim=True)" if c == 1 and shape[1] == 3 else
                f"give {c}-channel images")
        return InputShapeError(f"{got}: {shape[1]} channel(s) for a network of {c}; {hint}, or build the genome "
                               f"with in_channels {shape[1]}")
    if shape[1] == c:
        fix = (f"build the genome with image_size {shape[2]}" if shape[2] == shape[3] else
               "the network takes square images: crop them")
        return InputShapeError(f"{got}: {shape[2]}x{shape[3]} images; resize them to {h}x{w} (e.g. "
                               f"torch.nn.functional.interpolate(x, size=({h}, {w}))), or {fix}")
    return InputShapeError(f"{got}; give images [B, {c}, {h}, {w}]")
