"""SynFlow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving synaptic
flow", NeurIPS 2020), as a zero-cost proxy (Abdelfattah et al., "Zero-Cost Proxies for Lightweight
NAS", ICLR 2021).

Every parameter is replaced by its absolute value, an all-ones input goes through the network and
``R = sum(output)``; the score sums ``|theta * dR/dtheta|`` over the Linear and Conv2d weights. It
uses no data and no labels. As in Abdelfattah et al., normalisation layers are taken out (their
``bn=False`` copy): an all-ones input would make LayerNorm's output zero and BatchNorm's batch
statistics degenerate. The products of many absolute weights overflow float32 in deep networks, so
the pass runs in float64, and the score is reported as its natural logarithm (``ln R_synflow``) so that
it stays a moderate number as an objective; rankings are unchanged. Attention runs through its explicit
softmax (the path :func:`~nas.models.record_attention` switches on): the all-ones flow saturates the
attention maps, and the fused kernel's float64 backward returns NaN there where the explicit one
stays finite.
"""
from __future__ import annotations

import math
from typing import Any

from nas.errors import NasError
from nas.proxy.batch import ProxyBatch
from nas.proxy.layers import inputs, weighted_layers
from nas.proxy.registry import register_proxy

__all__ = ["synflow", "strip_norms"]


def strip_norms(model: Any) -> None:
    """Replace every BatchNorm, LayerNorm and GroupNorm of ``model`` by an identity, in place."""
    from torch import nn

    norms = (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)
    for module in list(model.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, norms):
                setattr(module, child_name, nn.Identity())


@register_proxy("synflow", summary="ln sum |theta * dR/dtheta|, |theta|, all-ones input, no norms, float64 "
                "(Tanaka et al. 2020; Abdelfattah et al. 2021)", needs_labels=False)
def synflow(model: Any, batch: ProxyBatch) -> float:
    import torch

    from nas.models.diagnostics import record_attention

    strip_norms(model)
    model.eval()  # no DropPath: a deterministic flow
    model.double()
    with torch.no_grad():
        for p in model.parameters():
            p.abs_()
    x, _ = inputs(model, batch)
    ones = torch.ones((1,) + tuple(x.shape[1:]), dtype=torch.float64, device=x.device)  # [1, C, H, W]
    model.zero_grad(set_to_none=True)
    with torch.enable_grad(), record_attention(model):  # explicit softmax: see the module's docstring
        torch.sum(model(ones)).backward()
    total = 0.0
    with torch.no_grad():
        for layer in weighted_layers(model):
            if layer.weight.grad is not None:
                total += float((layer.weight * layer.weight.grad).abs().sum())
    if not math.isfinite(total):  # float64 ends near 1.8e308: very deep networks (24+ blocks at 224 px) pass it
        raise NasError(f"synflow overflows float64 for this network ({len(weighted_layers(model))} weighted "
                       f"layers): the flow through absolute weights exceeds 1.8e308; use another proxy for it")
    return math.log(total) if total > 0 else -math.inf
