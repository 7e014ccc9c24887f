"""Parameters and FLOPs per image of a genome or a network, counted through fvcore.

One trace of a batch of one on CPU with the model in eval mode gives the per-operator and per-module
counts (fvcore's :class:`~fvcore.nn.FlopCountAnalysis` with the extra handles of
:mod:`nas.cost.handles`); parameters come from ``p.numel()`` without a trace. The counts are MACs
(one fused multiply-add = one flop), the convention of fvcore and of all four seed papers.
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.cost.handles import ELEMENTWISE_OPS, OP_HANDLES
from nas.errors import NasError
from nas.genome.schema import Genome

__all__ = ["UNIT", "COST_FORMAT", "CostReport", "count_cost", "count_params", "load_subject"]

UNIT = "MACs (1 multiply-add = 1 flop, fvcore convention)"
# Bumped whenever a formula in nas.cost.handles changes, so that cached counts of an older
# convention are recomputed instead of mixed with new ones.
COST_FORMAT = 1


@dataclass(frozen=True)
class CostReport:
    """What one architecture costs per image: parameters and FLOPs, overall and broken down.

    ``flops_by_stage`` keys are ``stem``, ``stages.0`` ... and ``head`` (final norm, pooling,
    pre-logits and classifier, plus anything at the top level); they sum to ``flops``. Likewise
    ``params_by_stage`` sums to ``params`` (the cls token and position table belong to ``stem``).
    ``unsupported_ops`` lists the ops fvcore saw but counted as zero (op -> number of calls).
    """

    key: str
    params: int
    trainable_params: int
    params_by_stage: dict[str, int]
    flops: int
    flops_by_stage: dict[str, int]
    flops_by_operator: dict[str, int]
    unsupported_ops: dict[str, int]
    image_size: int
    unit: str = UNIT
    format: int = COST_FORMAT

    @property
    def gflops(self) -> float:
        """FLOPs in G (10⁹ MACs), the unit of the papers' tables."""
        return self.flops / 1e9

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def uncounted_arithmetic(self) -> dict[str, int]:
        """Unsupported ops outside the elementwise allow-list: work that this count would miss."""
        return {op: n for op, n in self.unsupported_ops.items() if op not in ELEMENTWISE_OPS}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "CostReport":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in doc.items() if k in names})


def load_subject(
    subject: Genome | nn.Module | str | Path | Mapping[str, Any], image_size: int | None = None
) -> tuple[Genome | None, nn.Module | None]:
    """Resolve what the caller passed: a genome (from a preset name, file or mapping) or a module."""
    if isinstance(subject, nn.Module):
        return getattr(subject, "genome", None), subject
    from nas.genome import load_genome

    return load_genome(subject, image_size=image_size), None


def count_params(model: nn.Module) -> tuple[int, int, dict[str, int]]:
    """``(total, trainable, by_stage)`` from ``p.numel()``: no trace, no forward pass."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    groups = _groups(model)
    by_stage: dict[str, int] = {}
    for label, names in groups:
        by_stage[label] = sum(
            p.numel() for n, p in model.named_parameters() if any(n == m or n.startswith(m + ".") for m in names)
        )
    rest = _rest_label(model)
    by_stage[rest] = by_stage.get(rest, 0) + total - sum(by_stage.values())
    return total, trainable, by_stage


def _groups(model: nn.Module) -> list[tuple[str, list[str]]]:
    """Reporting groups as (label, module/parameter names). VisionNet: stem, each stage; else children."""
    if hasattr(model, "stages") and hasattr(model, "stem"):
        stem = ["stem"] + [n for n in ("cls_token", "pos_embed") if getattr(model, n, None) is not None]
        return [("stem", stem)] + [(f"stages.{i}", [f"stages.{i}"]) for i in range(len(model.stages))]
    return [(name, [name]) for name, _ in model.named_children()]


def _rest_label(model: nn.Module) -> str:
    return "head" if hasattr(model, "stages") and hasattr(model, "stem") else "(top level)"


def _input_for(genome: Genome | None, model: nn.Module, image_size: int | None, in_channels: int | None) -> torch.Tensor:
    size = image_size or (genome.image_size if genome is not None else None)
    channels = in_channels or (genome.in_channels if genome is not None else 3)
    if size is None:
        raise NasError("counting a plain module needs image_size (its input resolution)")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    return torch.zeros(1, channels, size, size, device=device)


def count_cost(
    subject: Genome | nn.Module | str | Path | Mapping[str, Any],
    *,
    image_size: int | None = None,
    in_channels: int | None = None,
    threads: int | None = 1,
) -> CostReport:
    """Count the parameters and the FLOPs per image of ``subject``.

    ``subject`` is a genome, anything :func:`nas.genome.load_genome` reads (``image_size`` then
    overrides the genome's resolution), or a built network (then ``image_size`` defaults to its
    genome's). The trace uses a batch of one, so the count is per image; it is exact for every op
    with a handle and reports the rest in ``unsupported_ops``.

    The build and the trace run on ``threads`` torch threads (default 1: a batch of one gains little
    from more, and search workers count side by side, where extra threads only contend) and inside
    ``torch.random.fork_rng``, so counting leaves the caller's thread setting and RNG stream as they were.
    """
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with torch.random.fork_rng(devices=[]):
            return _count(subject, image_size, in_channels)
    finally:
        torch.set_num_threads(previous_threads)


def _flop_count_analysis() -> type:
    """fvcore's analysis class (its package scripts helper losses on import, which torch deprecates)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from fvcore.nn import FlopCountAnalysis
    return FlopCountAnalysis


def op_handles() -> dict[str, Any]:
    """fvcore handles: nas's (:data:`nas.cost.handles.OP_HANDLES`) and those every declared mixer adds for
    the ops it uses (:attr:`nas.mixers.MixerSpec.flop_handles`)."""
    from nas.mixers import mixer_specs

    out: dict[str, Any] = dict(OP_HANDLES)
    for spec in mixer_specs():
        out.update(spec.flop_handles)
    return out


def _count(subject: Any, image_size: int | None, in_channels: int | None) -> CostReport:
    from nas.models import build_model

    FlopCountAnalysis = _flop_count_analysis()  # noqa: N806

    genome, model = load_subject(subject, image_size=image_size)
    if model is None:
        assert genome is not None
        model = build_model(genome)
    total, trainable, params_by_stage = count_params(model)
    x = _input_for(genome, model, image_size, in_channels)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape arithmetic are expected
            analysis = (
                FlopCountAnalysis(model, (x,))
                .set_op_handle(**op_handles())
                .unsupported_ops_warnings(False)
                .uncalled_modules_warnings(False)
                .tracer_warnings("none")
            )
            flops = int(analysis.total())
            by_module = analysis.by_module()
            by_operator = {op: int(n) for op, n in sorted(analysis.by_operator().items(), key=lambda kv: -kv[1]) if n}
            unsupported = dict(sorted(analysis.unsupported_ops().items()))
    except RuntimeError as exc:
        raise NasError(f"could not trace the network to count its FLOPs: {exc}") from exc
    finally:
        model.train(was_training)

    flops_by_stage: dict[str, int] = {}
    for label, names in _groups(model):
        flops_by_stage[label] = sum(int(by_module.get(n, 0)) for n in names)
    rest = _rest_label(model)
    flops_by_stage[rest] = flops_by_stage.get(rest, 0) + flops - sum(flops_by_stage.values())

    # The key names the genome only when the count is of that genome at its own resolution.
    key = genome.key if genome is not None and genome.image_size == x.shape[-1] else ""
    return CostReport(
        key=key,
        params=total,
        trainable_params=trainable,
        params_by_stage=params_by_stage,
        flops=flops,
        flops_by_stage=flops_by_stage,
        flops_by_operator=by_operator,
        unsupported_ops={op: int(n) for op, n in unsupported.items()},
        image_size=int(x.shape[-1]),
    )
