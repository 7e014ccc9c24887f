"""Reading and writing genome documents: preset names, YAML/JSON files, mappings."""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nas.errors import GenomeError, closest
from nas.fields import show
from nas.genome.parse import parse_genome
from nas.genome.presets import PRESETS
from nas.genome.schema import Genome

__all__ = ["load_genome", "load_yaml", "parse_text", "read_document", "save_genome", "genome_to_yaml", "DocumentError",
           "MAX_DOCUMENT_BYTES", "MAX_NODES"]


MAX_DOCUMENT_BYTES = 4 << 20  # a genome, study, ablation or space file; the largest shipped is under 10 kB
MAX_NODES = 100_000  # values in a document once its aliases are expanded (a shipped one has under 2,000)


class DocumentError(yaml.YAMLError):
    """A document that parses but may not be used: a duplicate key, an alias bomb, a 5,000-digit integer."""

    def __init__(self, problem: str, mark: Any = None) -> None:
        super().__init__(problem)
        self.problem, self.problem_mark = problem, mark


class _Loader(yaml.SafeLoader):
    """Safe YAML with YAML 1.2 floats (``5.0e7`` and ``1e-3`` are numbers, not strings), read strictly:
    a key given twice in one mapping is an error (not the last one silently winning), and a document
    whose aliases expand to more than ``MAX_NODES`` values, or refer to themselves, is refused."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            first: dict[Any, int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # non-scalar keys are refused by the constructor; merged keys may be overridden
                key = self.construct_object(key_node)
                if key in first:
                    raise DocumentError(f"duplicate key {show(key)} (first at line {first[key] + 1}); "
                                        f"a key may appear once in a mapping", key_node.start_mark)
                first[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # Python refuses to read integers of more than 4,300 digits
            raise DocumentError(f"an integer of {len(str(node.value)):,} digits is not a usable value",
                                node.start_mark) from None

    def get_single_node(self) -> Any:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)
_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _expanded_size(node: Any, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """Values in ``node`` with every alias expanded (each shared node counted once per use)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise DocumentError("an alias refers to the node that contains it (a recursive document)", node.start_mark)
    open_nodes.add(id(node))
    if isinstance(node, yaml.SequenceNode):
        size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        size = 1 + sum(_expanded_size(k, sizes, open_nodes) + _expanded_size(v, sizes, open_nodes)
                       for k, v in node.value)
    else:
        size = 1
    open_nodes.discard(id(node))
    if size > MAX_NODES:
        raise DocumentError(f"its aliases (*name) expand it to more than {MAX_NODES:,} values; at most {MAX_NODES:,} "
                            f"are allowed, so write the values out", node.start_mark)
    sizes[id(node)] = size
    return size


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {show(key)}; a key may appear once in an object")
        doc[key] = value
    return doc


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` except that an exponent without a dot (``2e-3``) is a float, as in YAML 1.2
    (PyYAML follows YAML 1.1 and would hand back the string '2e-3'), duplicate keys and alias bombs are
    errors, and a text over ``MAX_DOCUMENT_BYTES`` is refused before parsing."""
    if len(text) > MAX_DOCUMENT_BYTES:
        raise DocumentError(f"{len(text):,} characters is more than the {MAX_DOCUMENT_BYTES:,} allowed")
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RecursionError:
        raise DocumentError("nested too deeply") from None


def parse_text(text: str, label: str, *, as_json: bool = False, error: type[Exception] = GenomeError) -> Any:
    """Parse a YAML (or JSON) text; anything malformed raises ``error`` starting with ``label``."""
    try:
        if as_json:
            return json.loads(text, object_pairs_hook=_unique_keys)
        return load_yaml(text)
    except json.JSONDecodeError as exc:
        raise error(f"{label}: malformed JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
        raise error(f"{label}: malformed YAML{where}: {problem}") from None
    except (ValueError, RecursionError) as exc:  # JSON's duplicate keys, 5,000-digit integers, deep nesting
        problem = str(exc) if isinstance(exc, ValueError) else "nested too deeply"
        raise error(f"{label}: malformed JSON: {problem}") from None


def read_document(path: str | Path, error: type[Exception] = GenomeError) -> Any:
    """Parse a YAML or JSON file; a missing, oversized or malformed file raises ``error`` naming the file."""
    from nas.paths import check_length

    path = check_length(path, "file", error)
    if path.is_dir():
        raise error(f"{path} is a directory; give a YAML or JSON file")
    if not path.is_file():
        raise error(f"file not found: {path}")
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise error(f"{path}: {size / 2**20:,.1f} MB is too large for a genome or config file; "
                    f"at most {MAX_DOCUMENT_BYTES / 2**20:g} MB")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not a YAML or JSON text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise error(f"{path}: cannot be read ({exc.strerror})") from None
    return parse_text(text, str(path), as_json=path.suffix == ".json", error=error)


def load_genome(spec: str | Path | Mapping[str, Any] | Genome, **overrides: Any) -> Genome:
    """A genome from a preset name, a YAML/JSON file, a mapping or a genome.

    ``overrides`` (``image_size=32``, ``num_classes=10``) replace top-level fields; ``None`` values
    are ignored so CLI flags that were not given pass straight through.
    """
    import os

    if isinstance(spec, os.PathLike) and not isinstance(spec, Path):
        spec = Path(os.fspath(spec))
    if not isinstance(spec, (str, Path, Mapping, Genome)):
        raise GenomeError(f"load_genome(spec): a genome must be a mapping of fields, got {type(spec).__name__} "
                          f"{show(spec)}; or give a preset name or a genome file (str or Path), or a Genome")
    if not isinstance(spec, (str, Path)):
        return parse_genome(spec, **overrides)
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
    raise GenomeError(f"no preset or genome file named {show(text)}{closest(text, PRESETS)}; see `nas presets`")


def genome_to_yaml(genome: Genome, metadata: Mapping[str, Any] | None = None) -> str:
    """The canonical document as YAML, with an optional ``metadata`` block that loading ignores."""
    doc: dict[str, Any] = genome.to_dict()
    if metadata:
        doc = {"metadata": dict(metadata), **doc}
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=None)


def save_genome(genome: Genome, path: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
    from nas.writes import atomic_write

    path = Path(path)
    if path.suffix == ".json":
        doc = genome.to_dict() if not metadata else {"metadata": dict(metadata), **genome.to_dict()}
        atomic_write(path, json.dumps(doc, indent=2) + "\n")
    else:
        atomic_write(path, genome_to_yaml(genome, metadata))
    return path
