"""Shared fixtures: tiny genomes that build and run in milliseconds on one CPU core."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from nas.genome import Genome, parse_genome

# A one-stage ViT on 16x16 images: 4x4 patches -> a 4x4 grid + cls, dim 32, 2 heads of 16.
TINY_DOC: dict[str, Any] = {
    "image_size": 16,
    "num_classes": 4,
    "patch_size": 4,
    "layout": "A",
    "depths": 1,  # scalars apply to every stage, so a test may change only the layout
    "dims": 32,
    "heads": 2,
    "mlp_ratio": 2,
}


# A search space of one-stage networks of TINY_DOC's size, any of three mixers (studies in tests).
TINY_SPACE: dict[str, Any] = {
    "name": "tiny",
    "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean", "position": "absolute"},
    "num_stages": 1,
    "stage": {"mixer": {"choices": ["attention", "shift", "conv"]}, "depth": {"int": [1, 2]},
              "dim": {"choices": [16, 32]}, "heads": {"choices": [1, 2]}, "mlp_ratio": 2},
}


@pytest.fixture
def tiny_genome() -> Callable[..., Genome]:
    """Factory: ``tiny_genome(layout="S-A", dims=[16, 32])`` -> a validated genome.

    Keyword arguments replace fields of :data:`TINY_DOC`; ``None`` removes one, so a test can fall
    back to the parser's default.
    """

    def make(**changes: Any) -> Genome:
        doc = {**TINY_DOC, **changes}
        return parse_genome({k: v for k, v in doc.items() if v is not None})

    return make


@pytest.fixture(scope="session")
def postgres_url():
    """A real PostgreSQL for the session (see tests/servers.py); yields its SQLAlchemy URL."""
    from servers import postgres_server

    yield from postgres_server()


@pytest.fixture(scope="session")
def ray_cluster():
    """A real two-node Ray cluster on this machine for the session (see tests/servers.py)."""
    from servers import ray_cluster as start

    yield from start()


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray (2 CPUs) for a test module: ``run_study`` and ``run_ablation`` reuse an initialised Ray."""
    import os

    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    yield
    ray.shutdown()
