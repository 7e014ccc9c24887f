"""The genome: a frozen, typed value describing one vision network.

A genome is data, not code: it round-trips through YAML/JSON, has a stable canonical key, and is
validated in exactly one place (:mod:`nas.genome.parse`). Choices are stored as strings and resolved
through registries by the builder, so a genome can be written, stored, diffed and hashed without torch.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["Stage", "Genome", "GENOME_FIELDS", "STAGE_FIELDS", "layout_of"]


def layout_of(mixers: Iterable[Any]) -> str:
    """The shorthand of the stages' mixers, e.g. ``C-C-A-A`` (``?`` for a name no letter stands for)."""
    from nas.mixers import letter_of

    return "-".join(letter_of(m) for m in mixers)


@dataclass(frozen=True)
class Stage:
    """One stage: ``depth`` blocks of one token mixer at one width.

    Fields that do not apply to ``mixer`` are ``None``: each mixer's declaration
    (:class:`nas.mixers.MixerSpec`) lists the fields it takes. The built-ins' fields have attributes
    of their own; a plugin mixer's other fields live in ``options`` (sorted ``(name, value)`` pairs,
    written out flat in the stage's document like any other field).
    """

    mixer: str
    depth: int
    dim: int
    heads: int | None = None  # attention-type mixers: dim must be divisible by heads
    mlp_ratio: float | None = None  # tau: hidden width of the block's MLP is tau * dim (not conv)
    shift_ratio: float | None = None  # gamma: fraction of channels shifted per direction (shift)
    expansion: float | None = None  # MBConv inverted-bottleneck expansion (conv; CoAtNet: 4)
    se_ratio: float | None = None  # squeeze-excitation reduction, of the block input width (conv)
    reattn_norm: str | None = None  # DeepViT: batch (paper's code) | layer (seed's code) | none
    options: tuple[tuple[str, Any], ...] = ()  # a plugin mixer's own fields, sorted by name

    def value(self, name: str) -> Any:
        """The stage's value of field ``name`` (an attribute, else an option; ``None`` when it has none)."""
        if name in _OWN_FIELDS:
            return getattr(self, name)
        return dict(self.options).get(name)

    def to_dict(self) -> dict[str, Any]:
        out = {f: getattr(self, f) for f in _OWN_FIELDS if getattr(self, f) is not None}
        out.update(self.options)
        return out


@dataclass(frozen=True)
class Genome:
    """A whole network: stem, stages, pooling and head.

    One stage is an isotropic network (ViT, DeepViT); several stages form a pyramid in which the
    resolution halves at each stage after the first (and also at the first after a conv stem, as in
    CoAtNet's S1).
    """

    stages: tuple[Stage, ...]
    image_size: int = 224
    in_channels: int = 3
    num_classes: int = 1000
    stem: str = "patch"  # patch: conv k=s=patch_size | conv: CoAtNet S0, two 3x3 convs
    patch_size: int | None = 16  # patch stem only
    patch_norm: bool | None = False  # patch stem only: a norm after the patch projection (ShiftViT)
    stem_dim: int | None = None  # conv stem only: width of S0 (CoAtNet-0: 64)
    stem_stride: int | None = 2  # conv stem only: stride of its first conv (1 keeps 32x32 inputs whole)
    pool: str = "cls"  # cls token | mean of the spatial tokens
    position: str = "absolute"  # absolute (learned table) | relative (bias per head) | none
    downsample: str = "merge"  # between stages: merge (ShiftViT patch merging) | pool (CoAtNet)
    drop_path: float = 0.0  # stochastic depth, linearly increasing to this value
    qkv_bias: bool = True  # attention-type mixers
    head_hidden: int | None = None  # pre-logits Linear+tanh of this width before the classifier (CoAtNet)
    # Both below are left out of the canonical document at their defaults (None), so genomes written
    # before they existed keep their keys.
    norm_eps: float | None = None  # epsilon of every LayerNorm; None: PyTorch's 1e-5 (timm's ViTs use 1e-6)
    init: str | None = None  # None: nas's short-run init; vit | shiftvit | coatnet: the official code's
    # MetaFormer's macro-structure (PoolFormer, Yu et al. 2022), both left out of the document when unset:
    overlap: bool | None = None  # overlapping patch embeddings: kernel 2s-1, padding s//2 (7x7/4 stem, 3x3/2 merging)
    layer_scale: float | None = None  # a learned per-channel scale on each residual branch, starting at this value
    # The modules that declare the plugin mixers the stages use (None when every mixer is built in), so
    # any process that parses the genome (a Ray worker, a later `nas build`) can import them first.
    plugins: tuple[str, ...] | None = None

    # -- derived views ---------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Canonical document: every field resolved, inapplicable fields left out."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name == "stages":
                out["stages"] = [s.to_dict() for s in value]
            elif f.name == "plugins" and value is not None:
                out["plugins"] = list(value)
            elif value is not None:
                out[f.name] = value
        return out

    @property
    def key(self) -> str:
        """Stable 12-hex-digit hash of the canonical document (key order and spelling do not matter)."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def layout(self) -> str:
        """Stage layout in the shorthand's letters, e.g. ``C-C-A-A``."""
        return layout_of(s.mixer for s in self.stages)

    @property
    def depth(self) -> int:
        return sum(s.depth for s in self.stages)

    def stage_resolutions(self) -> list[int]:
        """Side length of the token grid in each stage."""
        if self.stem == "patch":
            side = self.image_size // int(self.patch_size or 1)
            sides = [side]
        else:
            side = self.image_size // int(self.stem_stride or 1)
            sides = [side // 2]
        for _ in self.stages[1:]:
            sides.append(sides[-1] // 2)
        return sides

    def replace(self, **changes: Any) -> "Genome":
        """A validated copy with top-level fields changed (use ``nas.genome.parse_genome`` for stages)."""
        from nas.genome.parse import parse_genome

        doc = self.to_dict()
        doc.update(changes)
        return parse_genome(doc)

    def __str__(self) -> str:  # pragma: no cover - for humans
        return f"Genome({self.layout}, depth={self.depth}, key={self.key})"


GENOME_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Genome))
STAGE_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Stage) if f.name != "options")
_OWN_FIELDS = STAGE_FIELDS
