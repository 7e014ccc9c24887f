"""Paths through the supernet: genomes drawn uniformly from a space, and the sandwich rule's extremes.

The draws go through the space's own define-by-run ``suggest`` (the code every study samples with), so a
path is always a valid genome of the space, with the space's conditional parameters (heads only for
attention stages, ...). Each value is drawn uniformly from its parameter's range: with independent
uniform draws per parameter every genome of a finite space has a chance, and none is favoured by the
order in which a sampler happens to explore (SPOS, Guo et al. 2020, Sec. 3.2).
"""
from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from nas.genome import Genome, parse_genome
from nas.search.space import StandInTrial

__all__ = ["UniformTrial", "ExtremeTrial", "draw", "sandwich"]


def _numeric(choices: list[Any]) -> bool:
    return all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in choices)


class UniformTrial(StandInTrial):
    """Stands in for an Optuna trial: every value uniform over its parameter's choices or range."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._keep(name, self.rng.choice(list(choices)))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._keep(name, self.rng.randrange(low, high + 1, step))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        if step:
            return self._keep(name, low + step * self.rng.randint(0, int(round((high - low) / step))))
        return self._keep(name, self.rng.uniform(low, high))


class ExtremeTrial(UniformTrial):
    """The largest (or smallest) path: every numeric value at its top (bottom); names (mixers) uniform."""

    def __init__(self, rng: random.Random, largest: bool) -> None:
        super().__init__(rng)
        self.largest = largest

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        if _numeric(list(choices)):
            return self._keep(name, max(choices) if self.largest else min(choices))
        return super().suggest_categorical(name, choices)

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._keep(name, high if self.largest else low)

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return self._keep(name, high if self.largest else low)


def draw(space: Any, rng: random.Random, fixed: Mapping[str, Any]) -> Genome:
    """One genome of ``space``, uniform per parameter; ``fixed`` (in_channels, num_classes) replaces fields."""
    return parse_genome(space.suggest(UniformTrial(rng)), **fixed)


def sandwich(space: Any, rng: random.Random, fixed: Mapping[str, Any], randoms: int = 1) -> list[Genome]:
    """BigNAS's sandwich rule (Yu et al. 2020, Sec. 3.1): the largest and the smallest path and ``randoms``
    uniform ones, whose gradients are summed into one step."""
    largest = parse_genome(space.suggest(ExtremeTrial(rng, True)), **fixed)
    smallest = parse_genome(space.suggest(ExtremeTrial(rng, False)), **fixed)
    return [largest, smallest] + [draw(space, rng, fixed) for _ in range(randoms)]
