"""Search: declarative search spaces and study configs.

Importing this package stays cheap (no Ray, no training code): the names below are loaded on first use,
so the CLI can list or validate spaces and configs without starting anything heavy.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from nas.search.config import StudyConfig, apply_overrides, load_study_config
    from nas.search.space import SearchSpace, load_space

__all__ = ["SearchSpace", "StudyConfig", "apply_overrides", "load_space", "load_study_config"]

_HOMES = {
    "SearchSpace": "nas.search.space",
    "load_space": "nas.search.space",
    "StudyConfig": "nas.search.config",
    "load_study_config": "nas.search.config",
    "apply_overrides": "nas.search.config",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'nas.search' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
