"""Where code runs and what it ran with: device choice and the provenance stored with every result."""
from __future__ import annotations

import platform
from functools import lru_cache
from importlib import metadata
from typing import Any

import torch

from nas.errors import NasError

__all__ = ["pick_device", "library_versions", "device_name"]

_LIBRARIES = ("torch", "einops", "fvcore", "optuna", "ray", "pandas")


def pick_device(name: str | None = None) -> torch.device:
    """``None``/``"auto"``: CUDA when available, else CPU. Asking for CUDA without one is an error."""
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not str(name).startswith("cuda:"):
        raise NasError(f"device must be auto, cpu or cuda[:N], got {name!r}")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise NasError(f"device {name!r} was asked for but torch {torch.__version__} sees no CUDA device")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """A human-readable device label stored with results (GPU model or CPU architecture)."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """Versions of the libraries a result depends on, for provenance."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for lib in _LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    from nas import __version__

    out["nas"] = __version__  # the package's own (its distribution is named vitnas; a checkout has none)
    return out
