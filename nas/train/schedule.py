"""Learning-rate schedule: linear warm-up, then cosine decay to a floor, evaluated per step."""
from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(
    step: int,
    *,
    warmup_steps: int,
    total_steps: int | None,
    min_ratio: float,
    time_fraction: float | None = None,
) -> float:
    """Multiplier of the peak learning rate at optimizer step ``step`` (0-based).

    Warm-up rises linearly to 1 over ``warmup_steps`` (the first step already takes a small step
    rather than none). The cosine then falls from 1 to ``min_ratio``; its progress is the fraction of
    post-warm-up steps done or, under a wall-clock budget, ``time_fraction`` (the fraction of the
    post-warm-up time spent), whichever is further, so the decay ends when the first budget ends.
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = 0.0
    if total_steps is not None:
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    if time_fraction is not None:
        progress = max(progress, time_fraction)
    progress = min(max(progress, 0.0), 1.0)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))
