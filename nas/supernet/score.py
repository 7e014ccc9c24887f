"""Scoring subnets with inherited weights: cost first (constraints), then extraction, BN recalibration
and validation accuracy. One :class:`SubnetScorer` per worker process holds the trained supernet.

A score is a trial result in the form :func:`nas.search.records.classify_result` reads, so a one-shot
trial is stored exactly as a trained one is (same attributes, same states), plus ``scored_by:
supernet``: ``status``, ``report``, the dashboard and ``export`` read it unchanged.
"""
from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from nas.genome import parse_genome
from nas.runtime import library_versions, pick_device
from nas.supernet.extract import extract, has_batchnorm, recalibrate_bn
from nas.supernet.model import Skeleton, Supernet

__all__ = ["SubnetScorer", "SCORED_BY", "load_supernet"]

SCORED_BY = "supernet"  # the ``scored_by`` user attribute of a trial scored with inherited weights


def load_supernet(doc: Mapping[str, Any], device: str | torch.device = "cpu") -> Supernet:
    """The supernet of a weights document ``{"skeleton": ..., "state": ...}`` (see :mod:`nas.supernet.study`)."""
    with torch.random.fork_rng(devices=[]):
        supernet = Supernet(Skeleton(**doc["skeleton"]))
    supernet.load_state_dict(doc["state"])
    return supernet.to(device).eval()


class SubnetScorer:
    """Scores genomes on the validation split with the supernet's weights (see the module docstring)."""

    def __init__(self, weights: Mapping[str, Any], *, data: str, seed: int, budget: Mapping[str, Any],
                 constraints: Mapping[str, float], study_dir: str, calibration_batches: int,
                 device: str = "auto") -> None:
        from nas.cost import CostCache
        from nas.search.objective import dataset_for
        from nas.train.config import TrainConfig
        from nas.train.trainer import _loaders

        self.device = pick_device(device)
        self.supernet = load_supernet(weights, self.device)
        self.weights_file = str(weights.get("file", ""))
        data_set = dataset_for(data, seed)
        config = TrainConfig.from_dict({**dict(budget), "augment": False})
        size = int(self.supernet.skeleton.top["image_size"])
        train_loader, self.val_loader = _loaders(data_set, config, size, self.device, seed, False)
        # The same training batches (no augmentation) recalibrate every subnet: scores differ by architecture only.
        self.calibration = [xb for _, (xb, _) in zip(range(calibration_batches), train_loader)]
        self.constraints = dict(constraints)
        self.seed = seed
        self.cost = CostCache(Path(study_dir) / "cost.jsonl")
        self.versions = library_versions()

    def score(self, genome_doc: Mapping[str, Any]) -> dict[str, Any]:
        """One trial result: infeasible (over a constraint, never scored) or complete with val_acc/val_loss."""
        from nas.search.feedback import constraint_violation
        from nas.train.trainer import evaluate

        start = time.perf_counter()
        genome = parse_genome(dict(genome_doc))
        cost = self.cost.get_or_compute(genome)
        out: dict[str, Any] = {"key": genome.key, "params": int(cost.params), "flops": int(cost.flops),
                               "flops_unit": cost.unit, "seed": self.seed, "device": str(self.device),
                               "versions": self.versions, "scored_by": SCORED_BY, "final": True}
        violations = {k: out[k] for k, limit in self.constraints.items() if out.get(k, 0) > float(limit)}
        if violations:
            return {**out, "status": "infeasible", "violations": violations,
                    "sampler_violation": constraint_violation(violations, self.constraints),
                    "duration_s": time.perf_counter() - start}
        model = self.subnet(genome)
        val_loss, val_acc = evaluate(model, self.val_loader)
        return {**out, "val_acc": val_acc, "val_loss": val_loss, "status": "complete", "epochs": 0,
                "recalibrated": has_batchnorm(model), "duration_s": time.perf_counter() - start}

    def subnet(self, genome: Any) -> torch.nn.Module:
        """``build_model(genome)`` with inherited weights and recalibrated batch norms, in eval mode."""
        from nas.train.trainer import convs_channels_last, has_real_convs

        model = extract(self.supernet, genome)
        if has_real_convs(model):  # as training does: channels-last convolutions (benchmarks/channels_last.py)
            convs_channels_last(model)
        if has_batchnorm(model):
            recalibrate_bn(model, self.calibration)
        return model

    def score_many(self, docs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        return [self.score(d) for d in docs]
