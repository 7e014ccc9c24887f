"""The mixer declaration: everything the project needs to know about a token mixer, in one value.

A token mixer is declared once, with :class:`MixerSpec`, and every part of ``nas`` reads that
declaration: the genome parser (its name, layout letter and stage fields), the builder (the module
and how the block wraps it), the size guard (:attr:`MixerSpec.estimate`), the FLOP counter
(:attr:`MixerSpec.flop_handles`), search spaces, ablations and the contract check of ``nas mixers
--check``. The five built-ins are declared through the same API (:mod:`nas.mixers.builtin`), as a
plugin would declare its own (timm's ``register_model`` and MetaFormer's open token-mixer slot are the
models).

This module imports no torch: genomes are validated without it. A spec names its module either as a
class or as ``"package.module:Class"``, resolved on first use.
"""
from __future__ import annotations

import importlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nas import fields as typed
from nas.errors import GenomeError

__all__ = ["MixerField", "BlockShape", "MixerEstimate", "MixerSpec", "NORMS", "LETTER_RE"]

NORMS = ("layer", "group", "batch")  # the block's norm kinds (nas.layers.norms)
LETTER_RE = re.compile(r"^[A-SU-Z]$")  # one capital letter; T stands for a layout's transformer_mixer
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
FIELD_KINDS = ("int", "float", "choice", "bool")
RESERVED_FIELDS = ("mixer", "depth", "dim", "dim_growth")
MAX_SIZE = typed.INT32_MAX  # an int field's cap (as the genome's sizes)
MAX_RATIO = 1e12  # a float field's cap: past this the size arithmetic itself overflows


@dataclass(frozen=True)
class MixerField:
    """One stage field a mixer takes (``heads``, ``shift_ratio``, a plugin's ``kernel_size``...).

    Values are read through :mod:`nas.fields`, so a bad one gets the usual one-line error naming
    ``stages[i].NAME``. ``default`` is a value or a function of the stage's ``dim`` (``heads``:
    ``max(1, dim // 64)``); ``check(value, dim, where)`` may refuse a value that depends on ``dim``
    (raise :class:`~nas.errors.GenomeError`) or return its canonical form (the shift's ratio is
    stored as ``floor(gamma·C)/C``, so two spellings of one network have one key).
    """

    name: str
    kind: str  # int | float | choice | bool
    default: Any = None  # a value, or Callable[[dim], value]
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    doc: str = ""
    check: Callable[[Any, int, str], Any] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name) or self.name in RESERVED_FIELDS:
            raise TypeError(f"mixer field name {self.name!r} must be lower_snake_case and not one of "
                            f"{', '.join(RESERVED_FIELDS)}")
        if self.kind not in FIELD_KINDS:
            raise TypeError(f"mixer field {self.name!r}: kind must be one of {', '.join(FIELD_KINDS)}, "
                            f"got {self.kind!r}")
        if self.kind == "choice" and not self.choices:
            raise TypeError(f"mixer field {self.name!r}: a choice field needs choices")

    def default_for(self, dim: int) -> Any:
        return self.default(dim) if callable(self.default) else self.default

    def parse(self, where: str, raw: Any, dim: int) -> Any:
        """The canonical value of this field for a stage of width ``dim`` (``raw`` None: the default)."""
        value = self.default_for(dim) if raw is None else raw
        if value is None:
            raise GenomeError(f"{where} is missing (it has no default)")
        if self.kind == "int":
            low = int(self.low) if self.low is not None else None
            high = int(self.high) if self.high is not None else None
            value = typed.integer(where, value, minimum=low, maximum=high, cap=MAX_SIZE, error=GenomeError)
        elif self.kind == "float":
            value = typed.real(where, value, minimum=self.low, maximum=self.high, low_open=self.low_open,
                               high_open=self.high_open, cap=MAX_RATIO, text=True, error=GenomeError)
        elif self.kind == "choice":
            value = typed.choice(where, value, self.choices, error=GenomeError)
        else:
            value = typed.flag(where, value, error=GenomeError)
        return self.check(value, dim, where) if self.check is not None else value

    def describe(self) -> str:
        """``float (0, 0.25], default 0.0833``: for ``nas mixers``."""
        if self.kind == "choice":
            kind = "|".join(self.choices)
        elif self.low is not None or self.high is not None:
            lo = "-inf" if self.low is None else f"{self.low:g}"
            hi = "inf" if self.high is None else f"{self.high:g}"
            kind = f"{self.kind} {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        else:
            kind = self.kind
        if callable(self.default):
            default = "dim-dependent"
        elif isinstance(self.default, float):
            default = f"{self.default:.4g}"
        else:
            default = typed.show(self.default, 20)
        return f"{kind}, default {default}"


@dataclass(frozen=True)
class BlockShape:
    """What the builder hands one block's mixer: the token grid, widths, stride and the stage's options.

    Tokens are ``[B, prefix + h*w, in_dim]`` in, ``[B, prefix + h'*w', dim]`` out, with ``h' = h // stride``.
    A mixer with ``supports_stride=False`` only ever gets ``stride=1`` and ``in_dim == dim``: the block
    pools and projects in front of it.
    """

    h: int
    w: int
    prefix: int
    in_dim: int
    dim: int
    stride: int = 1
    position: str = "absolute"  # the genome's position encoding (attention's relative bias reads it)
    qkv_bias: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)  # the spec's fields, resolved

    @property
    def tokens(self) -> int:
        return self.prefix + self.h * self.w

    @property
    def out_side(self) -> tuple[int, int]:
        return self.h // self.stride, self.w // self.stride

    @property
    def out_tokens(self) -> int:
        oh, ow = self.out_side
        return self.prefix + oh * ow


@dataclass(frozen=True)
class MixerEstimate:
    """One mixer module's cost per image, before anything is built: what the size guard adds up.

    ``params``: its parameters; ``activations``: floats it keeps for the backward pass (per image);
    ``macs``: multiply-accumulates of its forward pass (fvcore's convention). The block's MLP, norm
    after the mixer, shortcut projection and patch merging are the builder's and counted apart.
    """

    params: int
    activations: int
    macs: int


# fvcore op handle: (inputs, outputs) of a traced node -> MACs (int or Counter); None: a known-zero op.
Handle = Callable[[list[Any], list[Any]], Any]


@dataclass(frozen=True)
class MixerSpec:
    """A token mixer's declaration. Register it with :func:`nas.mixers.register_mixer`.

    The module follows one contract: ``Module(dim, *, in_dim, grid, stride, position, qkv_bias,
    **options)`` with ``forward(x: [B, N_in, in_dim]) -> [B, N_out, dim]``, where ``grid`` is a
    :class:`nas.layers.grid.Grid` (``h, w, prefix``; the prefix tokens, a cls token, come first) and
    ``options`` are the values of :attr:`fields`. Unused keywords must be accepted (``**_``).
    """

    name: str  # the genome's ``mixer`` value
    letter: str  # the layout shorthand's letter (one capital, not T)
    module: type | str  # the nn.Module class, or "package.module:Class" (imported on first build)
    fields: tuple[MixerField, ...] = ()  # stage fields passed to the module (mlp_ratio is the block's)
    # -- how the block wraps it (nas.layers.block) --
    residual: bool = True  # x + Mixer(x) (the mixer holds its own pre-norm); False: x = Mixer(x) (the shift)
    has_mlp: bool = True  # a pre-norm MLP follows (its ratio is the stage field mlp_ratio)
    norm: str = "layer"  # norm kind of the block's MLP, the patch merging and the final norm: layer|group|batch
    supports_stride: bool = False  # halves the grid itself (CoAtNet's first block); else the block pools first
    # -- what the rest of nas may assume --
    attention: bool = False  # mixes every token with every other, the cls token included: may end a
    #                          cls-pooled network and stand for T in layouts; a unit-scale position table
    family: str = "other"  # training-recipe family (nas.train.recipes): transformer | shift | other
    # -- cost --
    estimate: Callable[[BlockShape], MixerEstimate] | None = None  # None: counted on the meta device
    flop_handles: Mapping[str, Handle | None] = field(default_factory=dict)  # fvcore handles for its ops
    description: str = ""
    source: str = ""  # paper / code the mixer follows
    plugin: str | None = None  # the module that declared it (None: built in); set at registration

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not NAME_RE.match(self.name):
            raise TypeError(f"mixer name {self.name!r} must be lower_snake_case (a-z, 0-9, _), at most 40 characters")
        if not isinstance(self.letter, str) or not LETTER_RE.match(self.letter):
            raise TypeError(f"mixer {self.name!r}: letter must be one capital letter other than T, got {self.letter!r}")
        if self.norm not in NORMS:
            raise TypeError(f"mixer {self.name!r}: norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        for attr in ("residual", "has_mlp", "supports_stride", "attention"):
            if not isinstance(getattr(self, attr), bool):
                raise TypeError(f"mixer {self.name!r}: {attr} must be True or False")
        names = [f.name for f in self.all_fields]
        if len(set(names)) != len(names):
            raise TypeError(f"mixer {self.name!r}: a field is declared twice in {names}")
        if not isinstance(self.module, (type, str)):
            raise TypeError(f"mixer {self.name!r}: module must be a class or 'package.module:Class'")

    # -- fields ------------------------------------------------------------------------------------
    @property
    def all_fields(self) -> tuple[MixerField, ...]:
        """The stage fields a stage of this mixer has: ``mlp_ratio`` when it has an MLP, then its own."""
        return ((MLP_RATIO,) if self.has_mlp else ()) + tuple(self.fields)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.all_fields)

    def field(self, name: str) -> MixerField | None:
        return next((f for f in self.all_fields if f.name == name), None)

    # -- the module --------------------------------------------------------------------------------
    @property
    def cls(self) -> type:
        """The module class (imported on first use when declared as a string)."""
        if isinstance(self.module, type):
            return self.module
        module_name, _, attr = self.module.partition(":")
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
        return obj

    @property
    def module_path(self) -> str:
        if isinstance(self.module, str):
            return self.module
        return f"{self.module.__module__}:{self.module.__qualname__}"

    def options(self, stage: Any) -> dict[str, Any]:
        """The keyword arguments a stage passes to the module: its own fields (not ``mlp_ratio``)."""
        return {f.name: stage.value(f.name) for f in self.fields}


MLP_RATIO = MixerField(
    "mlp_ratio", "float", 4.0, low=0, high=None, low_open=True,
    doc="tau: hidden width of the block's MLP is round(tau * dim) (every mixer with an MLP)",
)
