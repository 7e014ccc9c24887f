"""Short supervised trainings: one function from (network, data, recipe, seed) to metrics.

It knows nothing about searches: a search calls :func:`train` with a ``report`` callback and decides
itself what to do with each epoch's metrics (prune, log, stop).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from nas.data import DeviceLoader, ImageDataset, fit_images, load_dataset
from nas.errors import DataError, TrainingDiverged
from nas.genome import Genome, load_genome
from nas.runtime import device_name, pick_device
from nas.train.config import TrainConfig
from nas.train.augment import PaperAugment
from nas.train.mixing import BatchMixer, random_erase
from nas.train.schedule import warmup_cosine

__all__ = ["train", "evaluate", "has_real_convs", "convs_channels_last", "param_groups", "ema_path", "TrainResult",
           "NO_DECAY_NAMES"]

# Parameters that are position tables rather than weights: decaying them pulls positions together.
NO_DECAY_NAMES: tuple[str, ...] = ("pos_embed", "cls_token", "rel_bias")
# On CUDA a loss check forces a host sync; checking every few steps keeps the GPU queue full and
# still names the first bad step exactly (the losses are buffered on the device).
_CUDA_CHECK_EVERY = 8


@dataclass(frozen=True)
class TrainResult:
    """Final metrics of one training, plus the per-epoch history."""

    val_acc: float
    val_loss: float  # plain cross-entropy (no label smoothing), comparable across recipes
    train_acc: float  # on augmented batches, averaged over the last epoch
    train_loss: float  # label-smoothed loss, averaged over the last epoch
    epochs: int  # full epochs completed
    steps: int  # optimizer steps taken
    img_per_s: float  # training throughput (forward + backward + step), evaluation excluded
    elapsed_s: float  # wall time of the whole call: setup, training and evaluations
    device: str
    params: int
    seed: int
    stopped_by: str  # "epochs" or "seconds"
    amp: str = "off"  # the autocast actually used: "bf16" or "off" (``auto`` resolved on the device)
    compiled: bool = False  # whether the training step ran a torch.compile'd model
    channels_last: bool = False  # the memory layout actually used (``auto`` resolved for the model)
    ema_val_acc: float | None = None  # the weights' moving average (``ema_decay``), after the last epoch
    ema_val_loss: float | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    model: nn.Module | None = field(default=None, repr=False, compare=False)  # the trained network

    def to_dict(self) -> dict[str, Any]:
        """Everything but the model, as plain values (``asdict`` would deep-copy the model)."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "model"}
        out["history"] = [dict(h) for h in self.history]
        return out


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on matrices and kernels only.

    Norm scales, biases (all ``ndim <= 1``) and position tables are left undecayed: shrinking them
    toward zero changes what the layer computes rather than regularising it.
    """
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if p.ndim <= 1 or any(key in name for key in NO_DECAY_NAMES):
            no_decay.append(p)
        else:
            decay.append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, *, amp: bool = False) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``loader``, in eval mode (restores the previous mode)."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=loader.device)
    correct = torch.zeros((), dtype=torch.long, device=loader.device)
    for xb, yb in loader:
        with torch.autocast(loader.device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(xb)  # [B, K]
        loss_sum += F.cross_entropy(logits.float(), yb, reduction="sum").double()
        correct += (logits.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(loader.num_images, 1)
    return float(loss_sum.item()) / n, float(correct.item()) / n


def has_real_convs(model: nn.Module) -> bool:
    """Convolutions that overlap (kernel != stride): patchify stems alone do not gain from channels_last."""
    return any(isinstance(m, nn.Conv2d) and m.kernel_size != m.stride for m in model.modules())


def convs_channels_last(model: nn.Module) -> nn.Module:
    """Every convolution's weight channels-last (their outputs follow), nothing else: ``model.to(memory_format=...)``
    would also restride any other 4-D parameter, such as a mixer's ``[H, W, C, 2]`` filter that
    ``torch.view_as_complex`` needs contiguous in its last dimension (GFNet's, examples/nas_gfnet)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            m.to(memory_format=torch.channels_last)
    return model


def _model_for(target: Any, data: ImageDataset, seed: int, config: TrainConfig | None = None,
               device: torch.device | None = None) -> tuple[nn.Module, int]:
    """The network to train and the image side it takes.

    A genome is adapted to the data's channels and classes and built under ``seed`` (so the same seed
    gives the same initial weights); a ready module is probed with two blank images so that a
    channel, size or class mismatch is one clear error instead of a shape error deep in a layer.
    """
    if isinstance(target, (str, Path, Mapping)):
        target = load_genome(target)
    if isinstance(target, Genome):
        from nas.models import build_model

        genome = target.replace(in_channels=data.channels, num_classes=data.num_classes)
        if config is not None:  # training needs gradients, AdamW state and a batch of activations too
            from nas.models.footprint import check_fits

            check_fits(genome, batch_size=config.batch_size, training=True, device=str(device or "cpu"))
        torch.manual_seed(seed)
        return build_model(genome), genome.image_size
    if not isinstance(target, nn.Module):
        raise DataError(f"train() needs a genome, a preset name or an nn.Module, got {type(target).__name__}")
    genome = getattr(target, "genome", None)
    size = genome.image_size if isinstance(genome, Genome) else int(getattr(target, "image_size", data.image_size))
    param = next(target.parameters(), None)
    probe = torch.zeros(2, data.channels, size, size, device=param.device if param is not None else "cpu")
    was_training = target.training
    target.eval()
    try:
        with torch.no_grad():
            out = target(probe)
    except (RuntimeError, ValueError) as exc:  # shape errors of torch and einops
        raise DataError(f"the model does not take {data.name} images of shape [{data.channels}, {size}, {size}] "
                        f"({str(exc).splitlines()[0]}); build it for {data.channels}-channel {size}x{size} "
                        f"inputs or pass a genome, which is fitted to the data") from None
    finally:
        target.train(was_training)
    if tuple(out.shape) != (2, data.num_classes):
        raise DataError(f"the model returns {list(out.shape)[1:]} outputs per image, but {data.name} has "
                        f"{data.num_classes} classes; expected logits of shape [B, {data.num_classes}]")
    return target, size


def _loaders(data: ImageDataset, config: TrainConfig, size: int, device: torch.device, seed: int,
             channels_last: bool) -> tuple[DeviceLoader, DeviceLoader]:
    x_tr, y_tr, x_va, y_va = data.x_train, data.y_train, data.x_val, data.y_val
    if config.subset is not None and config.subset < len(x_tr):
        pick = torch.randperm(len(x_tr), generator=torch.Generator().manual_seed(seed))[: config.subset]
        x_tr, y_tr = x_tr[pick], y_tr[pick]
    if config.val_subset is not None:
        x_va, y_va = x_va[: config.val_subset], y_va[: config.val_subset]
    if len(x_tr) == 0 or len(x_va) == 0:
        raise DataError(f"{data.name}: {len(x_tr)} training and {len(x_va)} validation images; both must be > 0")
    # Fit on the device: a resize there is one call for the whole set, and nothing is resized per batch.
    x_tr, x_va = fit_images(x_tr.to(device), size), fit_images(x_va.to(device), size)
    common = dict(mean=data.mean, std=data.std, device=device, channels_last=channels_last)
    train_loader = DeviceLoader(x_tr, y_tr, batch_size=config.batch_size, shuffle=True, augment=config.augment,
                                flip=data.flip, seed=seed, repeats=config.repeated_aug, **common,
                                pad=0 if config.rrc_scale_min is not None else config.crop_pad)  # RRC replaces it
    val_loader = DeviceLoader(x_va, y_va, batch_size=config.eval_batch_size, **common)
    return train_loader, val_loader


def train(
    model_or_genome: nn.Module | Genome | str | Mapping[str, Any],
    data: ImageDataset | str,
    config: TrainConfig | None = None,
    seed: int = 0,
    report: Callable[[dict[str, Any]], None] | None = None,
    *,
    on_step: Callable[[dict[str, Any]], None] | None = None,
) -> TrainResult:
    """Train a network on ``data`` and return its final metrics.

    ``report`` is called after every epoch with ``{epoch, train_loss, train_acc, val_loss, val_acc,
    img_per_s, elapsed_s}``; ``on_step`` after every optimizer step with ``{epoch, batch, batches,
    loss}`` (for progress bars). A non-finite loss raises :class:`TrainingDiverged` at once. Two CPU
    runs with the same seed give identical metrics.
    """
    from nas.train.arguments import data_spec, train_config, train_seed

    t_start = time.perf_counter()
    config, seed, data = train_config(config), train_seed(seed), data_spec(data)  # a dict, a Path: accepted
    device = pick_device(config.device)
    if not isinstance(data, ImageDataset):
        size_hint = load_genome(model_or_genome).image_size if isinstance(model_or_genome, (str, Mapping)) else (
            model_or_genome.image_size if isinstance(model_or_genome, Genome) else None)
        data = load_dataset(data, seed=seed, image_size=size_hint)
    torch.manual_seed(seed)
    model, size = _model_for(model_or_genome, data, seed, config, device)
    model.to(device)
    cuda = device.type == "cuda"
    if config.channels_last == "auto":  # an explicit true/false is honoured on any device
        channels_last = has_real_convs(model)  # faster on CPU too (benchmarks/channels_last.py)
    else:
        channels_last = bool(config.channels_last)
    if channels_last:
        convs_channels_last(model)
    amp = cuda if config.amp == "auto" else config.amp == "bf16"
    train_loader, val_loader = _loaders(data, config, size, device, seed, channels_last)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.999),
                                  **({"fused": True} if cuda else {}))
    # An explicit ``compile: true`` is honoured on any device (the CPU path is what tests can run);
    # Inductor needs a C compiler on CPU.
    step_model = torch.compile(model, backend=config.compile_backend) if config.compile else model
    # The moving average also follows the buffers (batch-norm statistics) and starts from the initial
    # weights, as timm's ModelEma in DeiT's code does (AveragedModel's first update only copies).
    ema = None
    if config.ema_decay is not None:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)
        ema.update_parameters(model)

    mixer = BatchMixer(data.num_classes, config.mixup_alpha, config.cutmix_alpha)
    mix_generator = torch.Generator().manual_seed(seed + 1)  # scalar draws: coefficient, CutMix box
    erase_generator = torch.Generator(device=device).manual_seed(seed + 2)  # per-image draws, on the device
    augmenter = PaperAugment.from_config(config, data.mean, data.std, device=device, seed=seed + 3)  # None: off
    batches = len(train_loader)
    warmup_steps = int(round(config.warmup_epochs * batches))
    total_steps = config.epochs * batches if config.epochs is not None else None
    check_every = _CUDA_CHECK_EVERY if cuda else 1
    history: list[dict[str, Any]] = []
    step, epoch, train_time, train_images = 0, 0, 0.0, 0
    stopped_by, warm_end_time, last_loss = "epochs", None, float("nan")
    train_loss = train_acc = float("nan")
    model.train()
    while config.epochs is None or epoch < config.epochs:
        t_epoch = time.perf_counter()
        losses = torch.zeros(batches, device=device)  # buffered so CUDA need not sync every step
        correct = torch.zeros((), dtype=torch.long, device=device)
        seen, checked, out_of_time = 0, 0, False
        for i, (xb, yb) in enumerate(train_loader):
            elapsed = time.perf_counter() - t_start  # the budget covers setup and evaluations too
            if step == warmup_steps and warm_end_time is None:
                warm_end_time = elapsed
            time_fraction = None
            if config.seconds is not None and step >= warmup_steps:
                start = warm_end_time or 0.0
                time_fraction = (elapsed - start) / max(config.seconds - start, 1e-9)
            lr = config.lr * warmup_cosine(step, warmup_steps=warmup_steps, total_steps=total_steps,
                                           min_ratio=config.min_lr_ratio, time_fraction=time_fraction)
            for group in optimizer.param_groups:
                group["lr"] = lr
            target: torch.Tensor = yb
            if augmenter is not None:
                xb = augmenter(xb)  # RandomResizedCrop / RandAugment, before the batch mixing as in DeiT
            if mixer.active:
                xb, target = mixer(xb, yb, mix_generator)  # soft targets [B, K]
            xb = random_erase(xb, config.random_erasing, erase_generator)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = step_model(xb)  # [B, K]
            loss = F.cross_entropy(logits.float(), target, label_smoothing=config.label_smoothing)
            losses[i] = loss.detach()
            if (i + 1 - checked) >= check_every:
                last_loss = _check_finite(losses, checked, i + 1, epoch + 1, step, lr)
                checked = i + 1
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
            optimizer.step()
            if ema is not None:
                ema.update_parameters(model)
            correct += (logits.detach().argmax(1) == yb).sum()
            seen += len(yb)
            step += 1
            if on_step is not None:
                on_step({"epoch": epoch + 1, "batch": i + 1, "batches": batches,
                         "loss": last_loss})
            if config.seconds is not None and time.perf_counter() - t_start >= config.seconds:
                out_of_time = True
                break
        done = i + 1 if batches else 0
        _check_finite(losses, checked, done, epoch + 1, step - 1, lr)
        train_loss = float(losses[:done].mean().item()) if done else float("nan")
        train_acc = float(correct.item()) / max(seen, 1)
        epoch_time = time.perf_counter() - t_epoch
        train_time += epoch_time
        train_images += seen
        val_loss, val_acc = evaluate(step_model, val_loader, amp=amp)
        if not math.isfinite(val_loss):  # weights broke on the last steps, after a finite loss
            raise TrainingDiverged(f"training diverged at epoch {epoch + 1}, step {step}: validation loss is "
                                   f"{val_loss} (lr={lr:.3g}); lower the learning rate or lengthen the warm-up")
        complete = done == batches
        if complete:
            epoch += 1
        entry = {"epoch": epoch if complete else epoch + 1, "train_loss": train_loss,
                 "train_acc": train_acc, "val_loss": val_loss, "val_acc": val_acc,
                 "img_per_s": seen / max(epoch_time, 1e-9)}
        if ema is not None:
            entry["ema_val_loss"], entry["ema_val_acc"] = evaluate(ema.module, val_loader, amp=amp)
        entry["elapsed_s"] = time.perf_counter() - t_start
        if not complete:
            entry["partial"] = True  # the time budget ran out inside this epoch
        history.append(entry)
        if report is not None:
            report(dict(entry))
        if out_of_time:
            stopped_by = "seconds"
            break

    if config.save_path:
        from nas.writes import atomic_open

        path = Path(config.save_path).expanduser()
        with atomic_open(path, "wb") as fh:  # a full disk or a kill never leaves a truncated .pt
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, fh)
        if ema is not None:  # beside the trained weights, loadable the same way
            with atomic_open(ema_path(path), "wb") as fh:
                torch.save({k: v.detach().cpu() for k, v in ema.module.state_dict().items()}, fh)
    last = history[-1]
    return TrainResult(
        val_acc=last["val_acc"], val_loss=last["val_loss"], train_acc=train_acc, train_loss=train_loss,
        epochs=epoch, steps=step, img_per_s=train_images / max(train_time, 1e-9),
        elapsed_s=time.perf_counter() - t_start, device=device_name(device),
        params=sum(p.numel() for p in model.parameters()), seed=seed, stopped_by=stopped_by,
        amp="bf16" if amp else "off", compiled=step_model is not model, channels_last=channels_last,
        history=history, model=model,
        ema_val_acc=last.get("ema_val_acc"), ema_val_loss=last.get("ema_val_loss"),
    )


def ema_path(path: str | Path) -> Path:
    """Where the moving-average weights go beside ``path``: ``model.pt`` -> ``model.ema.pt``."""
    path = Path(path)
    return path.with_name(f"{path.stem}.ema{path.suffix or '.pt'}")


def _check_finite(losses: torch.Tensor, lo: int, hi: int, epoch: int, last_step: int, lr: float) -> float:
    """Raise :class:`TrainingDiverged` naming the first non-finite loss among ``losses[lo:hi]``.

    ``last_step`` is the 0-based global step of ``losses[hi - 1]``; returns that loss.
    """
    if hi <= lo:
        return float("nan")
    window = losses[lo:hi]
    bad = ~torch.isfinite(window)
    if bool(bad.any()):
        first = int(bad.nonzero()[0, 0])
        value = float(window[first])
        at_step = last_step - (hi - lo - 1) + first
        raise TrainingDiverged(f"training diverged at epoch {epoch}, step {at_step + 1}: loss is {value} "
                               f"(lr={lr:.3g}); lower the learning rate or lengthen the warm-up")
    return float(window[-1])
