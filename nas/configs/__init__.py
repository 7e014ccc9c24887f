"""The configs shipped with ``nas``: search spaces, study configs and ablation configs, by name.

They are package data, so an installed wheel finds them as a checkout does: ``nas study run
quickstart``, ``nas ablate coatnet_layouts`` and ``space: vit_family`` in a study config name the
files ``nas/configs/studies/quickstart.yaml``, ``nas/configs/ablations/coatnet_layouts.yaml`` and
``nas/configs/search_spaces/vit_family.yaml``. A path that exists always wins over a name, so a
user's own ``quickstart.yaml`` in the current folder is never shadowed.
"""
from __future__ import annotations

from pathlib import Path

from nas.errors import ConfigError, closest

__all__ = ["CONFIG_DIR", "KINDS", "shipped", "shipped_path", "resolve_config"]

# The folder of the shipped YAML files (a regular directory in a checkout and in an installed wheel).
CONFIG_DIR = Path(__file__).resolve().parent

# Kind -> (folder under CONFIG_DIR, what one file is called in messages).
KINDS: dict[str, tuple[str, str]] = {
    "space": ("search_spaces", "search space"),
    "study": ("studies", "study config"),
    "ablation": ("ablations", "ablation config"),
}


def _folder(kind: str) -> Path:
    if kind not in KINDS:
        raise ValueError(f"unknown config kind {kind!r}; known: {', '.join(KINDS)}")
    return CONFIG_DIR / KINDS[kind][0]


def shipped(kind: str) -> dict[str, Path]:
    """Name -> file of every shipped config of ``kind`` (``space``, ``study`` or ``ablation``), sorted."""
    return {p.stem: p for p in sorted(_folder(kind).glob("*.yaml"))}


def _as_name(value: str) -> str | None:
    """``value`` as a shipped config's name (``vit_family`` or ``vit_family.yaml``), or None for a path."""
    text = value.strip()
    if not text or "/" in text or "\\" in text:
        return None
    return text[: -len(".yaml")] if text.endswith(".yaml") else text


def shipped_path(kind: str, value: str | Path) -> Path | None:
    """The shipped file that ``value`` names, or None when it names none."""
    name = _as_name(str(value))
    return None if name is None else shipped(kind).get(name)


def resolve_config(kind: str, value: str | Path) -> Path:
    """An existing file ``value``, else the shipped config of that name; a one-line error otherwise.

    Directories are returned as they are: the callers have their own words for a folder given
    where a file belongs.
    """
    path = Path(value).expanduser()
    if path.exists():
        return path
    found = shipped_path(kind, value)
    if found is not None:
        return found
    raise ConfigError(not_found_message(kind, value))


def not_found_message(kind: str, value: str | Path) -> str:
    """``<what> 'x': no such file, and no shipped <what> of that name; shipped: a, b; did you mean ...``."""
    what = KINDS[kind][1]
    names = shipped(kind)
    name = _as_name(str(value)) or str(value)
    return (f"{what} {str(value)!r}: no such file, and no shipped {what} of that name; shipped: "
            f"{', '.join(names) or 'none'}{closest(name, names)}")
