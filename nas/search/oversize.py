"""A trial whose genome is too large for the device: recorded, never built.

Such a trial is PRUNED with ``status: too_large`` and the refusal as its ``error`` (the study's
contract for trials that were not trained). Its cost comes from closed-form estimates
(:func:`nas.models.footprint.estimate_footprint` for parameters, :func:`~nas.models.footprint.estimate_macs`
for FLOPs) because building it is exactly what must not happen; so that the sampler still learns to
avoid the region, the trial carries ``sampler_values`` (the estimated costs, and the worst value of
every training objective: 0 for an accuracy, :data:`WORST_LOSS` for a loss, :data:`WORST_LATENCY_MS`
for a latency never measured) and ``sampler_violation`` (the relative excess over the memory limit,
at least :data:`MIN_VIOLATION` so it ranks below every trial that fits).
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from nas.errors import GenomeError
from nas.genome.schema import Genome

__all__ = ["too_large", "oversize_report", "WORST_LOSS", "WORST_LATENCY_MS", "MIN_VIOLATION"]

WORST_LOSS = 1e6  # a loss no trained trial reaches (the feedback layer may replace it by the study's worst)
WORST_LATENCY_MS = 1e9
MIN_VIOLATION = 1.0


def too_large(genome: Genome, *, batch_size: int, training: bool, device: str) -> str | None:
    """The one-line refusal of :func:`nas.models.footprint.check_fits`, or ``None`` when the genome fits."""
    from nas.models.footprint import check_fits

    try:
        check_fits(genome, batch_size=batch_size, training=training, device=device)
    except GenomeError as exc:
        return str(exc)
    return None


def oversize_report(genome: Genome, objectives: Sequence[str], error: str, *, batch_size: int, training: bool,
                    device: str) -> dict[str, Any]:
    """The report fields of a too-large trial: status, error, estimated cost, sampler feedback."""
    from nas.models.footprint import estimate_footprint, estimate_macs, excess

    cost: dict[str, Any] = {"params": int(estimate_footprint(genome).params), "flops": estimate_macs(genome),
                            "flops_unit": "MACs"}
    values = []
    for name in objectives:
        if name in ("params", "flops"):
            values.append(float(cost[name]))
        elif name == "latency_ms":
            values.append(WORST_LATENCY_MS)
        elif name.endswith("_acc"):
            values.append(0.0)
        else:
            values.append(WORST_LOSS)
    violation = max(MIN_VIOLATION, excess(genome, batch_size=batch_size, training=training, device=device))
    return {**cost, "status": "too_large", "error": error, "estimated_cost": True,
            "sampler_values": values, "sampler_violation": float(violation)}
