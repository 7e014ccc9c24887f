"""``score(proxy, genome or model, batch) -> float``: a proxy at initialisation, seeded, side-effect free.

A genome is built under ``torch.manual_seed(seed)`` (the same initial weights as a training with that
seed); a module is deep-copied. Either way the proxy works on a private network, inside
``torch.random.fork_rng`` so that the caller's random state is the same before and after.
"""
from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from nas.errors import DataError
from nas.proxy.batch import ProxyBatch
from nas.proxy.registry import get_proxy

__all__ = ["score", "score_all", "network_for"]


def network_for(target: Any, batch: ProxyBatch, seed: int) -> Any:
    """A private network: ``target`` (genome, preset name, genome file or mapping) built under ``seed``
    for the batch's channels and classes, or a deep copy of ``target`` when it is an ``nn.Module``.
    Call it inside ``fork_rng``: building draws random numbers."""
    import copy

    import torch
    from torch import nn

    if isinstance(target, nn.Module):
        return copy.deepcopy(target)
    from nas.genome import Genome, load_genome
    from nas.models import build_model

    genome = target if isinstance(target, Genome) else load_genome(target)
    if genome.image_size != batch.image_size:
        raise DataError(f"the proxy batch holds {batch.image_size}x{batch.image_size} images but the genome "
                        f"takes image_size {genome.image_size}; build the batch with image_size="
                        f"{genome.image_size}")
    genome = genome.replace(in_channels=batch.channels, num_classes=batch.num_classes)
    torch.manual_seed(int(seed))
    return build_model(genome)


def score(name: str, target: Any, batch: ProxyBatch, *, seed: int = 0) -> float:
    """The proxy ``name`` of ``target`` at initialisation on ``batch`` (higher = predicted better)."""
    return score_all([name], target, batch, seed=seed)[name]


def score_all(names: Iterable[str], target: Any, batch: ProxyBatch, *, seed: int = 0) -> dict[str, float]:
    """Several proxies of one architecture; each gets its own copy of the same initial network."""
    import torch

    specs = [get_proxy(n) for n in names]
    out: dict[str, float] = {}
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda):  # the caller's CPU (and CUDA) generators come back as they were
        template = network_for(target, batch, seed)
        for spec in specs:
            torch.manual_seed(int(seed))  # DropPath and friends draw the same numbers for every proxy
            model = network_for(template, batch, seed) if len(specs) > 1 else template
            out[spec.name] = float(spec.fn(model, batch))
    return out

