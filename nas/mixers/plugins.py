"""Plugins: modules that declare mixers, named in ``plugins: [...]`` or installed under the ``nas.mixers``
entry-point group.

A plugin is an ordinary importable module that calls :func:`nas.mixers.register_mixer` (or uses the
:func:`~nas.mixers.declare_mixer` decorator) when imported. Genomes, search spaces, study and
ablation configs name them in ``plugins:``; a genome whose stages use a plugin's mixer records the
module in its canonical document, so every process that parses it (Ray workers on any node, a later
``nas build`` of an exported genome) imports the plugin first. An installed package declares::

    [project.entry-points."nas.mixers"]
    gfnet = "nas_gfnet"          # a module to import, or "module:object"
"""
from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path
from typing import Any

from nas.errors import GenomeError
from nas.fields import show

__all__ = ["ENTRY_POINT_GROUP", "PluginError", "load_plugins", "load_entry_points", "plugin_versions",
           "plugin_modules", "plugin_paths", "parse_plugin_list"]

ENTRY_POINT_GROUP = "nas.mixers"
_loaded: dict[str, str] = {}  # module -> where it was named first (for provenance and messages)
_entry_points_read = [False]
_MODULE_RE = __import__("re").compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


class PluginError(GenomeError):
    """A plugin module that cannot be imported, or that fails while declaring its mixers."""


def parse_plugin_list(where: str, value: Any, error: type[Exception] = GenomeError) -> tuple[str, ...]:
    """``plugins: [module, ...]``: a list of dotted module names (a single string counts as one)."""
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise error(f"{where} must be a list of module names such as [my_mixers], got {show(value)}")
    out: list[str] = []
    for v in value:
        if not isinstance(v, str) or not _MODULE_RE.match(v):
            raise error(f"{where} must hold importable module names such as my_mixers or pkg.mixers, got {show(v)}")
        if v not in out:
            out.append(v)
    return tuple(out)


def load_plugins(modules: Iterable[str], where: str = "plugins",
                 error: type[Exception] = PluginError) -> tuple[str, ...]:
    """Import each module (once per process), registering the mixers it declares.

    A module that cannot be imported is one ``error`` naming it, where it was named and the fix.
    """
    from nas.mixers import registry

    modules = tuple(modules)
    for module in modules:
        if module in _loaded and module in sys.modules:
            continue
        registry._importing.append(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            missing = exc.name or module
            what = f"module {module!r}" if missing == module else f"module {module!r} (it needs {missing!r})"
            raise error(f"{where}: plugin {what} cannot be imported; install it (pip install ...) or add the folder "
                        f"that holds it to PYTHONPATH") from None
        except GenomeError as exc:
            raise error(f"{where}: plugin {module!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the plugin's own code failed: one line, its words
            raise error(f"{where}: plugin {module!r} failed while importing: {type(exc).__name__}: {exc}") from None
        finally:
            registry._importing.pop()
        _loaded.setdefault(module, where)
    return modules


def load_entry_points() -> None:
    """Import the installed packages of the ``nas.mixers`` entry-point group (once per process)."""
    if _entry_points_read[0]:
        return
    _entry_points_read[0] = True
    try:
        eps = metadata.entry_points(group=ENTRY_POINT_GROUP)
    except Exception:  # noqa: BLE001 - a broken installation elsewhere must not stop nas
        return
    for ep in eps:
        load_plugins([ep.value.partition(":")[0].strip()], where=f"entry point {ep.name!r} ({ENTRY_POINT_GROUP})")


def plugin_modules() -> tuple[str, ...]:
    """The plugin modules that declared the registered mixers, in registration order."""
    from nas.mixers.registry import MIXER_REGISTRY

    out: dict[str, None] = {}
    for spec in MIXER_REGISTRY.values():
        if spec.plugin is not None:
            out.setdefault(spec.plugin, None)
    return tuple(out)


def _version(module: str) -> str:
    """The version of the distribution that provides ``module``, else its ``__version__``, else its file."""
    top = module.split(".")[0]
    try:
        dists = metadata.packages_distributions().get(top, [])
    except Exception:  # noqa: BLE001 - provenance only
        dists = []
    for dist in dists:
        try:
            return f"{dist} {metadata.version(dist)}"
        except metadata.PackageNotFoundError:
            continue
    mod = sys.modules.get(module)
    version = getattr(mod, "__version__", None) if mod is not None else None
    if version:
        return str(version)
    path = getattr(mod, "__file__", None) if mod is not None else None
    return f"not installed ({path})" if path else "not installed"


def plugin_versions(modules: Iterable[str] | None = None) -> dict[str, str]:
    """``{module: version}`` of the plugins in use, for provenance."""
    return {m: _version(m) for m in (plugin_modules() if modules is None else modules)}


def plugin_paths(modules: Iterable[str] | None = None) -> list[str]:
    """The ``sys.path`` folders the plugin modules were imported from (shipped to Ray workers)."""
    out: list[str] = []
    for module in plugin_modules() if modules is None else modules:
        mod = sys.modules.get(module.split(".")[0])
        path = getattr(mod, "__file__", None)
        if not path:
            continue
        p = Path(path).resolve()
        root = p.parent.parent if p.name == "__init__.py" else p.parent
        if "site-packages" not in root.parts and "dist-packages" not in root.parts and str(root) not in out:
            out.append(str(root))
    return out
