"""Batch-level regularisers of the ImageNet recipes, on the device: mixup, CutMix and random erasing.

They are what DeiT's recipe (and the ShiftViT and CoAtNet recipes after it) adds to a plain crop and
flip: mixup (Zhang et al., ICLR 2018) blends two images and their labels, CutMix (Yun et al., ICCV
2019) pastes a box of one image into another and mixes the labels by area, random erasing (Zhong et
al., AAAI 2020) fills a random box of an image with noise. As in timm's ``Mixup`` (``mode="batch"``),
one mixing coefficient is drawn per batch and each image is paired with the batch reversed; when both
alphas are set, each batch is CutMix with probability ``switch_prob`` and mixup otherwise. Everything
is a few tensor ops on the batch already on the device: no per-image Python loop.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["BatchMixer", "random_erase"]


@dataclass(frozen=True)
class BatchMixer:
    """Mixup / CutMix of a batch with soft targets; ``active`` is False when both alphas are 0."""

    num_classes: int
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    switch_prob: float = 0.5  # chance of CutMix when both are on (DeiT's and timm's default)

    @property
    def active(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``x`` [B, C, H, W], ``y`` [B] -> mixed images and soft targets [B, K] (rows sum to 1).

        ``generator`` is a CPU generator: it draws only the batch's scalars (coefficient, box)."""
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha <= 0 or float(torch.rand((), generator=generator)) < self.switch_prob)
        lam = _beta(self.cutmix_alpha if use_cutmix else self.mixup_alpha, generator)
        partner = x.flip(0)  # [B, C, H, W]: image i is paired with image B-1-i
        if use_cutmix:
            x, lam = _paste_box(x, partner, lam, generator)
        else:
            x = x * lam + partner * (1.0 - lam)
        one_hot = F.one_hot(y, self.num_classes).to(x.dtype if x.is_floating_point() else torch.float32)  # [B, K]
        targets = one_hot * lam + one_hot.flip(0) * (1.0 - lam)
        return x, targets


def _beta(alpha: float, generator: torch.Generator) -> float:
    """One Beta(alpha, alpha) draw determined by ``generator`` (torch's Beta takes no generator)."""
    seed = int(torch.randint(0, 2**31 - 1, (), generator=generator))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def _paste_box(x: torch.Tensor, partner: torch.Tensor, lam: float,
               generator: torch.Generator) -> tuple[torch.Tensor, float]:
    """CutMix: a box of area (1 - lam) of the image, centred uniformly and clipped at the borders;
    returns the images and lam corrected to the box actually pasted."""
    h, w = x.shape[-2:]
    cut = math.sqrt(1.0 - lam)
    ch, cw = int(h * cut), int(w * cut)
    cy = int(torch.randint(0, h, (), generator=generator))
    cx = int(torch.randint(0, w, (), generator=generator))
    y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
    x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = partner[..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / (h * w)


def random_erase(x: torch.Tensor, prob: float, generator: torch.Generator, *, min_area: float = 0.02,
                 max_area: float = 1 / 3, min_aspect: float = 0.3) -> torch.Tensor:
    """Random erasing as timm's ``RandomErasing(mode="pixel")`` on normalised images: with probability
    ``prob`` per image, a box of area in [min_area, max_area] of the image and log-uniform aspect ratio
    in [min_aspect, 1/min_aspect] is filled with N(0, 1) noise. ``x`` [B, C, H, W] is not modified."""
    if prob <= 0:
        return x
    b, _, h, w = x.shape
    dev = x.device

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, generator=generator, device=dev)

    area = uniform(min_area, max_area) * h * w
    aspect = torch.exp(uniform(math.log(min_aspect), -math.log(min_aspect)))
    bh = torch.sqrt(area * aspect).round().clamp(1, h)  # box sides, [B]
    bw = torch.sqrt(area / aspect).round().clamp(1, w)
    top = (torch.rand(b, generator=generator, device=dev) * (h - bh + 1)).floor()
    left = (torch.rand(b, generator=generator, device=dev) * (w - bw + 1)).floor()
    on = torch.rand(b, generator=generator, device=dev) < prob
    rows = torch.arange(h, device=dev).view(1, h, 1)
    cols = torch.arange(w, device=dev).view(1, 1, w)
    box = ((rows >= top.view(b, 1, 1)) & (rows < (top + bh).view(b, 1, 1))
           & (cols >= left.view(b, 1, 1)) & (cols < (left + bw).view(b, 1, 1)) & on.view(b, 1, 1))  # [B, H, W]
    noise = torch.randn(x.shape, generator=generator, device=dev, dtype=x.dtype)
    return torch.where(box.unsqueeze(1), noise, x)
