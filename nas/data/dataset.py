"""The in-memory image dataset every reader produces, and the helpers readers share.

Datasets here are small enough to live whole in memory (and on the training device) as uint8 tensors:
that makes a batch an index into one tensor instead of a trip through worker processes, which is what
keeps the many short trainings of a search cheap on a CPU.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from nas.errors import DataError

__all__ = ["ImageDataset", "fit_images", "channel_stats", "stratified_split", "make_dataset"]

# Largest zero margin added instead of resizing: a few background pixels (28 -> 32 for digits) keep
# every stroke exactly as drawn, while bigger gaps are better bridged by interpolation.
_MAX_PAD = 8


@dataclass(frozen=True)
class ImageDataset:
    """A labelled image set split into train and validation parts.

    ``x_*`` are uint8 ``[N, C, H, W]`` CPU tensors, ``y_*`` int64 ``[N]``. ``mean``/``std`` are per
    channel in [0, 1] units, measured on the training part, for normalization on the device.
    """

    name: str
    x_train: torch.Tensor  # [N, C, H, W] uint8
    y_train: torch.Tensor  # [N] int64
    x_val: torch.Tensor  # [M, C, H, W] uint8
    y_val: torch.Tensor  # [M] int64
    num_classes: int
    channels: int
    image_size: int  # native side length (images are square)
    mean: tuple[float, ...]
    std: tuple[float, ...]
    flip: bool  # whether a horizontal flip keeps the label (not for digits or text)
    class_names: tuple[str, ...] | None = field(default=None)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return (self.channels, self.image_size, self.image_size)

    def __len__(self) -> int:
        return int(self.x_train.shape[0])

    def summary(self) -> dict[str, object]:
        """A small dict for logs and result files."""
        return {
            "name": self.name, "train": len(self), "val": int(self.x_val.shape[0]), "shape": list(self.shape),
            "num_classes": self.num_classes, "mean": [round(m, 4) for m in self.mean],
            "std": [round(s, 4) for s in self.std], "flip": self.flip,
        }

    def __repr__(self) -> str:  # tensors would print thousands of numbers
        return f"ImageDataset({self.name}, train={len(self)}, val={int(self.x_val.shape[0])}, shape={self.shape})"


def channel_stats(x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 ``[N, C, H, W]`` images, in [0, 1] units.

    Sums are taken in float64 over chunks so that 50,000 CIFAR images neither overflow nor need a
    float copy of the whole set.
    """
    c = x.shape[1]
    total = torch.zeros(c, dtype=torch.float64)
    total_sq = torch.zeros(c, dtype=torch.float64)
    for start in range(0, x.shape[0], 4096):
        chunk = x[start:start + 4096].to(torch.float64) / 255.0  # [n, C, H, W]
        total += chunk.sum(dim=(0, 2, 3))
        total_sq += chunk.square().sum(dim=(0, 2, 3))
    count = x.shape[0] * x.shape[2] * x.shape[3]
    mean = total / max(count, 1)
    var = (total_sq / max(count, 1) - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)  # a constant channel must not divide by zero
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/val indices holding ``val_fraction`` of every class in val.

    Needed because some sources (the embedded MNIST file) are sorted by class: a plain head/tail split
    would leave whole classes out of training. Both index arrays come back shuffled.
    """
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"val_fraction must be in (0, 1), got {val_fraction!r}")
    if len(y) == 0:
        raise DataError("the dataset has no images; nothing to split into training and validation")
    rng = np.random.default_rng(seed)
    train_idx, val_idx = [], []
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * val_fraction))
        if len(idx) > 1:
            n_val = min(max(n_val, 1), len(idx) - 1)  # every class on both sides when it can be
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr, va = np.concatenate(train_idx), np.concatenate(val_idx)
    return rng.permutation(tr), rng.permutation(va)


def fit_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Uint8 ``[N, C, H, W]`` images brought to ``[N, C, size, size]``.

    A small even shortfall (28 -> 32) is zero-padded, centred, which keeps digits pixel-exact on their
    black background; anything else is resized once, bilinearly (antialiased when shrinking), so the
    training loop never resizes per batch.
    """
    if x.ndim != 4:
        raise DataError(f"images must be [N, C, H, W], got shape {list(x.shape)}")
    if size < 1:
        raise DataError(f"image size must be positive, got {size}")
    h, w = int(x.shape[2]), int(x.shape[3])
    if h == size and w == size:
        return x
    if h == w and 0 < size - h <= _MAX_PAD and (size - h) % 2 == 0:
        m = (size - h) // 2
        return F.pad(x, (m, m, m, m))  # zeros: background
    out = torch.empty((x.shape[0], x.shape[1], size, size), dtype=torch.uint8, device=x.device)
    shrink = size < max(h, w)
    for start in range(0, x.shape[0], 2048):  # bounded float memory for big sets
        chunk = x[start:start + 2048].float()
        chunk = F.interpolate(chunk, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
        out[start:start + 2048] = chunk.round_().clamp_(0, 255).to(torch.uint8)
    return out


def _as_uint8_nchw(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.uint8))


def make_dataset(
    name: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray,
    y_val: np.ndarray,
    *,
    flip: bool,
    num_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> ImageDataset:
    """Wrap numpy arrays (uint8 NCHW, integer labels) into an :class:`ImageDataset`, with its stats."""
    xt, xv = _as_uint8_nchw(x_train), _as_uint8_nchw(x_val)
    yt = torch.from_numpy(np.asarray(y_train, dtype=np.int64).copy())
    yv = torch.from_numpy(np.asarray(y_val, dtype=np.int64).copy())
    if num_classes is None:
        num_classes = int(max(yt.max().item() if len(yt) else 0, yv.max().item() if len(yv) else 0)) + 1
    if num_classes < 2:
        raise DataError(f"dataset {name} has {num_classes} class; a classifier needs at least 2")
    if len(xt) == 0:
        raise DataError(f"dataset {name} has no training images")
    mean, std = channel_stats(xt)
    return ImageDataset(
        name=name, x_train=xt, y_train=yt, x_val=xv, y_val=yv, num_classes=int(num_classes),
        channels=int(xt.shape[1]), image_size=int(xt.shape[2]), mean=mean, std=std, flip=flip,
        class_names=class_names,
    )
