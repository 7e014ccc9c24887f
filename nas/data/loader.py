"""Batches drawn from device-resident uint8 images, augmented and normalized on the device.

A whole small dataset fits on the training device as uint8, so a batch is one index into that tensor:
no DataLoader workers, no per-sample Python, no host-to-device copy per step. Augmentation (random crop
with zero padding, horizontal flip) is a single batched gather, and normalization is one fused
multiply-add after the float conversion.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from nas.errors import DataError

__all__ = ["DeviceLoader", "augment_batch"]


def augment_batch(x: torch.Tensor, *, pad: int, flip: bool, generator: torch.Generator | None = None) -> torch.Tensor:
    """Random crop of the zero-padded image (offsets in ``[0, 2*pad]``) and, if ``flip``, a random
    horizontal flip, for a uint8 batch ``[B, C, H, W]``; returns the same shape and dtype.

    Both are done by one ``gather`` with per-sample row/column indices: the flip is just reversed
    column indices, so it costs nothing on top of the crop.
    """
    b, c, h, w = x.shape
    if pad <= 0 and not flip:
        return x
    dev = x.device
    xp = F.pad(x, (pad, pad, pad, pad)) if pad > 0 else x  # [B, C, H+2p, W+2p]
    wp = w + 2 * pad
    oy = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)  # [B]
    ox = torch.randint(0, 2 * pad + 1, (b,), device=dev, generator=generator)  # [B]
    rows = oy[:, None] + torch.arange(h, device=dev)  # [B, H]
    cols = torch.arange(w, device=dev).expand(b, w)  # [B, W]
    if flip:
        mirrored = torch.rand(b, device=dev, generator=generator) < 0.5  # [B]
        cols = torch.where(mirrored[:, None], cols.flip(1), cols)
    cols = ox[:, None] + cols  # [B, W]
    index = (rows[:, :, None] * wp + cols[:, None, :]).reshape(b, 1, h * w)  # [B, 1, H*W]
    out = xp.reshape(b, c, -1).gather(2, index.expand(b, c, h * w))  # [B, C, H*W]
    return out.reshape(b, c, h, w)


class DeviceLoader:
    """Iterate ``(images, labels)`` batches: images float ``[B, C, H, W]`` normalized, labels int64 ``[B]``.

    ``x`` (uint8 ``[N, C, H, W]``) and ``y`` are moved to ``device`` once. With ``shuffle`` the order is
    a fresh permutation every epoch from the loader's own generator, seeded by ``seed``, so the batch
    order (and the augmentation) replays exactly for a given seed whatever else draws random numbers.

    ``repeats`` > 1 is DeiT's repeated augmentation: an epoch keeps its ``N`` images but draws only
    ``ceil(N / repeats)`` distinct ones, each ``repeats`` times in a row, so one batch holds several
    differently augmented views of the same image (DeiT's sampler spreads the copies over its GPUs; on
    one device they share a batch, as that sampler does with one process).
    """

    def __init__(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        shuffle: bool = False,
        augment: bool = False,
        flip: bool = False,
        pad: int = 4,
        seed: int = 0,
        channels_last: bool = False,
        repeats: int = 1,
    ) -> None:
        if x.dtype != torch.uint8 or x.ndim != 4:
            raise DataError(f"loader images must be uint8 [N, C, H, W], got {x.dtype} {list(x.shape)}")
        if y.ndim != 1 or len(y) != len(x):
            raise DataError(f"loader labels must be [N] with N = {len(x)}, got {list(y.shape)}")
        if len(mean) != x.shape[1] or len(std) != x.shape[1]:
            raise DataError(f"mean/std have {len(mean)}/{len(std)} entries for {x.shape[1]}-channel images")
        if batch_size < 1:
            raise DataError(f"batch_size must be >= 1, got {batch_size}")
        if repeats < 1:
            raise DataError(f"repeats must be >= 1, got {repeats}")
        if repeats > 1 and not shuffle:
            raise DataError("repeated augmentation needs a shuffled (training) loader")
        self.device = torch.device(device)
        self.x = x.to(self.device)
        self.y = y.to(self.device, dtype=torch.long)
        self.batch_size = int(batch_size)
        self.shuffle, self.augment, self.flip, self.pad = shuffle, augment, flip, pad
        self.channels_last = channels_last
        self.repeats = int(repeats)
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))
        mean_t = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        std_t = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        # (x / 255 - mean) / std  ==  x * scale + shift, one fused op per batch
        self.scale = 1.0 / (255.0 * std_t)  # [1, C, 1, 1]
        self.shift = -mean_t / std_t  # [1, C, 1, 1]

    @property
    def num_images(self) -> int:
        return int(self.x.shape[0])

    def __len__(self) -> int:
        n, b = self.num_images, self.batch_size
        batches = -(-n // b)
        if self.shuffle and n > 1 and n % b == 1:  # a lone trailing image breaks batch norm in training
            batches -= 1
        return batches

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """uint8 ``[B, C, H, W]`` -> normalized float32 (channels-last in memory if asked)."""
        out = torch.addcmul(self.shift, x.float(), self.scale)  # [B, C, H, W]
        if self.channels_last:
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_images
        if self.shuffle:
            order = torch.randperm(n, device=self.device, generator=self.generator)  # [N]
            if self.repeats > 1:
                distinct = -(-n // self.repeats)
                order = order[:distinct].repeat_interleave(self.repeats)[:n]  # [N], each id `repeats` times
        else:
            order = None
        for i in range(len(self)):
            lo, hi = i * self.batch_size, min((i + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self.x[lo:hi], self.y[lo:hi]
            else:
                idx = order[lo:hi]
                xb, yb = self.x[idx], self.y[idx]  # [B, C, H, W] uint8, [B]
            if self.augment:
                xb = augment_batch(xb, pad=self.pad, flip=self.flip, generator=self.generator)
            yield self.normalize(xb), yb
