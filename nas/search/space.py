"""Declarative search spaces: a YAML file that turns an Optuna trial into a valid genome.

A space file has these top-level keys (only ``stage`` and one of ``num_stages``/``layout`` are required)::

    name: vit_family                 # default: the file's stem
    description: ...                 # free text
    fixed: {image_size: 32, ...}     # top-level genome fields held constant
    global: {position: {choices: [absolute, relative]}}   # top-level genome fields searched over
    num_stages: {choices: [1, 2, 3, 4]}                  # or a constant: num_stages: 1
    layout: {choices: [C-C-T-T, C-T-T-T]}                # instead of num_stages: letters fix the mixers
    transformer_mixer: attention     # what T means in a layout (constant or choices; default attention)
    stage:                           # per-stage parameters
      mixer: {choices: [attention, reattention, shift, conv]}   # not with layout
      depth: {int: [1, 3]}
      dim: {choices: [24, 32, 48]}
      dim_growth: {choices: [1, 2]}  # optional: dim is then stage 0's width, each later stage x growth
      heads: {choices: [1, 2, 4]}
      mlp_ratio: {choices: [2, 3, 4], tied: true}
      shift_ratio: {float: [1/24, 1/4]}
      expansion: 4                   # a plain value is a constant

A parameter is a constant (a plain scalar) or a mapping with exactly one of ``choices: [...]``,
``int: [low, high]`` or ``float: [low, high]``, plus ``step``, ``log: true`` (int/float), ``tied: true``
(stage parameters: one value shared by all stages) and ``when: [mixers]`` (stage parameters: sampled
only for stages with these mixers). A stage parameter may also be a list of such specs, one per stage
(its length is the largest stage count), to give, say, the third stage a deeper range.

Optuna names: stage parameters are ``s{i}.{name}``, tied ones and everything else ``{name}``. Each
name always carries the same distribution, because Optuna's samplers model one distribution per name.
Stage parameters that do not apply to a stage's mixer (heads for shift or conv, shift_ratio outside
shift, expansion outside conv; each mixer's declaration in :mod:`nas.mixers` lists its fields) are never
sampled for it, so a trial's params hold only what shaped its genome.

Why the space is validated at load rather than sampled-then-rejected: rejected trials waste a
sampler's budget and teach it nothing, and a constraint such as ``dim % heads == 0`` cannot be
expressed as independent Optuna distributions. So every value the space can produce is checked once
against the genome validator, and the cross-field rules are checked over all combinations: every dim
a stage can get must be divisible by every heads value it can get (widths come from fixed lists,
and heads stays an independent, interpretable parameter rather than a derived one); every shift
ratio must shift at least one channel of the narrowest dim; the image size must be divisible by the
total downsampling of every possible stage count.

Widths of pyramids: with ``dim_growth``, stage i's width is stage i-1's times a whole-number growth
factor, so widths never shrink (as in ShiftViT and CoAtNet) and stay multiples of the first stage's
width, hence divisible by its heads. Sampling widths independently and sorting them would keep the
same set of networks but make ``s1.dim`` mean different things in different trials, which defeats a
model-based sampler. Without ``dim_growth`` each stage's ``dim`` is sampled independently.
"""
from __future__ import annotations

import itertools
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution

from nas import fields
from nas.errors import ConfigError, GenomeError, closest
from nas.genome.io import read_document
from nas.genome.parse import layout_letters, letter_help, parse_genome
from nas.genome.schema import GENOME_FIELDS, Genome
from nas.mixers import (
    DEFAULT_TRANSFORMER_MIXER,
    attention_mixers,
    load_plugins,
    mixer_letters,
    mixer_names,
    mixers_with_field,
    parse_plugin_list,
    stage_field,
    stage_field_names,
)

__all__ = ["Param", "SearchSpace", "StandInTrial", "load_space"]

SPACE_KEYS = ("name", "description", "plugins", "fixed", "global", "num_stages", "layout", "transformer_mixer",
              "stage")
TOP_FIELDS = tuple(f for f in GENOME_FIELDS if f not in ("stages", "plugins"))
BASE_STAGE_KEYS = ("mixer", "depth", "dim", "dim_growth")


def optional_stage() -> tuple[str, ...]:
    """Stage fields of the declared mixers (heads, mlp_ratio, shift_ratio, ..., and plugins' own)."""
    return stage_field_names()


def stage_keys() -> tuple[str, ...]:
    return BASE_STAGE_KEYS + optional_stage()
SPEC_KEYS = ("choices", "int", "float", "step", "log", "tied", "when")
MAX_FLOAT = 1e12  # a float parameter's bounds: ratios and rates, never near this
_PROBE_DIM = 4096  # width of the stage that probes a value (wide, so that any shift ratio > 1/4096 shifts a channel)


@dataclass(frozen=True)
class Param:
    """One parameter: a constant or an Optuna distribution, plus how stages share and condition it."""

    where: str  # its place in the file, for messages: 'stage.dim', 'global.position', 'stage.depth[2]'
    kind: str  # const | categorical | int | float
    choices: tuple[Any, ...] = ()  # categorical choices; (value,) for a constant
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    tied: bool = False  # stage parameters: one value shared by every stage that uses it
    when: frozenset[str] | None = None  # stage parameters: sampled only for these mixers

    def suggest(self, trial: optuna.trial.BaseTrial, name: str) -> Any:
        if self.kind == "const":
            return self.choices[0]
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, self.low, self.high, step=self.step, log=self.log)

    def distribution(self) -> BaseDistribution | None:
        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        if self.kind == "float":
            return FloatDistribution(self.low, self.high, step=self.step, log=self.log)
        return None

    def values(self) -> list[Any] | None:
        """Every value the parameter can take, or ``None`` for a continuous one."""
        if self.kind in ("const", "categorical"):
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1, int(self.step or 1)))
        return None

    def probe_values(self) -> list[Any]:
        """The values worth validating: all of a finite set, the bounds of a range (genome rules are intervals)."""
        return list(self.choices) if self.kind in ("const", "categorical") else [self.low, self.high]

    def __str__(self) -> str:
        if self.kind == "const":
            return f"= {fields.show(self.choices[0])}"
        if self.kind == "categorical":
            return f"choices {fields.show(list(self.choices))}"
        extra = (f" step {self.step:g}" if self.step else "") + (" log" if self.log else "")
        return f"{self.kind} [{self.low:g}, {self.high:g}]{extra}"


def number(label: str, where: str, value: Any, integer: bool = False) -> float:
    """A finite number; strings such as ``"1/24"`` and ``"5e7"`` (which YAML leaves as text) are accepted."""
    what = f"search space {label}: parameter {where!r}: a bound"
    if integer:
        return fields.integer(what, value, cap=fields.INT32_MAX, text=True, error=ConfigError)
    value = fields.plain(value)
    as_int = isinstance(value, int) and not isinstance(value, bool)
    out = fields.real(what, value, cap=MAX_FLOAT, text=True, error=ConfigError)
    return int(value) if as_int else out


def _choices_hint(items: list[Any]) -> str:
    """What to write instead of a bare list: ``{choices: [...]}`` only when its items are plain values
    (a list of specs such as ``[{int: [1, 2]}]`` would not be valid choices either)."""
    if items and all(isinstance(v, (str, int, float, bool)) and v is not None for v in items):
        return f"for choices write {{choices: {fields.show(items)}}}"
    if len(items) == 1 and isinstance(items[0], Mapping):
        import yaml

        flow = yaml.safe_dump(dict(items[0]), default_flow_style=True, width=10**6).strip()
        return f"for one spec for every stage write it without the list: {flow if len(flow) < 60 else '{...}'}"
    return ("write a constant, {choices: [plain values]}, {int: [low, high]} or {float: [low, high]}, or for a "
            "per-stage list one such entry per stage")


def parse_param(label: str, where: str, raw: Any, *, stage: bool = False, allow_when: bool = False) -> Param:
    """Validate one parameter spec (see the module docstring); errors name ``where``."""

    def fail(message: str) -> ConfigError:
        return ConfigError(f"search space {label}: parameter {where!r}: {message}")

    if isinstance(raw, (list, tuple)):
        raise fail(f"a bare list is not a parameter; {_choices_hint(list(raw))}")
    if not isinstance(raw, Mapping):
        if raw is None or not isinstance(raw, (str, int, float, bool)):
            raise fail(f"expected a constant or a mapping such as {{choices: [...]}}, got {fields.show(raw)}")
        return Param(where, "const", (raw,))
    for key in raw:
        if key not in SPEC_KEYS:
            raise fail(f"unknown key {fields.show(key)}{closest(str(key), SPEC_KEYS)}; allowed: {', '.join(SPEC_KEYS)}")
    kinds = [k for k in ("choices", "int", "float") if k in raw]
    if len(kinds) != 1:
        raise fail(f"give exactly one of choices, int or float; got {', '.join(kinds) or 'none'}")
    kind = kinds[0]
    tied, when = raw.get("tied", False), raw.get("when")
    if "tied" in raw and not stage:
        raise fail("tied applies to stage parameters only")
    if not isinstance(tied, bool):
        raise fail(f"tied must be true or false, got {fields.show(tied)}")
    if when is not None:
        if not allow_when:
            raise fail(f"when applies to {', '.join(optional_stage())} only")
        if not isinstance(when, list) or not when:
            raise fail(f"when must be a non-empty list of mixers, got {fields.show(when)}")
        names = mixer_names()
        for m in when:
            if m not in names:
                raise fail(f"unknown mixer {fields.show(m)} in when{closest(str(m), names)}; "
                           f"allowed: {', '.join(names)}")
        when = frozenset(when)
    common = {"tied": tied, "when": when}
    if kind == "choices":
        choices = raw["choices"]
        for key in ("step", "log"):
            if key in raw:
                raise fail(f"{key} applies to int and float parameters, not choices")
        if not isinstance(choices, list) or not choices:
            raise fail(f"choices must be a non-empty list, got {fields.show(choices)}")
        for c in choices:
            if c is None or not isinstance(c, (str, int, float, bool)):
                raise fail(f"choices must be plain values (numbers, strings, booleans), got {fields.show(c)}")
        if len(set(map(repr, choices))) != len(choices):
            raise fail(f"choices has duplicates: {fields.show(choices)}")
        return Param(where, "categorical", tuple(choices), **common)
    bounds = raw[kind]
    if not isinstance(bounds, list) or len(bounds) != 2:
        raise fail(f"{kind} must be [low, high], got {fields.show(bounds)}")
    is_int = kind == "int"
    low, high = (number(label, where, b, integer=is_int) * (1 if is_int else 1.0) for b in bounds)
    if low > high:
        raise fail(f"low {low:g} > high {high:g}")
    log, step = raw.get("log", False), raw.get("step")
    if not isinstance(log, bool):
        raise fail(f"log must be true or false, got {fields.show(log)}")
    if log and step is not None:
        raise fail("step and log cannot be combined")
    if log and (low < 1 if is_int else low <= 0):
        raise fail(f"log needs low {'>= 1' if is_int else '> 0'}, got {low:g}")
    if step is not None:
        step = number(label, where, step, integer=is_int) * (1 if is_int else 1.0)
        if step <= 0:
            raise fail(f"step must be > 0, got {step:g}")
        spans = (high - low) / step
        if abs(spans - round(spans)) > 1e-9:
            raise fail(f"high - low ({high - low:g}) must be a multiple of step {step:g}")
    return Param(where, kind, low=low, high=high, step=step, log=log, **common)


@dataclass(frozen=True)
class SearchSpace:
    """A validated search space; see the module docstring for the file format."""

    name: str
    label: str  # how messages name the space: the file name, or the name for in-memory documents
    fixed: dict[str, Any]
    globals: dict[str, Param]
    num_stages: Param | None
    layout: Param | None
    transformer_mixer: Param
    stage: dict[str, tuple[Param, ...]]  # one Param per stage index, up to max_stages
    max_stages: int
    description: str = ""
    document: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    plugins: tuple[str, ...] = ()  # modules that declare mixers the space may use

    # -- sampling --------------------------------------------------------------------------------
    def suggest(self, trial: optuna.trial.BaseTrial) -> dict[str, Any]:
        """The genome document for ``trial``; parameters are requested in a fixed order (define-by-run)."""
        doc: dict[str, Any] = dict(self.fixed)
        for name, p in self.globals.items():
            doc[name] = p.suggest(trial, name)
        if self.layout is not None:
            letters = _letters(self.layout.suggest(trial, "layout"))
            t_mixer = self.transformer_mixer.suggest(trial, "transformer_mixer") if "T" in letters else None
            letter_map = mixer_letters()
            mixers: list[str] | None = [t_mixer if c == "T" else letter_map[c] for c in letters]
            n = len(letters)
        else:
            assert self.num_stages is not None
            n, mixers = int(self.num_stages.suggest(trial, "num_stages")), None
        tied: dict[str, Any] = {}

        def value(name: str, i: int) -> Any:
            p = self.stage[name][i]
            if not p.tied:
                return p.suggest(trial, f"s{i}.{name}")
            if name not in tied:  # sampled at first use, so a tied value no stage uses is not sampled
                tied[name] = p.suggest(trial, name)
            return tied[name]

        stages: list[dict[str, Any]] = []
        for i in range(n):
            mixer = mixers[i] if mixers is not None else value("mixer", i)
            stage = {"mixer": mixer, "depth": value("depth", i)}
            if "dim_growth" in self.stage and i > 0:
                stage["dim"] = stages[-1]["dim"] * value("dim_growth", i)
            else:
                stage["dim"] = value("dim", i)
            for name in optional_stage():
                if name in self.stage and _applies(name, self.stage[name][i], mixer):
                    stage[name] = value(name, i)
            stages.append(stage)
        doc["stages"] = stages
        return doc

    def sample(self, trial: optuna.trial.BaseTrial) -> Genome:
        """The genome for ``trial``: ``parse_genome(suggest(trial))``."""
        doc = self.suggest(trial)
        try:
            return parse_genome(doc)
        except GenomeError as exc:  # the load-time checks exist so that this never happens
            raise GenomeError(f"search space {self.label} produced an invalid genome {fields.show(doc)}: {exc}") from None

    def genome_from_params(self, params: Mapping[str, Any]) -> Genome:
        """Rebuild the genome of a stored trial from its params (through ``optuna.trial.FixedTrial``).

        Params the space does not ask for, and values outside the space's distributions, are errors:
        they mean the trial came from a different version of the space.
        """
        known = self.distributions()
        for name, value in params.items():
            dist = known.get(name)
            if dist is not None and not _contains(dist, value):
                raise ConfigError(f"search space {self.label}: stored param {name!r} = {fields.show(value)} is outside this "
                                  f"space's {dist}")
        fixed = optuna.trial.FixedTrial(dict(params))
        try:
            doc = self.suggest(fixed)
        except ValueError as exc:
            raise ConfigError(f"search space {self.label}: stored params do not fit this space: {exc}") from None
        unused = sorted(set(params) - set(fixed.params))
        if unused:
            raise ConfigError(f"search space {self.label}: stored params {', '.join(map(repr, unused))} "
                              f"are not parameters of this trial's network in this space")
        return parse_genome(doc)

    # -- inspection ------------------------------------------------------------------------------
    def distributions(self) -> dict[str, BaseDistribution]:
        """Every Optuna parameter the space can ask for (conditional ones included), by name."""
        return {name: p.distribution() for name, p, _ in self._named_params() if p.kind != "const"}

    def describe(self) -> list[dict[str, str]]:
        """One row per parameter: Optuna name, distribution and when it is sampled (for ``nas`` tables)."""
        rows = [{"param": k, "value": f"= {v!r}", "when": "fixed"} for k, v in self.fixed.items()]
        return rows + [{"param": name, "value": str(p), "when": when} for name, p, when in self._named_params()]

    def mixers_at(self, i: int) -> set[str]:
        """The mixers stage ``i`` can have (empty beyond the largest stage count)."""
        if i >= self.max_stages:
            return set()
        if self.layout is None:
            return set(self.stage["mixer"][i].values() or ())
        out: set[str] = set()
        for v in self.layout.values() or ():
            letters = _letters(v)
            if i < len(letters):
                out |= set(self.transformer_mixer.values() or ()) if letters[i] == "T" else {mixer_letters()[letters[i]]}
        return out

    def _named_params(self) -> list[tuple[str, Param, str]]:
        """(Optuna name, parameter, condition) of everything the space may sample, in suggest order."""
        out = [(name, p, "always") for name, p in self.globals.items()]
        for key in ("num_stages", "layout"):
            if getattr(self, key) is not None:
                out.append((key, getattr(self, key), "always"))
        if self.layout is not None and any("T" in _letters(v) for v in self.layout.values() or ()):
            out.append(("transformer_mixer", self.transformer_mixer, "layout has T"))
        seen: set[str] = set()
        for i in range(self.max_stages):
            mixers = self.mixers_at(i)
            for name, per_stage in self.stage.items():
                p = per_stage[i]
                if name == "dim" and "dim_growth" in self.stage and i > 0 or name == "dim_growth" and i == 0:
                    continue
                when = f"stage {i} exists" if i else "always"
                if name in optional_stage():
                    usable = sorted(m for m in mixers if _applies(name, p, m))
                    if not usable:
                        continue
                    when = f"stage {i} mixer in {usable}"
                full = name if p.tied else f"s{i}.{name}"
                if full not in seen:
                    seen.add(full)
                    out.append((full, p, "any stage uses it" if p.tied else when))
        return out

    def with_fixed(self, **fields: Any) -> "SearchSpace":
        """A re-validated copy with top-level genome fields fixed (e.g. the dataset's ``in_channels``)."""
        doc = dict(self.document)
        doc["fixed"] = {**dict(doc.get("fixed") or {}), **fields}
        if doc.get("global"):
            doc["global"] = {k: v for k, v in doc["global"].items() if k not in fields}
        return load_space(doc, label=self.label)


class StandInTrial:
    """Stands in for an Optuna trial outside a study: draws from ``rng`` and records what it drew in
    ``params``, as ``trial.params`` would. Subclasses say how each value is drawn."""

    def __init__(self, rng: random.Random) -> None:
        self.rng, self.params = rng, {}

    def _keep(self, name: str, value: Any) -> Any:
        self.params[name] = value
        return value


class _ExtremeTrial(StandInTrial):
    """Stands in for an Optuna trial at load time, drawing each value from a parameter's extremes."""

    def suggest_categorical(self, name: str, choices: list[Any]) -> Any:
        return self._keep(name, self.rng.choice(choices))

    def suggest_int(self, name: str, low: int, high: int, step: int = 1, log: bool = False) -> int:
        return self._keep(name, self.rng.choice([low, high]))

    def suggest_float(self, name: str, low: float, high: float, step: float | None = None, log: bool = False) -> float:
        return self._keep(name, self.rng.choice([low, high]))


# -- loading --------------------------------------------------------------------------------------
def load_space(source: str | Path | Mapping[str, Any], *, label: str | None = None) -> SearchSpace:
    """Read and validate a search space from a YAML/JSON file or a mapping.

    Every problem raises :class:`ConfigError` naming the space and the parameter.
    """
    if isinstance(source, Mapping):
        doc, default_name = fields.plain_tree(dict(source)), str(source.get("name", "space"))
        label = label or default_name
    else:
        path = Path(source)
        doc = read_document(path, error=ConfigError)
        label, default_name = label or path.name, path.stem
        if not isinstance(doc, Mapping):
            raise ConfigError(f"search space {label}: expected a mapping of keys, got {type(doc).__name__}")
        doc = dict(doc)
    return _Loader(label, doc).load(str(doc.get("name", default_name)))


def _contains(dist: BaseDistribution, value: Any) -> bool:
    try:
        return bool(dist._contains(dist.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _letters(layout: Any) -> list[str]:
    return layout_letters(layout)


def _applies(name: str, p: Param, mixer: str) -> bool:
    return mixer in mixers_with_field(name) and (p.when is None or mixer in p.when)


class _Loader:
    """Parses one space document and checks that everything it can produce is a valid genome."""

    def __init__(self, label: str, doc: dict[str, Any]) -> None:
        self.label, self.doc = label, doc

    def error(self, message: str) -> ConfigError:
        return ConfigError(f"search space {self.label}: {message}")

    def keys(self, where: str, doc: Any, known: tuple[str, ...], what: str = "key") -> Mapping[str, Any]:
        if doc is None:
            return {}
        if not isinstance(doc, Mapping):
            raise self.error(f"{where} must be a mapping, got {fields.show(doc)}")
        for key in doc:
            if key not in known:
                hint = closest(str(key), known)
                if where == "fixed" and key in stage_keys():
                    hint += "; stage fields belong under stage:"
                raise self.error(f"unknown {what} {fields.show(key)} in {where}{hint}; allowed: {', '.join(known)}")
        return doc

    def load(self, name: str) -> SearchSpace:
        doc = self.keys("the file", self.doc, SPACE_KEYS)
        plugins = parse_plugin_list(f"search space {self.label}: plugins", doc.get("plugins"), error=ConfigError)
        load_plugins(plugins, where=f"search space {self.label}", error=ConfigError)
        fixed = dict(self.keys("fixed", doc.get("fixed"), TOP_FIELDS, "genome field"))
        raw_globals = self.keys("global", doc.get("global"), TOP_FIELDS, "genome field")
        globals_ = {k: parse_param(self.label, f"global.{k}", v) for k, v in raw_globals.items()}
        for k in globals_:
            if k in fixed:
                raise self.error(f"genome field {k!r} is both fixed and searched (in global); keep one")
        has_layout, has_n = doc.get("layout") is not None, doc.get("num_stages") is not None
        if has_layout == has_n:
            raise self.error("give exactly one of num_stages (with stage.mixer) or layout (letters fix the mixers)")
        layout = num_stages = None
        if has_layout:
            layout = parse_param(self.label, "layout", doc["layout"])
            counts = self.check_layouts(layout)
        else:
            num_stages = parse_param(self.label, "num_stages", doc["num_stages"])
            counts = self.int_values("num_stages", num_stages, minimum=1)
        if doc.get("transformer_mixer") is not None and not has_layout:
            raise self.error("transformer_mixer applies to layout only (with num_stages, search stage.mixer)")
        t_mixer = parse_param(self.label, "transformer_mixer", doc.get("transformer_mixer", DEFAULT_TRANSFORMER_MIXER))
        for v in self.choice_values(t_mixer):
            if v not in attention_mixers():
                raise self.error(f"parameter 'transformer_mixer': got {fields.show(v)}; "
                                 f"allowed: {', '.join(sorted(attention_mixers()))}")
        max_stages = max(counts)
        stage = self.parse_stage(doc.get("stage"), max_stages, has_layout)
        space = SearchSpace(name=name, label=self.label, fixed=fixed, globals=globals_, num_stages=num_stages,
                            layout=layout, transformer_mixer=t_mixer, stage=stage, max_stages=max_stages,
                            description=str(doc.get("description", "")), document=dict(self.doc), plugins=plugins)
        self.check(space, sorted(set(counts)))
        return space

    def check_layouts(self, layout: Param) -> list[int]:
        counts = []
        for v in self.choice_values(layout):
            try:
                letters = layout_letters(v)
            except GenomeError:
                letters = []
            bad = [c for c in letters if c not in mixer_letters() and c != "T"]
            if not letters or bad:
                raise self.error(f"parameter 'layout': got {fields.show(v)}; a layout is letters {letter_help()} "
                                 f"joined by '-', e.g. 'C-C-T-T'")
            counts.append(len(letters))
        return counts

    def choice_values(self, p: Param) -> list[Any]:
        if p.kind not in ("const", "categorical"):
            raise self.error(f"parameter {p.where!r}: must be a constant or choices, got {p}")
        return list(p.choices)

    def int_values(self, where: str, p: Param, minimum: int) -> list[int]:
        values = p.values()
        if values is None or any(isinstance(v, bool) or not isinstance(v, int) or v < minimum for v in values):
            raise self.error(f"parameter {where!r}: must be whole numbers >= {minimum} (a constant, choices or int), "
                             f"got {p}")
        return list(values)

    def parse_stage(self, raw: Any, n: int, has_layout: bool) -> dict[str, tuple[Param, ...]]:
        if raw is None:
            raise self.error("stage is missing: give at least stage.depth and stage.dim")
        raw = self.keys("stage", raw, stage_keys(), "stage parameter")
        required = ("depth", "dim") if has_layout else ("mixer", "depth", "dim")
        for key in required:
            if key not in raw:
                raise self.error(f"stage.{key} is missing")
        if has_layout and "mixer" in raw:
            raise self.error("parameter 'stage.mixer': the layout already fixes each stage's mixer; remove one of them")
        out: dict[str, tuple[Param, ...]] = {}
        for name, spec in raw.items():
            allow_when = name in optional_stage()
            if isinstance(spec, list):
                if len(spec) != n:
                    raise self.error(f"parameter 'stage.{name}': a per-stage list needs {n} entries (the largest "
                                     f"stage count), got {len(spec)}; {_choices_hint(spec)}")
                params = tuple(parse_param(self.label, f"stage.{name}[{i}]", s, stage=True, allow_when=allow_when)
                               for i, s in enumerate(spec))
                if any(p.tied for p in params):
                    raise self.error(f"parameter 'stage.{name}': tied does not apply to a per-stage list")
            else:
                p = parse_param(self.label, f"stage.{name}", spec, stage=True, allow_when=allow_when)
                params = (p,) * n
            for p in params:
                if p.when is not None and not p.when <= mixers_with_field(name):
                    extra = sorted(p.when - mixers_with_field(name))
                    raise self.error(f"parameter {p.where!r}: when lists {', '.join(extra)} but {name} applies only "
                                     f"to {', '.join(sorted(mixers_with_field(name)))}")
            if name == "mixer":
                for p in params:
                    names = mixer_names()
                    for m in self.choice_values(p):
                        if m not in names:
                            hint = closest(str(m), names)
                            raise self.error(f"parameter {p.where!r}: unknown mixer {fields.show(m)}{hint}; "
                                             f"allowed: {', '.join(names)} (a plugin's mixer needs plugins: "
                                             f"[its module])")
            out[name] = params
        return out

    # -- whole-space checks ----------------------------------------------------------------------
    def check(self, space: SearchSpace, counts: list[int]) -> None:
        base = dict(space.fixed)
        for k, p in space.globals.items():
            base[k] = p.values()[0] if p.values() else p.low
        probe = {"mixer": DEFAULT_TRANSFORMER_MIXER, "depth": 1, "dim": 64, "heads": 1}  # valid under every pool
        try:
            parse_genome({**base, "stages": [probe]})
        except GenomeError as exc:
            raise self.error(f"the fixed fields do not make a valid genome: {exc}") from None
        for k, p in space.globals.items():
            for v in p.probe_values():
                self.probe(p.where, v, {**base, k: v, "stages": [probe]})
        mixers = [space.mixers_at(i) for i in range(space.max_stages)]
        for name, params in space.stage.items():
            for i, p in enumerate(params):
                self.check_stage_param(name, p, mixers[i], {**base, "pool": "mean"})  # pool is checked below
        dims = self.dims(space)
        for i in range(space.max_stages):
            self.check_heads(space, i, mixers[i], dims[i])
            self.check_shift(space, i, mixers[i], dims[i])
        self.check_downsampling(space, counts, {**base, "stages": [probe]})
        self.check_pool(space, counts)
        self.smoke_test(space)

    def check_pool(self, space: SearchSpace, counts: list[int]) -> None:
        pools = space.globals["pool"].values() if "pool" in space.globals else [space.fixed.get("pool")]
        if "cls" not in pools:
            return  # mean pooling reads every mixer; the default pool follows the network
        where = "global.pool" if "pool" in space.globals else "fixed.pool"
        if space.layout is not None:
            for v in space.layout.values():
                last = _letters(v)[-1]
                if last != "T" and mixer_letters()[last] not in attention_mixers():
                    ends = ", ".join(sorted(s for s, m in mixer_letters().items() if m in attention_mixers()))
                    raise self.error(f"{where} 'cls' needs every network to end on attention, but layout {fields.show(v)} ends "
                                     f"on {mixer_letters()[last]}; use pool: mean or end the layouts on {ends} or T")
            return
        for n in counts:
            bad = sorted(space.mixers_at(n - 1) - attention_mixers())
            if bad:
                raise self.error(f"{where} 'cls' needs every network to end on attention, but with {n} stage(s) "
                                 f"stage {n - 1} can be {', '.join(bad)}; use pool: mean or restrict that mixer")

    def smoke_test(self, space: SearchSpace, draws: int = 200) -> None:
        """Build genomes from random extreme values: a safety net for any genome rule not checked above."""
        rng = random.Random(0)
        for _ in range(draws):
            trial = _ExtremeTrial(rng)
            doc = space.suggest(trial)  # type: ignore[arg-type]
            try:
                parse_genome(doc)
            except GenomeError as exc:
                raise self.error(f"the space can produce an invalid genome ({exc}) "
                                 f"from params {trial.params}") from None

    def probe(self, where: str, value: Any, doc: dict[str, Any]) -> None:
        try:
            parse_genome(doc)
        except GenomeError as exc:
            raise self.error(f"parameter {where!r}: value {fields.show(value)} does not make a valid genome: {exc}") from None

    def check_stage_param(self, name: str, p: Param, mixers: set[str], base: dict[str, Any]) -> None:
        if name == "mixer":
            return
        if name == "dim_growth":
            self.int_values(p.where, p, minimum=1)
            return
        if name in ("depth", "dim"):
            self.int_values(p.where, p, minimum=1)
        usable = [m for m in mixer_names() if name not in optional_stage() or _applies(name, p, m)]
        mixer = next((m for m in usable if m in mixers), usable[0])
        for v in p.probe_values():
            stage = {"mixer": mixer, "depth": 1, "dim": _PROBE_DIM, name: v}
            if name == "heads" and isinstance(v, int) and not isinstance(v, bool) and v > 0:
                stage["dim"] = v
            self.probe(p.where, v, {**base, "stages": [stage]})

    def dims(self, space: SearchSpace) -> list[set[int]]:
        out = [set(space.stage["dim"][0].values())]
        for i in range(1, space.max_stages):
            if "dim_growth" in space.stage:
                growth = space.stage["dim_growth"][i].values()
                out.append({d * g for d in out[-1] for g in growth})
            else:
                out.append(set(space.stage["dim"][i].values()))
        return out

    def check_heads(self, space: SearchSpace, i: int, mixers: set[str], dims: set[int]) -> None:
        p = space.stage.get("heads", (None,) * space.max_stages)[i]
        for mixer in sorted(mixers & mixers_with_field("heads")):
            sampled = p is not None and _applies("heads", p, mixer)
            if sampled and p.values() is None:
                raise self.error(f"parameter {p.where!r}: heads must be a constant, choices or int, got {p}")
            default = stage_field("heads", mixer)
            for d in sorted(dims):
                for h in (p.values() if sampled else [default.default_for(d)]):
                    if d % h:
                        where = p.where if sampled else "stage.heads"
                        how = "" if sampled else f" (the default heads of dim {d} is {h}; search or fix heads)"
                        raise self.error(f"parameter {where!r}: stage {i} ({mixer}) can get dim {d} with heads {h}, "
                                         f"and {d} is not divisible by {h}{how}; make every dim a multiple of every "
                                         f"heads choice")

    def check_shift(self, space: SearchSpace, i: int, mixers: set[str], dims: set[int]) -> None:
        shifting = sorted(mixers & mixers_with_field("shift_ratio"))
        if not shifting:
            return
        p = space.stage.get("shift_ratio", (None,) * space.max_stages)[i]
        if p is not None and _applies("shift_ratio", p, shifting[0]):
            ratio = min(number(self.label, p.where, v) for v in p.probe_values())
        else:
            ratio = stage_field("shift_ratio", shifting[0]).default_for(min(dims))
        d = min(dims)
        if int(ratio * d) < 1:
            where = p.where if p is not None else "stage.shift_ratio"
            raise self.error(f"parameter {where!r}: shift_ratio {ratio:g} of stage {i}'s narrowest dim {d} shifts "
                             f"no channel; need shift_ratio * dim >= 1 (raise the lower bound or the dims)")

    def check_downsampling(self, space: SearchSpace, counts: list[int], base: dict[str, Any]) -> None:
        stage = base.pop("stages")[0]
        size_fields = ("image_size", "patch_size", "stem_stride", "stem")
        sizes = {k: p.values() for k, p in space.globals.items() if k in size_fields}
        for k, values in sizes.items():
            if values is None:
                raise self.error(f"parameter 'global.{k}': must be a constant, choices or int, got {space.globals[k]}")
        source = "layout" if space.layout is not None else "num_stages"
        for combo in itertools.product(*sizes.values()):
            doc = {**base, **dict(zip(sizes, combo))}
            for n in counts:
                try:
                    parse_genome({**doc, "stages": [stage] * n})
                except GenomeError as exc:
                    raise self.error(f"{source} allows {n} stages but the fixed fields do not fit "
                                     f"them: {exc}") from None
