"""The ImageNet recipes' image augmentation on the device: RandomResizedCrop, then RandAugment.

DeiT (Touvron et al., ICML 2021, Table 9), and ShiftViT through Swin's recipe, train on
RandomResizedCrop(scale (0.08, 1), ratio (3/4, 4/3)) + flip + RandAugment (rand-m9-mstd0.5-inc1);
CoAtNet (Dai et al., NeurIPS 2021, Appendix A.2) on Inception-style crops + RandAugment (2 layers,
magnitude 15). torchvision is not a dependency, and its transforms work per image on the host, so
both are written here for a batch already on the training device:

* the crop box of every image is drawn as torchvision's ``RandomResizedCrop.get_params`` draws it
  (10 tries of (area scale, log aspect ratio), then a central crop of the largest allowed ratio),
  all images and tries at once; the crops are resized by one ``affine_grid`` + bilinear
  ``grid_sample`` (no antialiasing when shrinking, unlike torchvision's default);
* RandAugment is :mod:`nas.train.randaugment`.

The loader hands out normalised batches; :class:`PaperAugment` maps them back to [0, 1], crops and
augments there (RandAugment's thresholds are defined on pixel values) and normalises again. The
loader's flip stays on; its padded crop is turned off when the random resized crop is on. The crop
starts from the image the loader holds (already fitted to the model's size), not from the
full-resolution file, so small crops are upsampled from fewer pixels than torchvision's.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from nas.train.config import TrainConfig
from nas.train.randaugment import RandAugmentSpec, parse_randaugment, rand_augment

__all__ = ["PaperAugment", "crop_boxes", "resized_crop", "random_resized_crop"]

_TRIES = 10


def crop_boxes(b: int, h: int, w: int, scale: tuple[float, float], ratio: tuple[float, float],
               generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``[B, 4]`` float boxes ``(top, left, height, width)`` in pixels, drawn per image as torchvision's
    RandomResizedCrop does: the first of 10 tries whose box fits, else the central fallback crop."""
    area = float(h * w)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(b, _TRIES, generator=generator, device=device)

    target = area * uniform(*scale)  # [B, T]
    aspect = torch.exp(uniform(math.log(ratio[0]), math.log(ratio[1])))  # [B, T]
    cw = torch.round(torch.sqrt(target * aspect))
    ch = torch.round(torch.sqrt(target / aspect))
    fits = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)  # [B, T]
    first = torch.argmax(fits.int(), dim=1, keepdim=True)  # the first fitting try (0 when none fits)
    cw, ch = cw.gather(1, first).squeeze(1), ch.gather(1, first).squeeze(1)  # [B]
    top = torch.floor(torch.rand(b, generator=generator, device=device) * (h - ch + 1))
    left = torch.floor(torch.rand(b, generator=generator, device=device) * (w - cw + 1))
    # torchvision's fallback: the whole image, cut to the nearest allowed ratio, centred
    in_ratio = w / h
    if in_ratio < min(ratio):
        fw, fh = w, int(round(w / min(ratio)))
    elif in_ratio > max(ratio):
        fh, fw = h, int(round(h * max(ratio)))
    else:
        fw, fh = w, h
    fallback = torch.tensor([(h - fh) // 2, (w - fw) // 2, fh, fw], device=device, dtype=torch.float32)
    boxes = torch.stack([top, left, ch, cw], dim=1)  # [B, 4]
    return torch.where(fits.any(1, keepdim=True), boxes, fallback.expand(b, 4))


def resized_crop(x: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Crop ``boxes`` ``[B, 4]`` (top, left, height, width) out of ``x`` ``[B, C, H, W]`` and resize them
    to ``size`` with bilinear interpolation (half-pixel centres, as ``F.interpolate``), in one grid."""
    b, _, h, w = x.shape
    top, left, bh, bw = boxes.to(x.dtype).unbind(1)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = bw / w
    theta[:, 0, 2] = (2 * left + bw) / w - 1  # the box centre in normalised coordinates
    theta[:, 1, 1] = bh / h
    theta[:, 1, 2] = (2 * top + bh) / h - 1
    grid = F.affine_grid(theta, [b, x.shape[1], size[0], size[1]], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_resized_crop(x: torch.Tensor, generator: torch.Generator, scale: tuple[float, float] = (0.08, 1.0),
                        ratio: tuple[float, float] = (3 / 4, 4 / 3), size: tuple[int, int] | None = None) -> torch.Tensor:
    """RandomResizedCrop of every image of ``x`` ``[B, C, H, W]`` to ``size`` (default: the input's)."""
    b, _, h, w = x.shape
    boxes = crop_boxes(b, h, w, scale, ratio, generator, x.device)
    return resized_crop(x, boxes, size or (h, w))


class PaperAugment:
    """RandomResizedCrop and/or RandAugment of normalised training batches, with its own generator
    (on the batches' device) so that the draws replay for a seed whatever else draws numbers."""

    def __init__(self, mean: Sequence[float], std: Sequence[float], *, device: torch.device | str = "cpu",
                 seed: int = 0, rrc_scale: tuple[float, float] | None = None,
                 rrc_ratio: tuple[float, float] = (3 / 4, 4 / 3), randaugment: RandAugmentSpec | None = None) -> None:
        self.device = torch.device(device)
        self.mean = torch.tensor(list(mean), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.std = torch.tensor(list(std), dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self.rrc_scale, self.rrc_ratio, self.randaugment = rrc_scale, rrc_ratio, randaugment
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    @classmethod
    def from_config(cls, config: TrainConfig, mean: Sequence[float], std: Sequence[float], *,
                    device: torch.device | str, seed: int) -> "PaperAugment | None":
        """The augmenter ``config`` asks for, or None when both parts are off (the default)."""
        if config.rrc_scale_min is None and config.randaugment is None:
            return None
        return cls(mean, std, device=device, seed=seed,
                   rrc_scale=None if config.rrc_scale_min is None else (config.rrc_scale_min, 1.0),
                   rrc_ratio=(1 / config.rrc_max_ratio, config.rrc_max_ratio),
                   randaugment=None if config.randaugment is None else parse_randaugment(config.randaugment))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised float ``[B, C, H, W]`` -> the same shape, dtype and memory format, augmented."""
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        mean, std = self.mean.to(x.dtype), self.std.to(x.dtype)
        if self.rrc_scale is not None:  # interpolation is linear: the crop needs no trip to [0, 1]
            x = random_resized_crop(x, self.generator, self.rrc_scale, self.rrc_ratio)
        if self.randaugment is not None:
            x01 = (x * std + mean).clamp(0, 1)
            x01 = rand_augment(x01, self.randaugment, self.generator, fill=self.mean.flatten())
            x = (x01 - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if channels_last else x.contiguous()
