"""NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021).

Each image of a batch gets a binary code: which units of the network's ReLU-type activations are on
(their input > 0). ``K_H[i, j] = N_A - hamming(c_i, c_j)`` counts the units on which images i and j
agree; the score is ``log|K_H|``. A network whose activation patterns already tell the images apart at
initialisation (a kernel far from singular) tends to train to higher accuracy.

For the networks here the activations are the GELUs of the blocks (the MLPs of attention, re-attention
and shift blocks; the expansion and depthwise convolutions of MBConv blocks), taken inside the stages
only (a GELU with input > 0 is the same binary code as a ReLU's). The network runs in training mode,
as at its first training step (BatchNorm normalises with the batch's statistics).
"""
from __future__ import annotations

import math
from typing import Any

from nas.errors import NasError
from nas.proxy.batch import ProxyBatch
from nas.proxy.layers import inputs
from nas.proxy.registry import register_proxy

__all__ = ["naswot"]


def activation_modules(model: Any) -> list[Any]:
    """The GELU/ReLU modules inside the blocks (``model.stages``), else anywhere in the network."""
    from torch import nn

    root = getattr(model, "stages", model)
    return [m for m in root.modules() if isinstance(m, (nn.GELU, nn.ReLU))]


@register_proxy("naswot", summary="log|K_H| of the binary activation codes over a batch (Mellor et al. 2021)",
                needs_labels=False)
def naswot(model: Any, batch: ProxyBatch) -> float:
    import torch

    x, _ = inputs(model, batch)
    b = x.shape[0]
    kernel = torch.zeros(b, b, dtype=torch.float64, device=x.device)  # [B, B]

    def hook(_module: Any, args: tuple[Any, ...], _out: Any) -> None:
        code = (args[0].detach() > 0).flatten(1).to(torch.float64)  # [B, units]
        # agreements = both on + both off; accumulated per layer so the codes are never stored whole
        kernel.add_(code @ code.T + (1.0 - code) @ (1.0 - code).T)

    acts = activation_modules(model)
    if not acts:
        raise NasError(f"naswot needs GELU or ReLU activations in the network; {type(model).__name__} has none")
    handles = [m.register_forward_hook(hook) for m in acts]
    try:
        model.train()
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    sign, logdet = torch.linalg.slogdet(kernel)
    if sign <= 0 or not math.isfinite(float(logdet)):
        # Two images with identical codes make K_H singular (log 0): a tiny ridge keeps the score finite
        # and still far below any non-degenerate kernel's.
        units = float(kernel[0, 0])
        sign, logdet = torch.linalg.slogdet(kernel + 1e-6 * max(units, 1.0) * torch.eye(b, dtype=kernel.dtype,
                                                                                           device=kernel.device))
    return float(logdet)
