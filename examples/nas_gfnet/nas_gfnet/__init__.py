"""A nas plugin: GFNet's global filter as the token mixer ``gfnet`` (layout letter G).

Name this module in ``plugins: [nas_gfnet]`` (genome, search space, study or ablation config), or
install the package (its ``nas.mixers`` entry point imports it). See docs/plugins.md.
"""
from __future__ import annotations

import math

from nas.mixers import BlockShape, MixerEstimate, MixerField, MixerSpec, register_mixer

__version__ = "0.1.0"


def _fft_macs(real_shape: list[int]) -> int:
    """A real 2-D FFT over ``n = H·W`` points of ``[B, H, W, C]``: a radix-2 FFT costs ``(n/2)·log2(n)``
    complex multiply-adds (4 real ones each), a real-input one half of that: ``n·log2(n)`` MACs per channel."""
    b, h, w, c = real_shape
    n = h * w
    return int(b * c * n * max(1, math.ceil(math.log2(max(n, 2)))))


def rfft2_macs(inputs: list, outputs: list) -> int:
    """fvcore handle for ``aten::fft_rfft2`` (its input is the real map)."""
    return _fft_macs(list(inputs[0].type().sizes()))


def irfft2_macs(inputs: list, outputs: list) -> int:
    """fvcore handle for ``aten::fft_irfft2`` (its output is the real map)."""
    return _fft_macs(list(outputs[0].type().sizes()))


def estimate(shape: BlockShape) -> MixerEstimate:
    """Closed form for the size guard: the filter (``H·(W//2+1)·C·2``) and the norm; two FFTs and the
    filter product."""
    h, w, c = shape.h, shape.w, shape.dim
    n = h * w
    params = h * (w // 2 + 1) * c * 2 + 2 * c
    macs = 2 * c * n * max(1, math.ceil(math.log2(max(n, 2))))
    return MixerEstimate(params=params, activations=6 * shape.tokens * c, macs=macs)


GFNET = register_mixer(MixerSpec(
    name="gfnet",
    letter="G",
    module="nas_gfnet.filter:GlobalFilter",
    fields=(
        MixerField("fft_norm", "choice", "ortho", choices=("ortho", "backward", "forward"),
                   doc="normalisation of the FFT pair (GFNet: ortho)"),
        MixerField("init_std", "float", 0.02, low=0, high=1, low_open=True,
                   doc="standard deviation of the filter's initial values (GFNet: 0.02)"),
    ),
    residual=True, has_mlp=True, norm="layer", supports_stride=False,
    estimate=estimate,
    flop_handles={"aten::fft_rfft2": rfft2_macs, "aten::fft_irfft2": irfft2_macs},
    description="global filter: FFT2, a learned complex filter per frequency and channel, inverse FFT2",
    source="Rao et al., Global Filter Networks for Image Classification (NeurIPS 2021), raoyongming/GFNet",
))
