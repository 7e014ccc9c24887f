"""``nas presets [--json]``: the named genomes, with their published sizes and sources."""
from __future__ import annotations

import argparse
from typing import Any

from nas.cli.common import print_json, print_table
from nas.genome import PRESETS, parse_genome


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "presets",
        help="list the preset genomes",
        description="List the preset genomes: the seed papers' published configurations and the 32x32 variants.",
    )
    p.add_argument("--json", action="store_true", help="print {name: {layout, image_size, params_m, source, ...}}")
    p.set_defaults(func=run)


def describe() -> dict[str, dict[str, Any]]:
    """One entry per preset, keyed by name (so ``list(...)`` gives the names)."""
    out: dict[str, dict[str, Any]] = {}
    for name, preset in PRESETS.items():
        genome = parse_genome(preset.genome)
        out[name] = {
            "layout": genome.layout,
            "image_size": genome.image_size,
            "num_classes": genome.num_classes,
            "params_m": preset.params_m,
            "flops_g": preset.flops_g,
            "params_rtol": preset.params_rtol,
            "source": preset.source,
            "key": genome.key,
        }
    return out


def run(args: argparse.Namespace) -> int:
    presets = describe()
    if args.json:
        print_json(presets)
        return 0
    rows = [
        {"name": name, "layout": p["layout"], "image": p["image_size"], "classes": p["num_classes"],
         "published params (M)": "-" if p["params_m"] is None else f"{p['params_m']:g}"}
        for name, p in presets.items()
    ]
    print_table(rows, title="presets")
    # Sources are long; listed once each below the table rather than wrapped into a column.
    by_source: dict[str, list[str]] = {}
    for name, p in presets.items():
        by_source.setdefault(p["source"], []).append(name)
    print("sources:")
    for source, names in by_source.items():
        print(f"  {', '.join(names)}: {source}")
    return 0
