"""``nas validate FILE``: whether a genome file is valid and, if not, what is wrong with it."""
from __future__ import annotations

import argparse

from nas.cli.build import meta_model
from nas.genome import load_genome


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "validate",
        help="check a genome file",
        description="Check a genome file (YAML or JSON; a preset name also works). Prints "
        "'valid: KEY (LAYOUT, N params)', or the error naming the field, the value and what is allowed "
        "(exit status 2).",
    )
    p.add_argument("file", metavar="FILE", help="a genome file (.yaml, .yml, .json)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.models.footprint import check_fits

    genome = load_genome(args.file)  # a GenomeError propagates: main prints it and exits 2
    check_fits(genome)  # closed-form: a network too large to build is refused before any module exists
    params = sum(p.numel() for p in meta_model(genome).parameters())  # building proves the genome builds
    print(f"valid: {genome.key} ({genome.layout}, {params:,} params)")
    return 0
