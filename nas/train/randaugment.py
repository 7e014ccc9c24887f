"""RandAugment on a batch of device tensors, per image, with no per-image Python loop.

RandAugment (Cubuk et al., NeurIPS 2020 workshops / CVPR-W 2020) applies ``n`` operations drawn at
random per image, all at one magnitude ``m`` on a 0-10 scale. DeiT (Touvron et al., ICML 2021, Table 9)
uses timm's ``rand-m9-mstd0.5-inc1``: magnitude 9 with Gaussian noise of std 0.5 drawn per operation,
each chosen operation applied with probability 0.5, and the "increasing" operation set, in which a
larger magnitude always means a stronger change. That set is ``OPS`` below, the same fifteen operations
timm lists in ``_RAND_INCREASING_TRANSFORMS`` (Invert and SolarizeAdd included: timm only drops Invert
when a weighted choice, ``w0``, is asked for).

Images are float ``[B, C, H, W]`` in [0, 1]. Each layer draws, per image, an operation, whether it
applies, a magnitude and a sign; the photometric operations are blends with a per-image factor (1, the
identity, for images that did not draw them) or masked ``torch.where``s, and the geometric ones
(rotate, shear, translate) share one affine grid and one bilinear ``grid_sample`` per layer, filled
with ``fill`` (the dataset mean, as timm fills with its ``img_mean``). Departures from timm's PIL code:
shears act about the image centre rather than the top-left corner, and interpolation is bilinear.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nas.errors import ConfigError

__all__ = ["OPS", "RandAugmentSpec", "parse_randaugment", "rand_augment"]

OPS: tuple[str, ...] = ("AutoContrast", "Equalize", "Invert", "Rotate", "Posterize", "Solarize", "SolarizeAdd",
                        "Color", "Contrast", "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateX",
                        "TranslateY")
_GEOMETRIC = ("Rotate", "ShearX", "ShearY", "TranslateX", "TranslateY")
_LEVEL_DENOM = 10.0  # magnitudes are on timm's and the paper's 0-10 scale


@dataclass(frozen=True)
class RandAugmentSpec:
    """``n`` operations per image at magnitude ``m`` (0-10 scale; more is allowed, as in CoAtNet's 15)
    with per-operation Gaussian noise ``mstd``; each chosen operation applies with probability ``prob``."""

    m: float = 9.0
    n: int = 2
    mstd: float = 0.0
    prob: float = 0.5


_TOKEN = re.compile(r"^(mstd|m|n)(\d+(?:\.\d*)?)$")


def parse_randaugment(text: str) -> RandAugmentSpec:
    """Parse a timm-style string such as ``m9-mstd0.5-n2`` (``rand-`` prefix and ``inc1`` accepted;
    unspecified parts default to m9, n2, mstd0)."""
    values: dict[str, float] = {}
    parts = [p for p in str(text).split("-") if p]
    if parts and parts[0] == "rand":
        parts = parts[1:]
    for part in parts:
        if part == "inc1":
            continue  # the increasing set is the only one implemented
        match = _TOKEN.match(part)
        if match is None or match.group(1) in values:
            raise ConfigError(f"train config: randaugment {text!r}: bad part {part!r}; write e.g. "
                              f"'m9-mstd0.5-n2' (m: magnitude 0-30, mstd: its noise std, n: ops per image)")
        values[match.group(1)] = float(match.group(2))
    spec = RandAugmentSpec(m=values.get("m", 9.0), n=int(values.get("n", 2)), mstd=values.get("mstd", 0.0))
    if not 0 <= spec.m <= 30 or not 1 <= spec.n <= 10 or values.get("n", 2) != spec.n:
        raise ConfigError(f"train config: randaugment {text!r}: m must be in [0, 30] and n an integer in [1, 10]")
    return spec


def rand_augment(x: torch.Tensor, spec: RandAugmentSpec, generator: torch.Generator,
                 fill: torch.Tensor | None = None, ops: tuple[str, ...] = OPS) -> torch.Tensor:
    """RandAugment of ``x`` float ``[B, C, H, W]`` in [0, 1]; ``fill`` ``[C]`` (default 0.5) fills the
    borders uncovered by geometric operations; ``ops`` restricts the set (tests). Returns a new tensor."""
    unknown = [o for o in ops if o not in OPS]
    if unknown or not ops:
        raise ConfigError(f"rand_augment: unknown operations {unknown}; known: {', '.join(OPS)}")
    b, c = x.shape[:2]
    dev = x.device
    fill_t = (torch.full((c,), 0.5, device=dev) if fill is None else fill.to(dev)).to(x.dtype).view(1, c, 1, 1)
    upper = max(_LEVEL_DENOM, spec.m)
    for _ in range(spec.n):
        op = torch.randint(len(ops), (b,), generator=generator, device=dev)  # [B]
        on = torch.rand(b, generator=generator, device=dev) < spec.prob  # [B]
        noise = torch.randn(b, generator=generator, device=dev)  # [B]
        sign = torch.where(torch.rand(b, generator=generator, device=dev) < 0.5, -1.0, 1.0)  # [B]
        magnitude = (spec.m + spec.mstd * noise).clamp(0.0, upper) if spec.mstd > 0 else torch.full((b,), spec.m,
                                                                                                    device=dev)
        level = (magnitude / _LEVEL_DENOM).to(x.dtype)  # [B]
        chosen = {name: (op == i) & on for i, name in enumerate(ops)}
        x = _layer(x, chosen, level, sign.to(x.dtype), fill_t)
    return x


def _layer(x: torch.Tensor, chosen: dict[str, torch.Tensor], level: torch.Tensor, sign: torch.Tensor,
           fill: torch.Tensor) -> torch.Tensor:
    """One RandAugment layer; ``chosen[op]`` [B] says which images apply ``op`` (at most one each)."""
    b = x.shape[0]
    none = torch.zeros(b, dtype=torch.bool, device=x.device)

    def pick(name: str) -> torch.Tensor:
        return chosen.get(name, none)

    def per_image(mask: torch.Tensor, on: torch.Tensor, off: float) -> torch.Tensor:  # [B] -> [B, 1, 1, 1]
        return torch.where(mask, on, torch.full_like(on, off)).view(b, 1, 1, 1)

    def where(mask: torch.Tensor, a: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        return torch.where(mask.view(b, 1, 1, 1), a, other)

    enhance = 1.0 + sign * level * 0.9  # timm's increasing enhance factor, in [0.1, 1.9] at magnitude 10
    if "AutoContrast" in chosen:
        x = where(pick("AutoContrast"), _autocontrast(x), x)
    if "Equalize" in chosen:
        x = where(pick("Equalize"), _equalize(x), x)
    if "Invert" in chosen:
        x = where(pick("Invert"), 1.0 - x, x)
    if "Posterize" in chosen:  # keep 4 down to 0 most significant bits
        bits = (4 - torch.floor(level * 4)).clamp(0, 8)
        step = torch.pow(2.0, 8 - bits)  # [B]
        q = torch.round(x * 255) / step.view(b, 1, 1, 1)
        x = where(pick("Posterize"), torch.floor(q) * step.view(b, 1, 1, 1) / 255, x)
    if "Solarize" in chosen:  # invert the pixels at or above a threshold falling from 256 to 0
        thresh = per_image(pick("Solarize"), 256 - torch.floor(level * 256), 256.0)
        x = torch.where(x * 255 >= thresh - 0.5, 1.0 - x, x)
    if "SolarizeAdd" in chosen:  # add up to 110 to the pixels below 128
        add = per_image(pick("SolarizeAdd"), torch.floor(level * 110) / 255, 0.0)
        x = torch.where(x * 255 < 128, (x + add).clamp(0, 1), x)
    if "Brightness" in chosen:
        x = (x * per_image(pick("Brightness"), enhance, 1.0)).clamp(0, 1)
    if "Color" in chosen:
        gray = _gray(x)
        x = _blend(gray, x, per_image(pick("Color"), enhance, 1.0))
    if "Contrast" in chosen:
        mean = _gray(x).mean(dim=(1, 2, 3), keepdim=True)  # [B, 1, 1, 1]
        x = _blend(mean, x, per_image(pick("Contrast"), enhance, 1.0))
    if "Sharpness" in chosen:
        x = _blend(_smooth(x), x, per_image(pick("Sharpness"), enhance, 1.0))
    geometric = [n for n in _GEOMETRIC if n in chosen]
    if geometric:
        mask = torch.stack([pick(n) for n in geometric]).any(0)  # [B]
        x = where(mask, _warp(x, _theta(x, chosen, level, sign), fill), x)
    return x


def _gray(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (PIL's "L"), [B, 1, H, W]; the channel mean for non-RGB images."""
    if x.shape[1] != 3:
        return x.mean(1, keepdim=True)
    w = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(1, keepdim=True)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: ``degenerate + factor * (x - degenerate)``, clipped to [0, 1]."""
    return (degenerate + factor * (x - degenerate)).clamp(0, 1)


def _smooth(x: torch.Tensor) -> torch.Tensor:
    """PIL's SMOOTH kernel (centre 5, neighbours 1, /13) used by ImageEnhance.Sharpness; borders kept.
    Written as a 3x3 box sum plus 4x the centre: ``avg_pool2d`` is several times faster than a
    depthwise convolution on CPU."""
    inner = (9.0 * F.avg_pool2d(x, 3, stride=1) + 4.0 * x[..., 1:-1, 1:-1]) / 13.0  # [B, C, H-2, W-2]
    out = x.clone()
    out[..., 1:-1, 1:-1] = inner
    return out


def _autocontrast(x: torch.Tensor) -> torch.Tensor:
    """Stretch each channel of each image to the full [0, 1] range (constant channels are kept)."""
    lo = x.amin(dim=(2, 3), keepdim=True)
    hi = x.amax(dim=(2, 3), keepdim=True)
    span = hi - lo
    return torch.where(span > 0, (x - lo) / span.clamp_min(1e-12), x)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL's ImageOps.equalize per image and channel, batched: 256-bin histograms by ``scatter_add``."""
    b, c, h, w = x.shape
    q = torch.round(x * 255).clamp(0, 255).long().view(b * c, h * w)  # [BC, HW]
    hist = torch.zeros(b * c, 256, device=x.device, dtype=torch.long).scatter_add_(1, q, torch.ones_like(q))
    last = 255 - torch.argmax((hist.flip(1) > 0).long(), dim=1, keepdim=True)  # last non-empty bin, [BC, 1]
    step = (h * w - hist.gather(1, last)) // 255  # [BC, 1]
    cum_before = hist.cumsum(1) - hist  # [BC, 256]
    lut = ((cum_before + step // 2) // step.clamp_min(1)).clamp(max=255)
    out = lut.gather(1, q).to(x.dtype) / 255
    return torch.where(step > 0, out, x.view(b * c, h * w)).view(b, c, h, w)


def _theta(x: torch.Tensor, chosen: dict[str, torch.Tensor], level: torch.Tensor,
           sign: torch.Tensor) -> torch.Tensor:
    """The ``affine_grid`` matrices [B, 2, 3] of the geometric operations (identity elsewhere). Each is
    built in centred pixel units (output pixel -> input pixel) and scaled to normalised coordinates."""
    b, _, h, w = x.shape
    dev, dt = x.device, x.dtype
    a = torch.eye(2, device=dev, dtype=dt).repeat(b, 1, 1)  # [B, 2, 2]
    t = torch.zeros(b, 2, device=dev, dtype=dt)  # [B, 2], pixels
    none = torch.zeros(b, dtype=torch.bool, device=dev)
    angle = sign * level * (30.0 * math.pi / 180)  # up to 30 degrees
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], 1)  # [B, 2, 2]
    shear = sign * level * 0.3
    shear_x = a.clone()
    shear_x[:, 0, 1] = shear
    shear_y = a.clone()
    shear_y[:, 1, 0] = shear
    shift = sign * level * 0.45  # fraction of the side
    for name, matrix in (("Rotate", rot), ("ShearX", shear_x), ("ShearY", shear_y)):
        a = torch.where(chosen.get(name, none).view(b, 1, 1), matrix, a)
    t[:, 0] = torch.where(chosen.get("TranslateX", none), shift * w, t[:, 0])
    t[:, 1] = torch.where(chosen.get("TranslateY", none), shift * h, t[:, 1])
    half = torch.tensor([w / 2, h / 2], device=dev, dtype=dt)  # pixels per normalised unit
    a_n = a * half.view(1, 1, 2) / half.view(1, 2, 1)  # S^-1 A S
    return torch.cat([a_n, (t / half).unsqueeze(-1)], dim=2)


def _warp(x: torch.Tensor, theta: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of ``x`` by ``theta``; pixels from outside the image take ``fill``."""
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x - fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
