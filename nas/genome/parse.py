"""Turn a user document (dict, YAML, JSON; explicit stages or layout shorthand) into a :class:`Genome`.

This is the one place where genomes are validated. Every rejection is a :class:`GenomeError` whose
message names the field, the value and what is allowed.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from nas.errors import GenomeError, closest
from nas.genome.schema import (
    shifted_channels,
    ATTENTION_MIXERS,
    GENOME_FIELDS,
    MIXER_LETTERS,
    MIXER_NAMES,
    STAGE_FIELDS,
    STAGE_FIELDS_BY_MIXER,
    Genome,
    Stage,
)

__all__ = ["parse_genome"]

SHORTHAND_FIELDS = ("layout", "depths", "dims", "transformer_mixer")
PER_STAGE_SHORTHAND = ("heads", "mlp_ratio", "shift_ratio", "expansion", "se_ratio", "reattn_norm")
# Top-level keys that carry information about a genome but are not part of it (export metadata).
IGNORED_KEYS = ("metadata", "name", "description")
CHOICES = {
    "stem": ("patch", "conv"),
    "pool": ("cls", "mean"),
    "position": ("absolute", "relative", "none"),
    "downsample": ("merge", "pool"),
    "reattn_norm": ("batch", "layer", "none"),
    "init": ("nas", "vit", "shiftvit", "coatnet"),
}
# LayerNorm's epsilon when a genome names none: PyTorch's default; written out only when it differs.
DEFAULT_NORM_EPS = 1e-5
STAGE_DEFAULTS = {"mlp_ratio": 4.0, "shift_ratio": 1 / 12, "expansion": 4.0, "se_ratio": 0.25, "reattn_norm": "batch"}


# -- scalar coercion ------------------------------------------------------------------------------
def _int(where: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
        isinstance(value, float) and not value.is_integer()
    ):
        raise GenomeError(f"{where} must be an integer, got {value!r}")
    if int(value) < minimum:
        raise GenomeError(f"{where} must be >= {minimum}, got {int(value)}")
    return int(value)


def _float(where: str, value: Any) -> float:
    """A float; fractions such as ``"1/12"`` are accepted because the papers write ratios that way."""
    if isinstance(value, str):
        try:
            value = float(Fraction(value.strip()))
        except (ValueError, ZeroDivisionError):
            raise GenomeError(f"{where} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise GenomeError(f"{where} must be a number, got {value!r}")
    return float(value)


def _positive(where: str, value: Any) -> float:
    out = _float(where, value)
    if out <= 0:
        raise GenomeError(f"{where} must be > 0, got {out:g}")
    return out


def _choice(where: str, value: Any, name: str) -> str:
    allowed = CHOICES[name]
    if value not in allowed:
        raise GenomeError(f"{where} must be one of {', '.join(allowed)}; got {value!r}{closest(str(value), allowed)}")
    return str(value)


def _bool(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise GenomeError(f"{where} must be true or false, got {value!r}")
    return value


def _mixer(where: str, value: Any) -> str:
    if value not in MIXER_NAMES:
        raise GenomeError(
            f"unknown mixer {value!r} at {where}{closest(str(value), MIXER_NAMES)}; known: {', '.join(sorted(MIXER_NAMES))}"
        )
    return str(value)


def _check_keys(where: str, doc: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in doc:
        if key not in known:
            raise GenomeError(f"unknown key {key!r} in {where}{closest(str(key), known)}; known: {', '.join(known)}")


# -- stages ---------------------------------------------------------------------------------------
def _parse_stage(i: int, doc: Any) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(doc, Mapping):
        raise GenomeError(f"{where} must be a mapping such as {{mixer: attention, depth: 2, dim: 64}}, got {doc!r}")
    _check_keys(where, doc, STAGE_FIELDS)
    for required in ("mixer", "depth", "dim"):
        if required not in doc:
            raise GenomeError(f"{where}.{required} is missing")
    mixer = _mixer(f"{where}.mixer", doc["mixer"])
    depth = _int(f"{where}.depth", doc["depth"])
    dim = _int(f"{where}.dim", doc["dim"])
    values: dict[str, Any] = {}
    for name, mixers in STAGE_FIELDS_BY_MIXER.items():
        if mixer not in mixers:
            continue  # does not apply to this mixer: dropped (see schema)
        raw = doc.get(name)
        if name == "heads":
            heads = _int(f"{where}.heads", raw) if raw is not None else max(1, dim // 64)
            if dim % heads:
                small = [h for h in range(1, math.isqrt(dim) + 1) if dim % h == 0]
                divisors = ", ".join(str(h) for h in sorted({*small, *(dim // h for h in small)}))
                raise GenomeError(
                    f"{where}.heads {heads} does not divide dim {dim}; allowed: a divisor of {dim} ({divisors})"
                )
            values["heads"] = heads
            continue
        raw = STAGE_DEFAULTS[name] if raw is None else raw
        if name == "reattn_norm":
            values[name] = _choice(f"{where}.reattn_norm", raw, "reattn_norm")
        elif name == "shift_ratio":
            ratio = _float(f"{where}.shift_ratio", raw)
            if not 0 < ratio <= 0.25:
                raise GenomeError(f"{where}.shift_ratio must be in (0, 0.25] (4 directions), got {ratio:g}")
            channels = shifted_channels(ratio, dim)
            if channels < 1:
                raise GenomeError(f"{where}: shift_ratio {ratio:g} of dim {dim} shifts no channel; need shift_ratio*dim >= 1")
            # Canonical: the ratio the network really uses (floor(gamma * dim) / dim), so two ratios that
            # shift the same channels are one genome with one key (a search never trains it twice).
            values[name] = channels / dim
        elif name == "se_ratio":
            ratio = _float(f"{where}.se_ratio", raw)
            if not 0 <= ratio <= 1:
                raise GenomeError(f"{where}.se_ratio must be in [0, 1] (0 disables squeeze-excitation), got {ratio:g}")
            values[name] = ratio
        else:
            values[name] = _positive(f"{where}.{name}", raw)
    return Stage(mixer=mixer, depth=depth, dim=dim, **values)


def _per_stage(name: str, value: Any, n: int) -> list[Any]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise GenomeError(f"{name} has {len(value)} entries but the layout has {n} stages")
        return list(value)
    return [value] * n


def _expand_shorthand(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """``layout: C-C-T-T`` + ``depths``/``dims`` (+ scalars or lists) -> explicit stage mappings."""
    if "stages" in doc:
        raise GenomeError("give either stages or layout, not both")
    layout = doc.pop("layout")
    if not isinstance(layout, str) or not layout.strip():
        raise GenomeError(f"layout must be a string such as 'C-C-T-T', got {layout!r}")
    t_mixer = doc.pop("transformer_mixer", "attention")
    if t_mixer not in ATTENTION_MIXERS:
        raise GenomeError(
            f"transformer_mixer must be one of {', '.join(sorted(ATTENTION_MIXERS))}; got {t_mixer!r}"
            f"{closest(str(t_mixer), ATTENTION_MIXERS)}"
        )
    letters = [c for c in layout.upper() if c not in "-_ "]
    if not letters:
        raise GenomeError(f"layout {layout!r} has no stages; write one letter per stage, such as 'C-C-T-T'")
    letter_map = {**MIXER_LETTERS, "T": t_mixer}
    for c in letters:
        if c not in letter_map:
            raise GenomeError(f"layout {layout!r}: unknown letter {c!r}; allowed: C (conv), A (attention), R (reattention), S (shift), T (transformer_mixer)")
    n = len(letters)
    for required in ("depths", "dims"):
        if required not in doc:
            raise GenomeError(f"layout needs {required}: a list of {n} values")
    columns = {"depth": _per_stage("depths", doc.pop("depths"), n), "dim": _per_stage("dims", doc.pop("dims"), n)}
    for name in PER_STAGE_SHORTHAND:
        if name in doc:
            columns[name] = _per_stage(name, doc.pop(name), n)
    stages = []
    for i, c in enumerate(letters):
        mixer = letter_map[c]
        stage: dict[str, Any] = {"mixer": mixer}
        for name, col in columns.items():
            applies = name in ("depth", "dim") or mixer in STAGE_FIELDS_BY_MIXER[name]
            if applies and col[i] is not None:
                stage[name] = col[i]
        stages.append(stage)
    return stages


# -- whole genome ---------------------------------------------------------------------------------
def parse_genome(doc: Any, **overrides: Any) -> Genome:
    """Validate ``doc`` (a mapping, either spelling) and return the canonical :class:`Genome`.

    ``overrides`` replace top-level fields before validation (the CLI's ``--image-size``).
    """
    if isinstance(doc, Genome):
        doc = doc.to_dict()
    if not isinstance(doc, Mapping):
        got = "an empty document" if doc is None else type(doc).__name__
        raise GenomeError(f"a genome must be a mapping of fields, got {got}")
    doc = {k: v for k, v in doc.items() if k not in IGNORED_KEYS}
    doc.update({k: v for k, v in overrides.items() if v is not None})
    known = GENOME_FIELDS + SHORTHAND_FIELDS + PER_STAGE_SHORTHAND
    _check_keys("genome", doc, known)
    if "layout" in doc:
        doc["stages"] = _expand_shorthand(doc)
    else:
        stray = [k for k in SHORTHAND_FIELDS + PER_STAGE_SHORTHAND if k in doc]
        if stray:
            raise GenomeError(f"{stray[0]} is a shorthand field and needs layout (or write it inside each stage)")
    raw_stages = doc.get("stages")
    if raw_stages is None:
        raise GenomeError("stages is missing: give a list of stages or a layout such as 'A' or 'C-C-T-T'")
    if not isinstance(raw_stages, (list, tuple)) or not raw_stages:
        raise GenomeError(f"stages must be a non-empty list, got {raw_stages!r}")
    stages = tuple(_parse_stage(i, s) for i, s in enumerate(raw_stages))

    stem = _choice("stem", doc.get("stem", "patch"), "stem")
    # Only attention mixes the spatial tokens into the cls token; stages after the last attention stage
    # pass it through (shift, MBConv leave it alone), so their features would never reach the head.
    reads_cls = stages[-1].mixer in ATTENTION_MIXERS
    fields: dict[str, Any] = {
        "stages": stages,
        "image_size": _int("image_size", doc.get("image_size", 224)),
        "in_channels": _int("in_channels", doc.get("in_channels", 3)),
        "num_classes": _int("num_classes", doc.get("num_classes", 1000), minimum=2),
        "stem": stem,
        "pool": _choice("pool", doc.get("pool", "cls" if len(stages) == 1 and reads_cls else "mean"), "pool"),
        "position": _choice("position", doc.get("position", "absolute"), "position"),
        "downsample": _choice("downsample", doc.get("downsample", "merge" if stem == "patch" else "pool"), "downsample"),
        "qkv_bias": _bool("qkv_bias", doc.get("qkv_bias", True)),
    }
    if fields["pool"] == "cls" and not reads_cls:
        raise GenomeError(
            f"pool 'cls' needs the last stage to be attention or reattention, got stages[{len(stages) - 1}].mixer "
            f"{stages[-1].mixer!r} (only attention writes the image into the cls token); use pool: mean"
        )
    drop_path = _float("drop_path", doc.get("drop_path", 0.0))
    if not 0 <= drop_path < 1:
        raise GenomeError(f"drop_path must be in [0, 1), got {drop_path:g}")
    fields["drop_path"] = drop_path
    hidden = doc.get("head_hidden")
    fields["head_hidden"] = _int("head_hidden", hidden) if hidden is not None else None
    eps = doc.get("norm_eps")
    if eps is not None:
        eps = _positive("norm_eps", eps)
        if eps >= 0.1:
            raise GenomeError(f"norm_eps must be in (0, 0.1), got {eps:g} (LayerNorm's epsilon; timm's ViTs use 1e-6)")
    fields["norm_eps"] = None if eps is None or eps == DEFAULT_NORM_EPS else eps  # the default is left out
    init = doc.get("init")
    init = None if init is None else _choice("init", init, "init")
    fields["init"] = None if init == "nas" else init  # nas is the default: left out of the document
    if stem == "patch":
        for name in ("stem_dim", "stem_stride"):
            if doc.get(name) is not None:
                raise GenomeError(f"{name} applies to stem: conv only (this genome has stem: patch)")
        fields["patch_size"] = _int("patch_size", doc.get("patch_size", 16))
        fields["patch_norm"] = _bool("patch_norm", doc.get("patch_norm", False))
        fields["stem_dim"] = fields["stem_stride"] = None
        total = fields["patch_size"] * 2 ** (len(stages) - 1)
        how = f"patch_size {fields['patch_size']} x 2^{len(stages) - 1} stage reductions"
    else:
        for name in ("patch_size", "patch_norm"):
            if doc.get(name) is not None:
                raise GenomeError(f"{name} applies to stem: patch only (this genome has stem: conv)")
        fields["patch_size"] = fields["patch_norm"] = None
        fields["stem_dim"] = _int("stem_dim", doc.get("stem_dim", stages[0].dim))
        fields["stem_stride"] = _int("stem_stride", doc.get("stem_stride", 2))
        if fields["stem_stride"] not in (1, 2):
            raise GenomeError(f"stem_stride must be 1 or 2, got {fields['stem_stride']}")
        total = fields["stem_stride"] * 2 ** len(stages)
        how = f"stem_stride {fields['stem_stride']} x 2^{len(stages)} stage reductions"
    if fields["image_size"] % total:
        raise GenomeError(
            f"image_size {fields['image_size']} is not divisible by the total downsampling {total} ({how})"
        )
    return Genome(**fields)
