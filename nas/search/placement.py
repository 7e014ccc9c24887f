"""Where a trial trains: the device Ray assigned to it, and what to record when that device is unusable.

Ray Tune gives a trial with ``resources.gpu: 0.25`` a quarter of one GPU: it sets the worker's
``CUDA_VISIBLE_DEVICES`` to that GPU's id, so ``cuda`` (``cuda:0``) inside the trial is the assigned card
and four trials share it. A Ray cluster may declare GPUs that this torch cannot use (a CPU build, a
driver mismatch, a cluster started with ``--num-gpus`` for testing): the trial then trains on the CPU and
says so in ``device_note`` rather than failing on its first CUDA call or waiting for a device that never
comes.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Placement", "trial_placement", "assigned_gpu_ids"]


@dataclass(frozen=True)
class Placement:
    """The device a trial trains on and the provenance stored with it."""

    device: str  # what TrainConfig.device becomes: "cpu", "cuda" or the config's explicit choice
    gpu_ids: list[str] = field(default_factory=list)  # Ray's accelerator ids for this worker
    cuda_visible_devices: str | None = None  # as Ray set it in this worker's environment
    note: str | None = None  # why the device differs from what the resources promised

    def record(self) -> dict[str, Any]:
        """Keys for the trial's report (``device_note`` only when there is something to say)."""
        out: dict[str, Any] = {"gpu_ids": list(self.gpu_ids), "cuda_visible_devices": self.cuda_visible_devices,
                               "pid": os.getpid(), "started_at": time.time()}
        if self.note:
            out["device_note"] = self.note
        return out


def assigned_gpu_ids() -> list[str]:
    """The GPU ids Ray assigned to the calling worker; empty outside Ray or without GPUs."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return []
    if not ray.is_initialized():
        return []
    try:
        ids = ray.get_runtime_context().get_accelerator_ids().get("GPU", [])
    except Exception:  # the driver, or a Ray without accelerator ids: no assignment to report
        return []
    return [str(i) for i in ids]


def trial_placement(requested: str = "auto") -> Placement:
    """Resolve ``budget.device`` for a trial running in this process.

    ``auto`` with a Ray-assigned GPU trains on it when torch sees CUDA, else on the CPU with a note;
    ``cpu`` stays on the CPU (noted when a GPU was reserved for nothing); an explicit ``cuda[:N]`` is
    passed through, so a missing CUDA device is the trainer's one-line error (the user asked for it).
    """
    ids = assigned_gpu_ids()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    requested = requested or "auto"
    cuda = torch.cuda.is_available()
    which = ", ".join(ids)
    plural = "s" if len(ids) > 1 else ""
    if requested == "auto":
        if ids and not cuda:
            note = (f"Ray assigned GPU{plural} {which} but torch {torch.__version__} sees no CUDA device; "
                    f"ran on CPU")
            return Placement("cpu", ids, visible, note)
        return Placement("cuda" if cuda else "cpu", ids, visible)
    if requested == "cpu" and ids:
        return Placement("cpu", ids, visible, f"Ray assigned GPU{plural} {which} but budget.device is cpu; ran on CPU")
    return Placement(requested, ids, visible)
