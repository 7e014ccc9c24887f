"""SNIP (Lee et al., "SNIP: Single-shot Network Pruning based on Connection Sensitivity", ICLR 2019), as
a zero-cost proxy (Abdelfattah et al., ICLR 2021): the summed connection sensitivity
``|theta * dL/dtheta|`` of the Linear and Conv2d weights for the cross-entropy loss of one batch: the
first-order change of the loss if each weight were removed.
"""
from __future__ import annotations

from typing import Any

from nas.proxy.batch import ProxyBatch
from nas.proxy.grad_norm import loss_gradients
from nas.proxy.layers import weighted_layers
from nas.proxy.registry import register_proxy

__all__ = ["snip"]


@register_proxy("snip", summary="sum |theta * dL/dtheta| of the batch loss (Lee et al. 2019; Abdelfattah et al. 2021)",
                needs_labels=True)
def snip(model: Any, batch: ProxyBatch) -> float:
    import torch

    loss_gradients(model, batch)
    with torch.no_grad():
        return float(sum(float((m.weight * m.weight.grad).abs().sum())
                         for m in weighted_layers(model) if m.weight.grad is not None))
