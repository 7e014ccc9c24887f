"""Zero-cost proxies: scores of an untrained network that predict how well it will train.

One file per proxy, one registry (:mod:`nas.proxy.registry`), one contract: ``fn(model, batch) ->
float``, higher = predicted better. :func:`score` builds the network from a genome (or copies a module)
under a fixed seed without touching the caller's random state; :func:`proxy_batch` draws the fixed,
normalised batch. Importing this package does not import torch (the proxies do, when they run).

    batch = proxy_batch(load_dataset("mnist5k"), 64, seed=0, image_size=32)
    score("naswot", "vit_cifar", batch, seed=0)
"""
from nas.proxy import naswot, synflow, grad_norm, snip  # noqa: F401,I001  (registers the proxies, in this order)
from nas.proxy.batch import ProxyBatch, proxy_batch
from nas.proxy.registry import PROXIES, ProxySpec, get_proxy, register_proxy
from nas.proxy.scoring import network_for, score, score_all

DEFAULT_BATCH = 32  # images per proxy batch: nas proxy, proxy objectives and pre-screening

__all__ = ["DEFAULT_BATCH", "PROXIES", "ProxyBatch", "ProxySpec", "get_proxy", "network_for", "proxy_batch", "register_proxy",
           "score", "score_all"]
