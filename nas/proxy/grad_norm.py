"""grad_norm (Abdelfattah et al., "Zero-Cost Proxies for Lightweight NAS", ICLR 2021).

The sum over the Linear and Conv2d layers of the Euclidean norm of their weight gradient, for the
cross-entropy loss of one batch at initialisation: how strongly the untrained network's weights are
pulled by the data.
"""
from __future__ import annotations

from typing import Any

from nas.proxy.batch import ProxyBatch
from nas.proxy.layers import inputs, weighted_layers
from nas.proxy.registry import register_proxy

__all__ = ["grad_norm", "loss_gradients"]


def loss_gradients(model: Any, batch: ProxyBatch) -> None:
    """Cross-entropy of the batch, back-propagated once (training mode, as at the first step)."""
    import torch
    import torch.nn.functional as F

    x, y = inputs(model, batch)
    model.train()
    model.zero_grad(set_to_none=True)
    with torch.enable_grad():
        F.cross_entropy(model(x), y).backward()


@register_proxy("grad_norm", summary="sum of per-layer weight-gradient norms of the batch loss "
                "(Abdelfattah et al. 2021)", needs_labels=True)
def grad_norm(model: Any, batch: ProxyBatch) -> float:
    loss_gradients(model, batch)
    return float(sum(float(m.weight.grad.norm()) for m in weighted_layers(model) if m.weight.grad is not None))
