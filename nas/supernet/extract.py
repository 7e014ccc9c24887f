"""Subnets out of the supernet: plain networks with inherited weights, and their batch-norm statistics.

:func:`extract` returns exactly what ``build_model(genome)`` returns, with the supernet's sliced weights
copied in, so cost counting, export, fine-tuning and training treat it like any other network.

Batch-norm statistics are the one thing a subnet cannot inherit: the running means and variances in the
supernet were accumulated over every path that passed through (other widths, other mixers upstream),
so they describe no single subnet. :func:`recalibrate_bn` re-estimates them for the subnet on a few
training batches before it is scored (SPOS, Guo et al. 2020, Sec. 3.3; BigNAS, Yu et al. 2020, Sec. 3.3).
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from nas.genome import Genome

__all__ = ["extract", "recalibrate_bn", "has_batchnorm"]


def extract(supernet: nn.Module, genome: Genome) -> nn.Module:
    """``build_model(genome)`` with the supernet's path weights (and buffers) copied in; eval mode."""
    from nas.models import build_model

    with torch.random.fork_rng(devices=[]):  # the plain build's random init is overwritten: leave the RNG alone
        model = build_model(genome)
    state = {k: v.detach().clone() for k, v in supernet.path_state(genome).items()}
    model.load_state_dict(state, strict=True)
    device = next(supernet.parameters()).device
    return model.to(device).eval()


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, _BatchNorm) for m in model.modules())


class _AllNormsSeen(Exception):
    """Raised by a forward hook once every batch norm has seen the batch: the rest of the pass is not needed."""


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable[Tensor]) -> nn.Module:
    """Reset every batch norm's running statistics and re-estimate them as the plain average over
    ``batches`` (momentum ``None``), only the batch norms in training mode; returns the model in eval mode.

    Each calibration pass stops as soon as every batch norm has seen the batch: in a C-C-T-T network
    the attention stages after the last MBConv would only compute logits nobody reads (this halves the
    cost of scoring such a subnet). The statistics are those of the full pass."""
    norms = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not norms:
        return model.eval()
    saved = [m.momentum for m in norms]
    seen: set[int] = set()

    def hook(module: nn.Module, args: object, output: object) -> None:
        seen.add(id(module))
        if len(seen) == len(norms):
            raise _AllNormsSeen

    handles = [m.register_forward_hook(hook) for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the calibration batches
    model.eval()  # dropout and drop-path stay off: the statistics are those of the network that is scored
    for m in norms:
        m.train()
    try:
        for xb in batches:
            seen.clear()
            try:
                model(xb)
            except _AllNormsSeen:
                pass
    finally:
        for h in handles:
            h.remove()
        for m, momentum in zip(norms, saved):
            m.momentum = momentum
        model.eval()
    return model
