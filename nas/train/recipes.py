"""Per-family starting recipes: what a short training of each kind of network needs to get going.

Tuned on mnist5k (4,000 training images, 5 epochs, the 32x32 presets, CPU). What mattered there:

* Initialisation, before any recipe field, for the isotropic transformers: with the position table at
  ViT's usual 0.02 they stalled for the first epochs (vit_cifar 0.796, deepvit_cifar 0.829 after 5);
  the builder starts it at N(0, 1) (:mod:`nas.models.builder`), and the same recipe then reaches
  0.934 and 0.960. The figures below for vit_cifar were measured with the 0.02 table.
* Steps, not images: in 5 epochs every family is still under-fitting, so small batches (more, noisier
  steps over the same images) beat large ones. vit_cifar reached 0.57 val accuracy at batch 32 with
  crop augmentation and 0.80 at batch 16 without; batch 8 was no better than 16.
* No augmentation for short budgets: random crops slowed every family down more than they helped
  generalisation within 5 epochs (coatnet_cifar with 32-64 conv stages: 0.96 without, 0.958 / 0.942
  with 1 / 2 px crops).
  Beyond ``SHORT_BUDGET_EPOCHS`` the loader's crop (and flip, where the data allows it) is on.
* Learning rate: 1e-3 for attention networks (2e-3 fell to 0.65 for vit_cifar, 5e-4 to 0.72); the
  shift network takes 2e-3 at batch 32. For coatnet_cifar (with 32-64 conv stages), 5e-4, 2e-3 at
  batch 32, a longer warm-up, no label smoothing and weight decay 0.1 were all within a point of the
  recipe (0.949-0.962); wider conv stages were what it needed (:mod:`nas.genome.presets`).

They are a starting point for other data, not a rule; every field can be overridden.
"""
from __future__ import annotations

from typing import Any

from nas.genome import Genome
from nas.mixers import mixer_spec
from nas.train.config import TrainConfig

__all__ = ["family", "recommended_config", "RECIPES", "SHORT_BUDGET_EPOCHS"]

# Field overrides of TrainConfig per family (everything else keeps TrainConfig's defaults).
RECIPES: dict[str, dict[str, Any]] = {
    "transformer": {"batch_size": 16, "lr": 1e-3, "warmup_epochs": 0.3},
    "hybrid": {"batch_size": 16, "lr": 1e-3, "warmup_epochs": 0.3},
    "shift": {"batch_size": 32, "lr": 2e-3, "warmup_epochs": 0.3},
    "other": {},
}

# Up to this many epochs a network is still under-fitting and augmentation only slows it down.
SHORT_BUDGET_EPOCHS = 10


def family(genome: Genome) -> str:
    """``transformer`` (only attention-type mixers on patches), ``hybrid`` (attention with other mixers,
    as CoAtNet), else the family every stage's mixer declares (``shift``: ShiftViT's recipe, which
    PoolFormer's pooling shares) or ``other``."""
    specs = [mixer_spec(s.mixer) for s in genome.stages]
    if all(s.attention for s in specs) and genome.stem == "patch":
        return "transformer"
    if any(s.attention for s in specs):
        return "hybrid"
    families = {s.family for s in specs}
    if len(families) == 1 and next(iter(families)) in RECIPES:
        return next(iter(families))
    return "other"


def recommended_config(genome: Genome, **overrides: Any) -> TrainConfig:
    """The family's recipe as a :class:`TrainConfig`, with ``overrides`` (``None`` ignored) on top.

    Augmentation is switched off when the epoch budget is short, unless ``augment`` is given.
    """
    config = TrainConfig.from_dict(RECIPES[family(genome)]).replace(**overrides)
    if overrides.get("augment") is None:
        short = config.epochs is not None and config.epochs <= SHORT_BUDGET_EPOCHS
        config = config.replace(augment=not short)
    return config
