"""Supernet training: one uniformly drawn path per step (SPOS), optionally the sandwich rule (BigNAS).

The recipe is ``nas.train``'s: the same dataset loading and device-resident loader (random crop and
flip), AdamW with the same parameter groups, warm-up + cosine schedule, label smoothing, gradient
clipping, mixup/CutMix/random erasing and device choice; only the epochs are the supernet's.

A checkpoint is written atomically after every epoch (a temporary file renamed over the old one) with
everything that decides the rest of the run: weights, optimizer moments, the path sampler's state, the
loader's generator (batch order and augmentation), the mixing generators and torch's RNG. A run killed
at any moment (``kill -9``) and started again resumes from the last finished epoch and ends with
bitwise the same weights as a run that was never interrupted (tested).
"""
from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nas.errors import TrainingDiverged
from nas.runtime import pick_device
from nas.supernet.model import Supernet
from nas.supernet.sampling import draw, sandwich
from nas.train.config import TrainConfig
from nas.train.mixing import BatchMixer, random_erase
from nas.train.schedule import warmup_cosine
from nas.train.trainer import _loaders, param_groups

__all__ = ["SupernetRun", "train_supernet", "load_checkpoint", "CHECKPOINT_FORMAT"]

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class SupernetRun:
    """What a supernet training did (the weights are in the checkpoint and the module)."""

    epochs: int
    steps: int
    paths: int  # forward/backward passes (paths) over all steps
    elapsed_s: float  # wall time of this call (a resumed run: its own part only)
    history: list[dict[str, Any]] = field(default_factory=list)


def _save(path: Path, doc: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(doc, tmp)
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)  # atomic: a kill leaves the previous epoch's checkpoint or this one, never half


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def train_supernet(
    supernet: Supernet,
    space: Any,
    data: Any,
    config: TrainConfig,
    *,
    epochs: int,
    seed: int = 0,
    sandwich_rule: bool = False,
    paths_per_step: int = 1,
    checkpoint: str | Path | None = None,
    fixed: Mapping[str, Any] | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> SupernetRun:
    """Train ``supernet`` for ``epochs`` epochs on ``data`` (resuming from ``checkpoint`` when it exists).

    Each step draws ``paths_per_step`` uniform paths of ``space`` (with ``sandwich_rule``: the largest
    and the smallest path too) and averages their losses into one optimizer step.
    """
    t_start = time.perf_counter()
    fixed = dict(fixed or {})
    device = pick_device(config.device)
    supernet.to(device)
    size = int(supernet.skeleton.top["image_size"])
    train_loader, _ = _loaders(data, config, size, device, seed, False)
    optimizer = torch.optim.AdamW(param_groups(supernet, config.weight_decay), lr=config.lr, betas=(0.9, 0.999))
    params = list(supernet.parameters())
    rng = random.Random(seed)
    mixer = BatchMixer(data.num_classes, config.mixup_alpha, config.cutmix_alpha)
    mix_generator = torch.Generator().manual_seed(seed + 1)
    erase_generator = torch.Generator(device=device).manual_seed(seed + 2)
    torch.manual_seed(seed)
    epoch, step, paths, history = 0, 0, 0, []
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and path.is_file():
        doc = load_checkpoint(path)
        supernet.load_state_dict(doc["supernet"])
        optimizer.load_state_dict(doc["optimizer"])
        rng.setstate(doc["path_rng"])
        train_loader.generator.set_state(doc["loader_rng"])
        mix_generator.set_state(doc["mix_rng"])
        erase_generator.set_state(doc["erase_rng"])
        torch.set_rng_state(doc["torch_rng"])
        epoch, step, paths, history = doc["epoch"], doc["step"], doc["paths"], list(doc["history"])
    batches = len(train_loader)
    warmup_steps = int(round(config.warmup_epochs * batches))
    total_steps = epochs * batches
    supernet.train()
    while epoch < epochs:
        t_epoch = time.perf_counter()
        loss_sum, seen = 0.0, 0
        for i, (xb, yb) in enumerate(train_loader):
            lr = config.lr * warmup_cosine(step, warmup_steps=warmup_steps, total_steps=total_steps,
                                           min_ratio=config.min_lr_ratio)
            for group in optimizer.param_groups:
                group["lr"] = lr
            target: torch.Tensor = yb
            if mixer.active:
                xb, target = mixer(xb, yb, mix_generator)
            xb = random_erase(xb, config.random_erasing, erase_generator)
            genomes = (sandwich(space, rng, fixed, paths_per_step) if sandwich_rule
                       else [draw(space, rng, fixed) for _ in range(paths_per_step)])
            optimizer.zero_grad(set_to_none=True)
            total = 0.0
            for genome in genomes:
                logits = supernet(xb, genome)  # [B, K]
                loss = F.cross_entropy(logits, target, label_smoothing=config.label_smoothing) / len(genomes)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(f"supernet training diverged at epoch {epoch + 1}, step {step + 1} on "
                                           f"path {genome.key} ({genome.layout}): loss {loss.item()} (lr={lr:.3g}); "
                                           f"lower budget.lr or lengthen budget.warmup_epochs")
                loss.backward()
                total += float(loss.detach())
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_([p for p in params if p.grad is not None],
                                               config.grad_clip)
            optimizer.step()
            step += 1
            paths += len(genomes)
            loss_sum += total * len(yb)
            seen += len(yb)
            if on_step is not None:
                on_step({"epoch": epoch + 1, "batch": i + 1, "batches": batches, "loss": total, "step": step})
        epoch += 1
        entry = {"epoch": epoch, "train_loss": loss_sum / max(seen, 1), "steps": step, "paths": paths,
                 "epoch_s": time.perf_counter() - t_epoch}
        history.append(entry)
        if path is not None:
            _save(path, {
                "format": CHECKPOINT_FORMAT, "supernet": supernet.state_dict(), "optimizer": optimizer.state_dict(),
                "path_rng": rng.getstate(), "loader_rng": train_loader.generator.get_state(),
                "mix_rng": mix_generator.get_state(), "erase_rng": erase_generator.get_state(),
                "torch_rng": torch.get_rng_state(), "epoch": epoch, "step": step, "paths": paths,
                "history": history, "epochs": epochs, "seed": seed,
            })
        if report is not None:
            report(dict(entry))
    return SupernetRun(epochs=epoch, steps=step, paths=paths, elapsed_s=time.perf_counter() - t_start,
                       history=history)
