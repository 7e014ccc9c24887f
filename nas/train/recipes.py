"""Per-family starting recipes: what a short training of each kind of network needs to get going.

Plain vision transformers have no locality prior and learn slowly from a few thousand images; they
want more, smaller steps and a short warm-up. Convolutional and shift networks tolerate a higher
learning rate from the first epoch. These values were tuned on mnist5k (4,000 training images, 5
epochs, 32x32 presets) and are a starting point for other data, not a rule.
"""
from __future__ import annotations

from typing import Any

from nas.genome import ATTENTION_MIXERS, Genome
from nas.train.config import TrainConfig

__all__ = ["family", "recommended_config", "RECIPES"]

# Field overrides of TrainConfig per family (everything else keeps TrainConfig's defaults).
RECIPES: dict[str, dict[str, Any]] = {
    "transformer": {"batch_size": 64, "lr": 1e-3, "warmup_epochs": 0.5, "weight_decay": 0.05},
    "hybrid": {"batch_size": 64, "lr": 2e-3, "warmup_epochs": 0.5, "weight_decay": 0.05},
    "shift": {"batch_size": 64, "lr": 2e-3, "warmup_epochs": 0.5, "weight_decay": 0.05},
    "other": {},
}


def family(genome: Genome) -> str:
    """``transformer`` (only attention-type mixers), ``hybrid`` (attention after convs, CoAtNet),
    ``shift`` (only shift mixers) or ``other``."""
    mixers = {s.mixer for s in genome.stages}
    if mixers <= ATTENTION_MIXERS and genome.stem == "patch":
        return "transformer"
    if mixers & ATTENTION_MIXERS:
        return "hybrid"
    if mixers == {"shift"}:
        return "shift"
    return "other"


def recommended_config(genome: Genome, **overrides: Any) -> TrainConfig:
    """The family's recipe as a :class:`TrainConfig`, with ``overrides`` (``None`` ignored) on top."""
    return TrainConfig.from_dict(RECIPES[family(genome)]).replace(**overrides)
