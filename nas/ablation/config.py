"""Ablation configs (``studies/ablations/*.yaml``): one base genome, axes of overrides, seeds, budget.

An ablation is a grid: every level of every axis is crossed with every other (``axes`` move one
genome field, ``paired`` axes move several fields together, e.g. depth against MLP ratio at
comparable FLOPs), explicit ``variants`` are appended, and every variant is trained once per seed.
Overrides address genome fields:

- ``stages.2.mixer`` - one stage's field; ``stages.*.depth`` - every stage (a list value gives one
  entry per stage);
- ``position``, ``image_size``, ... - a top-level field;
- ``layout`` - a whole layout string such as ``C-C-T-T`` applied to the base's stages, ``T`` being the
  base's transformer mixer (CoAtNet's layout study).

Every variant is validated by re-parsing it with :func:`nas.genome.parse_genome`, so an impossible
combination is an error naming the variant before anything trains.
"""
from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml

from nas.ablation.claims import Claim, parse_claims
from nas.errors import ConfigError, GenomeError, closest
from nas.genome import load_genome, parse_genome
from nas.genome.schema import GENOME_FIELDS, STAGE_FIELDS
from nas.mixers import (DEFAULT_TRANSFORMER_MIXER, attention_mixers, letter_of, load_plugins, mixer_letters,
                        mixer_spec, mixers_with_field, parse_plugin_list, stage_field_names)
from nas.fields import SEED_MAX, plain, show
from nas.genome.io import load_yaml, read_document
from nas.genome.parse import layout_letters
from nas.config_validation import NAME, Validator
from nas.search.config import apply_overrides

__all__ = ["AblationConfig", "Variant", "Cell", "load_ablation_config", "apply_genome_overrides", "FIELDS"]

FIELDS = ("name", "description", "plugins", "base", "axes", "paired", "variants", "baseline", "seeds", "data", "budget",
          "resources", "max_concurrent", "ray_address", "collapse", "claims")
AXIS_KEYS = ("field", "values", "labels")
PAIRED_KEYS = ("fields", "values", "labels")
VARIANT_KEYS = ("name", "set", "base")
TOP_FIELDS = tuple(f for f in GENOME_FIELDS if f not in ("stages", "plugins"))
# Head width used to pick ``heads`` for a stage that becomes attention and had none: the base's own
# attention stages' head width, else 32 (DeepViT's and CoAtNet's head dim).
DEFAULT_HEAD_DIM = 32
DEFAULT_SEEDS = (0, 1, 2)
MAX_SEEDS = 1000  # trainings per variant


@dataclass(frozen=True)
class Variant:
    """One row of the table: overrides applied to a base, and the validated genome document."""

    name: str
    overrides: tuple[tuple[str, Any], ...]  # (field path, value), in the order written
    genome: dict[str, Any]  # canonical genome document (data channels/classes fitted by the runner)


@dataclass(frozen=True)
class Cell:
    """One training: a variant at one seed. ``key`` (genome key + seed) identifies it across restarts."""

    variant: str
    seed: int
    genome: dict[str, Any]
    key: str

    @property
    def genome_key(self) -> str:
        return self.key.rsplit("-s", 1)[0]


@dataclass(frozen=True)
class AblationConfig:
    """A validated ablation. Build it with :func:`load_ablation_config` or :meth:`from_dict`."""

    name: str
    base: dict[str, Any]  # canonical base genome document
    variants: tuple[Variant, ...]
    baseline: str  # name of the variant every Δ is taken against
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    data: str = "mnist5k"
    budget: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields, as in a study
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})  # per cell
    max_concurrent: int = 1
    ray_address: str | None = None
    collapse: bool = False  # measure DeepViT's attention collapse after training (attention variants)
    description: str = ""
    claims: tuple[Claim, ...] = ()  # what the paper says about the variants, judged from the cells
    plugins: tuple[str, ...] = ()  # modules that declare mixers the variants use

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  label: str = "ablation config") -> "AblationConfig":
        return _AblationValidator(label, base_dir).build(doc)

    def variant(self, name: str) -> Variant:
        return next(v for v in self.variants if v.name == name)

    def cells(self, in_channels: int | None = None, num_classes: int | None = None) -> list[Cell]:
        """Every variant x seed, seed-major: a partial run already holds whole seeds of the table."""
        out = []
        for seed in self.seeds:
            for v in self.variants:
                genome = parse_genome(v.genome, in_channels=in_channels, num_classes=num_classes)
                out.append(Cell(v.name, seed, genome.to_dict(), f"{genome.key}-s{seed}"))
        return out

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as stored in the ablation directory."""
        return {
            "name": self.name, "description": self.description,
            **({"plugins": list(self.plugins)} if self.plugins else {}), "base": self.base,
            "variants": [{"name": v.name, "set": {k: val for k, val in v.overrides}} for v in self.variants],
            "baseline": self.baseline, "seeds": list(self.seeds), "data": self.data, "budget": dict(self.budget),
            "resources": dict(self.resources), "max_concurrent": self.max_concurrent,
            "ray_address": self.ray_address, "collapse": self.collapse,
            **({"claims": [c.to_dict() for c in self.claims]} if self.claims else {}),
        }


# -- loading ----------------------------------------------------------------------------------------
def load_ablation_config(path: str | Path, overrides: Sequence[str] = ()) -> AblationConfig:
    """Read an ablation file, apply ``--set key.sub=value`` overrides, validate and expand it."""
    from nas.paths import check_input_file

    path = check_input_file(path, "ablation config")
    doc = read_document(path, error=ConfigError)
    doc = {} if doc is None else doc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: an ablation config must be a mapping of keys, got {type(doc).__name__}")
    for item in overrides:
        key = str(item).partition("=")[0].split(".")[0].strip()
        if key and key not in FIELDS:
            raise ConfigError(f"{path.name}: unknown key {key!r} in ablation config{closest(key, FIELDS)} "
                              f"(from --set {item})")
    doc = apply_overrides(doc, overrides)
    doc.setdefault("name", path.stem)
    return AblationConfig.from_dict(doc, base_dir=path.parent, label=path.name)


# -- genome overrides -------------------------------------------------------------------------------
def _head_dim(doc: Mapping[str, Any]) -> int:
    for s in doc["stages"]:
        if mixer_spec(s["mixer"]).attention and s.get("heads"):
            return max(1, int(s["dim"]) // int(s["heads"]))
    return DEFAULT_HEAD_DIM


def _transformer_mixer(doc: Mapping[str, Any]) -> str:
    return next((s["mixer"] for s in doc["stages"] if mixer_spec(s["mixer"]).attention), DEFAULT_TRANSFORMER_MIXER)


def _stage_targets(path: str, index: str, n: int) -> list[int]:
    if index == "*":
        return list(range(n))
    if not index.isdigit() or int(index) >= n:
        raise ConfigError(f"{path}: the base has {n} stage(s): stages.0 .. stages.{n - 1}, or stages.* for all")
    return [int(index)]


def _set_one(doc: dict[str, Any], path: str, value: Any, t_mixer: str) -> None:
    """Apply one override to a canonical genome document (explicit stages) in place."""
    stages = doc["stages"]
    if path == "layout":
        try:
            letters = layout_letters(value)
        except GenomeError as exc:
            raise ConfigError(str(exc)) from None
        letter_map = {**mixer_letters(), "T": t_mixer}
        if len(letters) != len(stages) or any(c not in letter_map for c in letters):
            raise ConfigError(f"layout {show(value)} must have one letter of {', '.join(letter_map)} per stage of the "
                              f"base "
                              f"({len(stages)} stages, base layout {'-'.join(_letters(doc))})")
        for stage, c in zip(stages, letters):
            stage["mixer"] = letter_map[c]
        return
    parts = path.split(".")
    if parts[0] == "stages":
        if len(parts) != 3:
            raise ConfigError(f"{path}: stage fields are addressed as stages.N.FIELD or stages.*.FIELD")
        targets = _stage_targets(path, parts[1], len(stages))
        name = parts[2]
        known = STAGE_FIELDS + tuple(f for f in stage_field_names() if f not in STAGE_FIELDS)
        if name not in known:
            raise ConfigError(f"{path}: unknown stage field {show(name)}{closest(name, known)}; "
                              f"stage fields: {', '.join(known)}")
        if isinstance(value, (list, tuple)):
            if parts[1] != "*" or len(value) != len(stages):
                raise ConfigError(f"{path}: a list value needs stages.* and one entry per stage "
                                  f"({len(stages)}), got {show(list(value))}")
            values = list(value)
        else:
            values = [value] * len(stages)
        for i in targets:
            stages[i][name] = values[i]
        return
    if path not in TOP_FIELDS:
        known = (*TOP_FIELDS, "layout", "stages.N.FIELD", "stages.*.FIELD")
        raise ConfigError(f"unknown genome field {show(path)}{closest(path, (*TOP_FIELDS, 'layout'))}; "
                          f"fields: {', '.join(known)}")
    doc[path] = value


def _letters(doc: Mapping[str, Any]) -> list[str]:
    return [letter_of(s["mixer"]) for s in doc["stages"]]


def _check_applies(doc: Mapping[str, Any], path: str) -> None:
    """A stage option that applies to none of its targets would be dropped silently: say so."""
    parts = path.split(".")
    if parts[0] != "stages" or parts[2] in ("mixer", "depth", "dim"):
        return
    name, stages = parts[2], doc["stages"]
    targets = _stage_targets(path, parts[1], len(stages))
    if not any(stages[i]["mixer"] in mixers_with_field(name) for i in targets):
        mixers = ", ".join(sorted({stages[i]["mixer"] for i in targets}))
        raise ConfigError(f"{path} does not apply to the mixer of the stage(s) it names ({mixers}); "
                          f"{name} applies to: {', '.join(sorted(mixers_with_field(name)))}")


def apply_genome_overrides(base: Mapping[str, Any], overrides: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """The canonical genome document of ``base`` with ``overrides`` applied and re-validated.

    Mixer changes (``layout``, ``stages.N.mixer``) apply first, so ``{layout: C-T-T-T,
    stages.*.heads: 2}`` reads as written whatever its order. A stage that becomes attention without
    ``heads`` keeps the base's head width (or 32), instead of the parser's one-head default.
    """
    doc = copy.deepcopy(parse_genome(base).to_dict())
    t_mixer, head_dim = _transformer_mixer(doc), _head_dim(doc)
    was_attention = [mixer_spec(s["mixer"]).attention for s in doc["stages"]]
    first = [o for o in overrides if o[0] == "layout" or o[0].endswith(".mixer")]
    for path, value in first + [o for o in overrides if o not in first]:
        _set_one(doc, path, value, t_mixer)
    explicit = any(p.startswith("stages.") and p.endswith(".heads") for p, _ in overrides)
    for stage, before in zip(doc["stages"], was_attention):
        if mixer_spec(stage["mixer"]).attention and "heads" in mixer_spec(stage["mixer"]).field_names \
                and not before and not explicit:
            stage["heads"] = max(1, int(stage["dim"]) // head_dim)
    for path, _ in overrides:
        _check_applies(doc, path)
    try:
        return parse_genome(doc).to_dict()
    except GenomeError as exc:
        raise ConfigError(str(exc)) from None


# -- values and names -------------------------------------------------------------------------------
def _norm(value: Any) -> Any:
    """Comparable form of an override value: '1/12' == 0.0833.. == 1/12, lists element-wise."""
    if isinstance(value, (list, tuple)):
        return tuple(_norm(v) for v in value)
    if isinstance(value, bool) or value is None:
        return value
    try:
        if isinstance(value, (int, float)):
            return round(float(value), 12)
        return round(float(Fraction(str(value).strip())), 12)
    except OverflowError:  # a 401-digit value is compared as it is
        return value
    except (ValueError, ZeroDivisionError):
        return str(value)


def _yaml_value(raw: str) -> Any:
    """A ``field=value`` value as YAML reads it, or the text itself when it is no YAML."""
    try:
        return load_yaml(raw) if raw.strip() else None
    except yaml.YAMLError:
        return raw.strip()


def _show(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "-".join(_show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return show(value) if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _level_name(short: str, value: Any) -> str:
    """``depth=12``; a layout names itself (``C-C-T-T``)."""
    return _show(value) if short == "layout" else f"{short}={_show(value)}"


def _short_names(paths: Sequence[str]) -> dict[str, str]:
    """``stages.*.depth`` -> ``depth`` unless two axes would share that short name."""
    short = {p: p.split(".")[-1] for p in paths}
    counts: dict[str, int] = {}
    for s in short.values():
        counts[s] = counts.get(s, 0) + 1
    return {p: (s if counts[s] == 1 else p) for p, s in short.items()}


# -- validation -------------------------------------------------------------------------------------
Level = tuple[str | None, tuple[tuple[str, Any], ...]]  # (explicit label or None, overrides)


class _AblationValidator(Validator):
    """The study validator's field checks (data, budget, resources, ...) plus axes and variants."""

    def build(self, raw: Mapping[str, Any]) -> AblationConfig:
        doc = self.mapping("ablation config", raw, FIELDS)
        name = doc.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise self.error(f"name must be letters, digits, '_', '.' or '-' (it names a directory), got {show(name)}")
        plugins = parse_plugin_list(f"{self.label}: plugins", doc.get("plugins"), error=ConfigError)
        load_plugins(plugins, where=self.label, error=ConfigError)
        if doc.get("base") is None:
            raise self.error("base is missing: a preset name, a genome file or an inline genome mapping")
        base = self.genome("base", doc["base"])
        axes = [self.axis(f"axes[{i}]", a, AXIS_KEYS) for i, a in enumerate(self.items("axes", doc.get("axes")))]
        paired = self.items("paired", doc.get("paired"))
        axes += [self.axis(f"paired[{i}]", a, PAIRED_KEYS) for i, a in enumerate(paired)]
        variants = self.grid(base, axes) + [self.explicit(i, v, base) for i, v in
                                            enumerate(self.items("variants", doc.get("variants")))]
        if not variants:
            raise self.error("no variants: give axes, paired axes or variants")
        names = [v.name for v in variants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise self.error(f"variant names must be unique, {dupes[0]!r} appears {names.count(dupes[0])} times; "
                             f"name variants with name: or labels:")
        seen: dict[str, str] = {}
        for v in variants:
            key = json.dumps(v.genome, sort_keys=True)
            if key in seen:
                raise self.error(f"variants {seen[key]!r} and {v.name!r} describe the same network; each network "
                                 f"is trained once per seed, so keep one of them")
            seen[key] = v.name
        collapse = doc.get("collapse", "auto")
        if collapse == "auto" or collapse is None:
            collapse = any(s["mixer"] in attention_mixers() for v in variants for s in v.genome["stages"])
        elif not isinstance(collapse, bool):
            raise self.error(f"collapse must be auto, true or false, got {show(collapse)}")
        description = doc.get("description") or ""
        return AblationConfig(
            name=name, base=base, variants=tuple(variants), baseline=self.baseline(doc.get("baseline"), variants),
            seeds=self.seeds(doc.get("seeds", list(DEFAULT_SEEDS))), data=self.data(doc.get("data", "mnist5k")),
            budget=self.budget(doc.get("budget")), resources=self.resources(doc.get("resources")),
            max_concurrent=self.number("max_concurrent", doc.get("max_concurrent", 1), minimum=1, strict=False,
                                       integer=True),
            ray_address=self.ray_address(doc.get("ray_address")), collapse=collapse, description=str(description),
            claims=parse_claims(doc.get("claims"), [v.name for v in variants], self.label), plugins=plugins,
        )

    # -- parts -------------------------------------------------------------------------------------
    def items(self, where: str, value: Any) -> list[Any]:
        if value is None:
            return []
        if not isinstance(value, (list, tuple)):
            raise self.error(f"{where} must be a list, got {show(value)}")
        return list(value)

    def genome(self, where: str, spec: Any) -> dict[str, Any]:
        if isinstance(spec, str) and self.base_dir is not None and (self.base_dir / spec).is_file():
            spec = self.base_dir / spec
        try:
            return load_genome(spec).to_dict()
        except GenomeError as exc:
            raise self.error(f"{where}: {exc}") from None

    def axis(self, where: str, raw: Any, keys: tuple[str, ...]) -> list[Level]:
        doc = self.mapping(where, raw, keys)
        paths_key = keys[0]
        if paths_key not in doc or "values" not in doc:
            raise self.error(f"{where} needs {paths_key} and values, e.g. "
                             + ("{field: stages.*.depth, values: [4, 8]}" if paths_key == "field" else
                                "{fields: [stages.*.depth, stages.*.mlp_ratio], values: [[12, 2], [6, 4]]}"))
        paths = [doc["field"]] if paths_key == "field" else doc["fields"]
        if not isinstance(paths, (list, tuple)) or not paths or not all(isinstance(p, str) and p for p in paths):
            raise self.error(f"{where}.{paths_key} must name genome fields such as stages.*.depth, got {show(paths)}")
        values = self.items(f"{where}.values", doc["values"])
        if not values:
            raise self.error(f"{where}.values is empty")
        labels = self.items(f"{where}.labels", doc.get("labels"))
        if labels and len(labels) != len(values):
            raise self.error(f"{where}.labels has {len(labels)} entries for {len(values)} values")
        levels: list[Level] = []
        for j, value in enumerate(values):
            if paths_key == "fields":
                if not isinstance(value, (list, tuple)) or len(value) != len(paths):
                    raise self.error(f"{where}.values[{j}] must list one value per field ({len(paths)}), "
                                     f"got {show(value)}")
                pairs = tuple(zip(paths, value))
            else:
                pairs = ((paths[0], value),)
            levels.append((str(labels[j]) if labels else None, pairs))
        return levels

    def grid(self, base: dict[str, Any], axes: list[list[Level]]) -> list[Variant]:
        if not axes:
            return []
        short = _short_names([p for levels in axes for p, _ in levels[0][1]])
        out = []
        for combo in itertools.product(*axes):
            overrides = tuple(pair for _, pairs in combo for pair in pairs)
            name = ", ".join(label if label is not None else ",".join(_level_name(short[p], v) for p, v in pairs)
                             for label, pairs in combo)
            out.append(self.variant(name, base, overrides))
        return out

    def explicit(self, i: int, raw: Any, base: dict[str, Any]) -> Variant:
        doc = self.mapping(f"variants[{i}]", raw, VARIANT_KEYS)
        name = doc.get("name")
        if not isinstance(name, str) or not name.strip():
            raise self.error(f"variants[{i}] needs a name, e.g. {{name: C-C-T-T, set: {{layout: C-C-T-T}}}}")
        own = self.genome(f"variants[{i}].base", doc["base"]) if doc.get("base") is not None else base
        overrides = tuple(self.mapping(f"variants[{i}].set", doc.get("set")).items())
        return self.variant(name.strip(), own, overrides)

    def variant(self, name: str, base: dict[str, Any], overrides: tuple[tuple[str, Any], ...]) -> Variant:
        try:
            genome = apply_genome_overrides(base, overrides)
        except ConfigError as exc:
            raise self.error(f"variant {show(name)}: {exc}") from None
        return Variant(name=name, overrides=overrides, genome=genome)

    def baseline(self, value: Any, variants: list[Variant]) -> str:
        """A variant name, or ``field=value[, field=value]`` matching exactly one variant's overrides."""
        if value is None:
            return variants[0].name
        text = str(value).strip()
        if any(v.name == text for v in variants):
            return text
        wanted = []
        for part in text.split(","):
            path, sep, raw = part.partition("=")
            if not sep:
                wanted = []
                break
            wanted.append((path.strip(), _norm(_yaml_value(raw))))
        matches = [v for v in variants if wanted and
                   all(any(p == path and _norm(val) == want for p, val in v.overrides) for path, want in wanted)]
        if len(matches) != 1:
            what = "matches no variant" if not matches else f"matches {len(matches)} variants"
            names = ", ".join(repr(v.name) for v in variants)
            raise self.error(f"baseline {show(text)} {what}; give a variant name ({names}) or field=value pairs that "
                             f"pick one")
        return matches[0].name

    def seeds(self, value: Any) -> tuple[int, ...]:
        value = plain(value)
        if isinstance(value, int) and not isinstance(value, bool):
            value = list(range(self.number("seeds", value, minimum=1, strict=False, integer=True, cap=MAX_SEEDS)))
        seeds = [self.number(f"seeds[{i}]", s, minimum=0, strict=False, integer=True, maximum=SEED_MAX)
                 for i, s in enumerate(self.items("seeds", value))]
        if not seeds or len(set(seeds)) != len(seeds) or len(seeds) > MAX_SEEDS:
            raise self.error(f"seeds must be a non-empty list of at most {MAX_SEEDS:,} distinct integers (or a count), "
                             f"got {show(value)}")
        return tuple(seeds)
