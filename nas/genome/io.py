"""Reading and writing genome documents: preset names, YAML/JSON files, mappings."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nas.errors import GenomeError, closest
from nas.genome.parse import parse_genome
from nas.genome.presets import PRESETS
from nas.genome.schema import Genome

__all__ = ["load_genome", "load_yaml", "read_document", "save_genome", "genome_to_yaml"]


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats: ``5.0e7`` and ``1e-3`` are numbers, not strings."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` except that an exponent without a dot (``2e-3``) is a float, as in YAML 1.2
    (PyYAML follows YAML 1.1 and would hand back the string '2e-3')."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def read_document(path: str | Path, error: type[Exception] = GenomeError) -> Any:
    """Parse a YAML or JSON file; a missing file or malformed text raises ``error`` naming the file."""
    from nas.paths import check_length

    path = check_length(path, "file", error)
    if path.is_dir():
        raise error(f"{path} is a directory; give a YAML or JSON file")
    if not path.is_file():
        raise error(f"file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a YAML or JSON text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        if path.suffix == ".json":
            return json.loads(text)
        return load_yaml(text)
    except json.JSONDecodeError as exc:
        raise error(f"{path}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{path}: malformed YAML{where}: {problem}") from None


def load_genome(spec: str | Path | Mapping[str, Any] | Genome, **overrides: Any) -> Genome:
    """A genome from a preset name, a YAML/JSON file, a mapping or a genome.

    ``overrides`` (``image_size=32``, ``num_classes=10``) replace top-level fields; ``None`` values
    are ignored so CLI flags that were not given pass straight through.
    """
    if not isinstance(spec, (str, Path)):
        return parse_genome(spec, **overrides)  # a mapping or genome; anything else is rejected there
    text = str(spec)
    if text in PRESETS:
        return parse_genome(PRESETS[text].genome, **overrides)
    from nas.paths import check_length

    path = check_length(text, "genome file", GenomeError)
    if path.suffix in (".yaml", ".yml", ".json") or path.exists():
        doc = read_document(path)
        try:
            return parse_genome(doc, **overrides)
        except GenomeError as exc:
            raise GenomeError(f"{path}: {exc}") from None
    raise GenomeError(f"no preset or genome file named {text!r}{closest(text, PRESETS)}; see `nas presets`")


def genome_to_yaml(genome: Genome, metadata: Mapping[str, Any] | None = None) -> str:
    """The canonical document as YAML, with an optional ``metadata`` block that loading ignores."""
    doc: dict[str, Any] = genome.to_dict()
    if metadata:
        doc = {"metadata": dict(metadata), **doc}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def save_genome(genome: Genome, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".json":
        doc = genome.to_dict() if not metadata else {"metadata": dict(metadata), **genome.to_dict()}
        path.write_text(json.dumps(doc, indent=2) + "\n")
    else:
        path.write_text(genome_to_yaml(genome, metadata))
    return path
