"""The proxy registry: proxy names -> scoring functions.

Every proxy follows one contract: ``fn(model, batch) -> float``, higher = predicted better, computed on
a freshly initialised network that it may modify (the caller, :func:`nas.proxy.score`, hands it a
private copy built under a fixed seed). Proxy modules import torch inside their functions so that
``nas.proxy`` (and the study-config validator that reads the proxy names) stays importable without it.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.errors import ConfigError, closest

__all__ = ["ProxySpec", "PROXIES", "register_proxy", "get_proxy"]

ProxyFn = Callable[[Any, Any], float]  # (nn.Module, ProxyBatch) -> score


@dataclass(frozen=True)
class ProxySpec:
    """A registered proxy: its function and a one-line description with the paper it follows."""

    name: str
    fn: ProxyFn
    summary: str
    needs_labels: bool  # uses the batch's labels (a loss); naswot and synflow do not


PROXIES: dict[str, ProxySpec] = {}


def register_proxy(name: str, *, summary: str, needs_labels: bool) -> Callable[[ProxyFn], ProxyFn]:
    """Function decorator adding a proxy under ``name``."""

    def wrap(fn: ProxyFn) -> ProxyFn:
        PROXIES[name] = ProxySpec(name, fn, summary, needs_labels)
        return fn

    return wrap


def get_proxy(name: str) -> ProxySpec:
    try:
        return PROXIES[name]
    except KeyError:
        raise ConfigError(f"unknown proxy {name!r}{closest(str(name), PROXIES)}; "
                          f"known: {', '.join(PROXIES)}") from None
