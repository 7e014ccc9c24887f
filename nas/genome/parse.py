"""Turn a user document (dict, YAML, JSON; explicit stages or layout shorthand) into a :class:`Genome`.

This is the one place where genomes are validated. Every rejection is a :class:`GenomeError` whose
message names the field, the value and what is allowed.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from nas.errors import GenomeError, closest
from nas.fields import INT32_MAX, choice, flag, integer, plain_tree, real, show
from nas.genome.schema import GENOME_FIELDS, STAGE_FIELDS, Genome, Stage
from nas.mixers import (
    DEFAULT_TRANSFORMER_MIXER,
    attention_mixers,
    load_plugins,
    mixer_letters,
    mixer_spec,
    parse_plugin_list,
    stage_field_names,
)

__all__ = ["parse_genome", "layout_letters"]

SHORTHAND_FIELDS = ("layout", "depths", "dims", "transformer_mixer")
# Top-level keys that carry information about a genome but are not part of it (export metadata).
IGNORED_KEYS = ("metadata", "name", "description")
CHOICES = {
    "stem": ("patch", "conv"),
    "pool": ("cls", "mean"),
    "position": ("absolute", "relative", "none"),
    "downsample": ("merge", "pool"),
    "init": ("nas", "vit", "shiftvit", "coatnet"),
}
# LayerNorm's epsilon when a genome names none: PyTorch's default; written out only when it differs.
DEFAULT_NORM_EPS = 1e-5


# -- scalar coercion (the rules are nas.fields'; here only the genome's ranges) -------------------------
MAX_SIZE = INT32_MAX  # sides, widths, depths, classes: the size guard refuses far smaller networks first
MAX_RATIO = 1e12  # mlp_ratio, expansion: past this the size arithmetic itself overflows


def _int(where: str, value: Any, minimum: int = 1) -> int:
    return integer(where, value, minimum=minimum, cap=MAX_SIZE, error=GenomeError)


def _float(where: str, value: Any, minimum: float | None = None, maximum: float | None = None, *,
           low_open: bool = False, high_open: bool = False) -> float:
    """A finite number; fractions such as ``"1/12"`` are accepted because the papers write ratios that way."""
    return real(where, value, minimum=minimum, maximum=maximum, low_open=low_open, high_open=high_open,
                cap=MAX_RATIO, text=True, error=GenomeError)


def _positive(where: str, value: Any) -> float:
    return _float(where, value, 0, low_open=True)


def _choice(where: str, value: Any, name: str) -> str:
    return choice(where, value, CHOICES[name], error=GenomeError)


def _bool(where: str, value: Any) -> bool:
    return flag(where, value, error=GenomeError)


def _mixer(where: str, value: Any) -> str:
    return mixer_spec(value, where).name


def per_stage_shorthand() -> tuple[str, ...]:
    """Stage fields the layout shorthand takes as a scalar or a per-stage list: every declared mixer field."""
    return stage_field_names()


_LAYOUT = re.compile(r"^[A-Za-z](?:[-_ ]?[A-Za-z])*$")
LAYOUT_HELP = "one letter per stage, such as 'C-C-T-T'"


def layout_letters(layout: Any, where: str = "layout") -> list[str]:
    """``'C-C-T-T'`` -> ``['C', 'C', 'T', 'T']``: letters, each pair separated by at most one ``-``, ``_`` or space.

    ``'C--T'`` or ``'C-T-'`` is refused rather than read as ``'C-T'``: a stage is missing or a letter mistyped.
    """
    if not isinstance(layout, str) or not layout.strip():
        raise GenomeError(f"{where} must be a string such as 'C-C-T-T', got {show(layout)}")
    if not _LAYOUT.match(layout.strip()):
        raise GenomeError(f"{where} {show(layout)} is not a layout: write {LAYOUT_HELP} (letters "
                          f"{', '.join(sorted(mixer_letters()))}, T, each pair separated by one '-')")
    return [c for c in layout.strip().upper() if c not in "-_ "]


def _check_keys(where: str, doc: Mapping[str, Any], known: tuple[str, ...]) -> None:
    for key in doc:
        if key not in known:
            raise GenomeError(f"unknown key {show(key)} in {where}{closest(str(key), known)}; known: {', '.join(known)}")


# -- stages ---------------------------------------------------------------------------------------
def _parse_stage(i: int, doc: Any) -> Stage:
    where = f"stages[{i}]"
    if not isinstance(doc, Mapping):
        raise GenomeError(f"{where} must be a mapping such as {{mixer: attention, depth: 2, dim: 64}}, got {show(doc)}")
    if "mixer" not in doc:
        raise GenomeError(f"{where}.mixer is missing")
    spec = mixer_spec(doc["mixer"], f"{where}.mixer")
    _check_keys(where, doc, STAGE_FIELDS + tuple(f for f in stage_field_names() if f not in STAGE_FIELDS))
    for required in ("depth", "dim"):
        if required not in doc:
            raise GenomeError(f"{where}.{required} is missing")
    depth = _int(f"{where}.depth", doc["depth"])
    dim = _int(f"{where}.dim", doc["dim"])
    values: dict[str, Any] = {}
    options: dict[str, Any] = {}
    for f in spec.all_fields:  # a field this mixer does not take is dropped (both spellings: one genome)
        value = f.parse(f"{where}.{f.name}", doc.get(f.name), dim)
        (values if f.name in STAGE_FIELDS else options)[f.name] = value
    return Stage(mixer=spec.name, depth=depth, dim=dim, **values, options=tuple(sorted(options.items())))


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
    letters = layout_letters(layout)
    t_mixer = choice("transformer_mixer", doc.pop("transformer_mixer", DEFAULT_TRANSFORMER_MIXER),
                     sorted(attention_mixers()), error=GenomeError)
    letter_map = {**mixer_letters(), "T": t_mixer}
    for c in letters:
        if c not in letter_map:
            raise GenomeError(f"layout {show(layout)}: unknown letter {c!r}; allowed: {letter_help()}")
    n = len(letters)
    for required in ("depths", "dims"):
        if required not in doc:
            raise GenomeError(f"layout needs {required}: a list of {n} values")
    columns = {"depth": _per_stage("depths", doc.pop("depths"), n), "dim": _per_stage("dims", doc.pop("dims"), n)}
    for name in per_stage_shorthand():
        if name in doc:
            columns[name] = _per_stage(name, doc.pop(name), n)
    stages = []
    for i, c in enumerate(letters):
        mixer = letter_map[c]
        stage: dict[str, Any] = {"mixer": mixer}
        for name, col in columns.items():
            applies = name in ("depth", "dim") or name in mixer_spec(mixer).field_names
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
    doc = {k: plain_tree(v) for k, v in doc.items() if k not in IGNORED_KEYS}  # numpy scalars count as numbers
    doc.update({k: v for k, v in overrides.items() if v is not None})
    # Plugins first: the mixers they declare are what the rest of the document may name.
    load_plugins(parse_plugin_list("plugins", doc.get("plugins")), where="genome plugins")
    shorthand = per_stage_shorthand()
    known = GENOME_FIELDS + SHORTHAND_FIELDS + shorthand
    _check_keys("genome", doc, known)
    if "layout" in doc:
        doc["stages"] = _expand_shorthand(doc)
    else:
        stray = [k for k in SHORTHAND_FIELDS + shorthand if k in doc]
        if stray:
            raise GenomeError(f"{stray[0]} is a shorthand field and needs layout (or write it inside each stage)")
    raw_stages = doc.get("stages")
    if raw_stages is None:
        raise GenomeError("stages is missing: give a list of stages or a layout such as 'A' or 'C-C-T-T'")
    if not isinstance(raw_stages, (list, tuple)) or not raw_stages:
        raise GenomeError(f"stages must be a non-empty list, got {show(raw_stages)}")
    stages = tuple(_parse_stage(i, s) for i, s in enumerate(raw_stages))

    stem = _choice("stem", doc.get("stem", "patch"), "stem")
    # Only attention mixes the spatial tokens into the cls token; stages after the last attention stage
    # pass it through (shift, MBConv leave it alone), so their features would never reach the head.
    reads_cls = mixer_spec(stages[-1].mixer).attention
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
            f"pool 'cls' needs the last stage to be {' or '.join(sorted(attention_mixers()))}, got "
            f"stages[{len(stages) - 1}].mixer "
            f"{stages[-1].mixer!r} (only attention writes the image into the cls token); use pool: mean"
        )
    fields["drop_path"] = _float("drop_path", doc.get("drop_path", 0.0), 0, 1, high_open=True)
    hidden = doc.get("head_hidden")
    fields["head_hidden"] = _int("head_hidden", hidden) if hidden is not None else None
    eps = doc.get("norm_eps")
    if eps is not None:  # LayerNorm's epsilon; timm's ViTs use 1e-6
        eps = _float("norm_eps", eps, 0, 0.1, low_open=True, high_open=True)
    fields["norm_eps"] = None if eps is None or eps == DEFAULT_NORM_EPS else eps  # the default is left out
    overlap = _bool("overlap", doc.get("overlap", False))
    fields["overlap"] = overlap or None  # False is the default: left out of the document
    scale = doc.get("layer_scale")
    fields["layer_scale"] = None if scale is None else _float("layer_scale", scale, 0, 1, low_open=True)
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
            raise GenomeError(f"stem_stride must be 1 or 2, got {fields['stem_stride']:,}")
        total = fields["stem_stride"] * 2 ** len(stages)
        how = f"stem_stride {fields['stem_stride']} x 2^{len(stages)} stage reductions"
    if fields["image_size"] % total:
        raise GenomeError(
            f"image_size {fields['image_size']} is not divisible by the total downsampling {total} ({how})"
        )
    # The modules that declare the stages' plugin mixers, whatever the document named: one network, one key.
    plugins = sorted({p for p in (mixer_spec(s.mixer).plugin for s in stages) if p is not None})
    fields["plugins"] = tuple(plugins) or None
    return Genome(**fields)


def letter_help() -> str:
    """``C (conv), A (attention), ..., T (transformer_mixer)`` for messages."""
    return ", ".join(f"{letter} ({name})" for letter, name in mixer_letters().items()) + ", T (transformer_mixer)"
