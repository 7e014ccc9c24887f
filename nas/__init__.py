"""nas: neural-architecture search and ablation runner for vision transformers and their cousins.

The public API is small and imports lazily, so ``import nas`` stays cheap and needs neither Optuna
nor Ray: ``load_genome`` and ``build_model`` for architectures, ``load_study`` for results.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["load_genome", "build_model", "load_study", "NasError"]

from nas.errors import NasError
from nas.genome import load_genome


def build_model(genome: Any) -> Any:
    """Build the ``nn.Module`` of a genome, preset name or genome file."""
    from nas.genome import Genome
    from nas.models import build_model as _build

    return _build(genome if isinstance(genome, Genome) else load_genome(genome))


def load_study(study_dir: Any) -> Any:
    """The trials of a study directory as a pandas DataFrame (one row per trial)."""
    import os

    from nas.analysis.study import load_study as _load

    if not isinstance(study_dir, (str, os.PathLike)):
        from nas.fields import show

        raise NasError(f"load_study(study_dir): study_dir must be the path of a study directory (str or Path), "
                       f"got {type(study_dir).__name__} {show(study_dir)}")
    return _load(study_dir)
