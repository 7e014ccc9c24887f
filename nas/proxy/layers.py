"""What the proxies share: the weighted layers they sum over and the batch on the network's device."""
from __future__ import annotations

from typing import Any

from nas.proxy.batch import ProxyBatch

__all__ = ["weighted_layers", "inputs"]


def weighted_layers(model: Any) -> list[Any]:
    """The Linear and Conv2d layers: the "prunable" weights over which Abdelfattah et al. (2021) sum
    per-weight saliencies (norm affine parameters, biases, position tables and tokens are left out)."""
    from torch import nn

    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.weight.requires_grad]


def inputs(model: Any, batch: ProxyBatch) -> tuple[Any, Any]:
    """``(x, y)`` on the device of the network's parameters."""
    param = next(model.parameters(), None)
    device = param.device if param is not None else batch.x.device
    return batch.x.to(device), batch.y.to(device)
