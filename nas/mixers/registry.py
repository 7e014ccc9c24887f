"""The one registry of token mixers: name -> :class:`MixerSpec`, with the lookups the rest of nas uses.

The built-ins are registered when this package is imported; plugins when their module is imported
(:func:`nas.mixers.plugins.load_plugins`) and installed packages through the ``nas.mixers``
entry-point group, read on the first lookup of a name the registry does not hold.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from nas.errors import GenomeError, closest
from nas.fields import show
from nas.mixers.spec import MixerField, MixerSpec

__all__ = ["register_mixer", "declare_mixer", "unregister_mixer", "mixer_spec", "mixer_specs", "mixer_names",
           "mixer_letters", "letter_of", "attention_mixers", "mixers_with_field", "stage_field_names",
           "stage_field", "MIXER_REGISTRY"]

MIXER_REGISTRY: dict[str, MixerSpec] = {}
T = TypeVar("T", bound=type)

# Set by nas.mixers.plugins while it imports a plugin module: the specs registered meanwhile are that
# module's (what a genome records so that it can be rebuilt elsewhere).
_importing: list[str] = []


def _same(a: MixerSpec, b: MixerSpec) -> bool:
    """Two declarations of one mixer (a module imported twice, or reloaded)."""
    return (a.name, a.letter, a.module_path, a.field_names) == (b.name, b.letter, b.module_path, b.field_names)


def register_mixer(spec: MixerSpec) -> MixerSpec:
    """Add ``spec`` to the registry; returns it (with ``plugin`` set to the declaring module).

    A name or letter already taken by a different mixer is an error naming both; declaring the same
    mixer again (a module imported twice) replaces it.
    """
    import dataclasses

    if not isinstance(spec, MixerSpec):
        raise TypeError(f"register_mixer takes a MixerSpec, got {type(spec).__name__}")
    if spec.plugin is None and _importing:
        spec = dataclasses.replace(spec, plugin=_importing[-1])
    elif spec.plugin is None and not _builtin_phase():
        module = spec.module.__module__ if isinstance(spec.module, type) else spec.module.partition(":")[0]
        spec = dataclasses.replace(spec, plugin=module)
    old = MIXER_REGISTRY.get(spec.name)
    if old is not None and not _same(old, spec):
        raise GenomeError(f"mixer {spec.name!r} is declared twice: by {old.plugin or 'nas'} ({old.module_path}) and "
                          f"by {spec.plugin or 'nas'} ({spec.module_path}); rename one")
    for other in MIXER_REGISTRY.values():
        if other.letter == spec.letter and other.name != spec.name:
            raise GenomeError(f"mixer {spec.name!r}: layout letter {spec.letter!r} is taken by {other.name!r}; "
                              f"free letters: {', '.join(free_letters())}")
    MIXER_REGISTRY[spec.name] = spec
    return spec


def declare_mixer(name: str, letter: str, **spec: Any) -> Callable[[T], T]:
    """Class decorator: ``@declare_mixer("gfnet", "G", fields=(...))`` registers ``MixerSpec(module=cls, ...)``."""

    def wrap(cls: T) -> T:
        register_mixer(MixerSpec(name=name, letter=letter, module=cls, **spec))
        return cls

    return wrap


def unregister_mixer(name: str) -> None:
    """Remove a plugin mixer (tests); the built-ins stay."""
    spec = MIXER_REGISTRY.get(name)
    if spec is not None and spec.plugin is not None:
        del MIXER_REGISTRY[name]


_BUILTIN_PHASE = [True]


def _builtin_phase() -> bool:
    return _BUILTIN_PHASE[0]


def end_builtin_phase() -> None:
    _BUILTIN_PHASE[0] = False


def free_letters() -> list[str]:
    taken = {s.letter for s in MIXER_REGISTRY.values()} | {"T"}
    return [c for c in "ABCDEFGHIJKLMNOPQRSUVWXYZ" if c not in taken]


# -- lookups ------------------------------------------------------------------------------------------
def _with_entry_points() -> None:
    from nas.mixers.plugins import load_entry_points

    load_entry_points()


def mixer_specs() -> tuple[MixerSpec, ...]:
    """Every declared mixer: the built-ins in their order, then plugins in registration order."""
    _with_entry_points()
    return tuple(MIXER_REGISTRY.values())


def mixer_names() -> tuple[str, ...]:
    return tuple(s.name for s in mixer_specs())


def mixer_spec(name: Any, where: str = "mixer") -> MixerSpec:
    """The spec of mixer ``name``; an unknown name is one :class:`GenomeError` naming ``where`` and the choices."""
    if isinstance(name, str) and name in MIXER_REGISTRY:
        return MIXER_REGISTRY[name]
    names = mixer_names()  # reads the entry points once
    if isinstance(name, str) and name in MIXER_REGISTRY:
        return MIXER_REGISTRY[name]
    hint = closest(name, names) if isinstance(name, str) else ""
    at = "" if where == "mixer" else f" at {where}"
    raise GenomeError(f"unknown mixer {show(name)}{at}{hint}; known: {', '.join(sorted(names))} "
                      f"(a plugin's mixer needs plugins: [its module])")


def mixer_letters() -> dict[str, str]:
    """Layout letter -> mixer name (``T`` is not here: it stands for the layout's transformer_mixer)."""
    return {s.letter: s.name for s in mixer_specs()}


def letter_of(name: Any) -> str:
    """The layout letter of mixer ``name`` (``?`` for a name no mixer has)."""
    spec = MIXER_REGISTRY.get(name) if isinstance(name, str) else None
    return spec.letter if spec is not None else "?"


def attention_mixers() -> frozenset[str]:
    """Mixers that attend over every token, the cls token included (what T may stand for)."""
    return frozenset(s.name for s in mixer_specs() if s.attention)


def stage_field_names() -> tuple[str, ...]:
    """Every optional stage field any declared mixer takes, in declaration order."""
    out: dict[str, None] = {}
    for s in mixer_specs():
        for f in s.all_fields:
            out.setdefault(f.name, None)
    return tuple(out)


def mixers_with_field(name: str) -> frozenset[str]:
    """The mixers that take stage field ``name``."""
    return frozenset(s.name for s in mixer_specs() if name in s.field_names)


def stage_field(name: str, mixer: str | None = None) -> MixerField | None:
    """The declaration of field ``name`` (of ``mixer``, else of the first mixer that takes it)."""
    specs = [mixer_spec(mixer)] if mixer is not None else mixer_specs()
    for s in specs:
        f = s.field(name)
        if f is not None:
            return f
    return None
