"""``nas build SPEC``: the network a preset or genome file describes, stage by stage.

The model is built on the ``meta`` device: every module and parameter shape exists, no memory is
allocated and no weights are initialised, so even ViT-L/16 is summarised instantly.
"""
from __future__ import annotations

import argparse
from typing import Any

import torch
from torch import nn

from nas.cli.common import print_json, print_table
from nas.cli.flags import CLASSES, IMAGE_SIZE
from nas.genome import PRESETS, Genome, load_genome
from nas.models import VisionNet, build_model


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "build",
        help="build a genome and print its stages and parameters",
        description="Build the network of a preset or genome file and print, per stage, its mixer, depth, "
        "width, token grid and parameters.",
    )
    p.add_argument("spec", metavar="SPEC", help="a preset name (see `nas presets`) or a genome file (.yaml, .json)")
    p.add_argument("--image-size", type=IMAGE_SIZE, metavar="N", help="input side length, replacing the genome's")
    p.add_argument("--num-classes", type=CLASSES, metavar="K", help="classifier outputs, replacing the genome's")
    p.add_argument("--json", action="store_true", help="print params, key, layout, stages and the canonical genome")
    p.set_defaults(func=run)


def meta_model(genome: Genome) -> VisionNet:
    """The built network with shapes only (see the module docstring)."""
    with torch.device("meta"):
        return build_model(genome)


def _count(*modules: nn.Module | nn.Parameter | None) -> int:
    total = 0
    for m in modules:
        if isinstance(m, nn.Parameter):
            total += m.numel()
        elif m is not None:
            total += sum(p.numel() for p in m.parameters())
    return total


def summarize(genome: Genome) -> dict[str, Any]:
    """Per-part parameter counts and token grids; the parts add up to ``params``."""
    model = meta_model(genome)
    prefix = 1 if genome.pool == "cls" else 0
    if genome.stem == "patch":
        size = int(genome.patch_size)
        side, stem_desc, stem_dim = genome.image_size // size, f"patch {size}x{size}", genome.stages[0].dim
    else:
        stride = int(genome.stem_stride)
        side, stem_desc, stem_dim = genome.image_size // stride, f"conv 3x3/{stride}", int(genome.stem_dim)
    stem = {"part": "stem", "mixer": stem_desc, "depth": None, "dim": stem_dim, "grid": [side, side],
            "tokens": prefix + side * side, "params": _count(model.stem, model.cls_token, model.pos_embed)}
    stages = []
    for i, (stage, module) in enumerate(zip(genome.stages, model.stages)):
        grid = module[-1].grid  # every stage ends with a block; its output grid is the stage's
        stages.append({"part": f"stage {i}", "mixer": stage.mixer, "depth": stage.depth, "dim": stage.dim,
                       "grid": [grid.h, grid.w], "tokens": grid.tokens, "params": _count(module)})
    head = {"part": "head", "mixer": genome.pool + " pool", "depth": None, "dim": genome.num_classes, "grid": None,
            "tokens": None, "params": _count(model.norm, model.pre_logits, model.head)}
    return {"key": genome.key, "layout": genome.layout, "params": _count(model), "depth": genome.depth,
            "image_size": genome.image_size, "num_classes": genome.num_classes,
            "stem": stem, "stages": stages, "head": head, "genome": genome.to_dict()}


def _preset_note(spec: str, genome: Genome) -> str | None:
    """The preset's source, and its published size when the genome is the preset unchanged."""
    preset = PRESETS.get(spec)
    if preset is None:
        return None
    note = f"preset {spec}: {preset.source}"
    if preset.params_m is not None and load_genome(spec).key == genome.key:
        note += f"; published {preset.params_m:g}M params"
    return note


def _row(part: dict[str, Any]) -> dict[str, Any]:
    grid = part["grid"]
    return {"stage": part["part"], "mixer": part["mixer"], "depth": "" if part["depth"] is None else part["depth"],
            "dim": part["dim"], "grid": f"{grid[0]}x{grid[1]}" if grid else "", "tokens": part["tokens"] or "",
            "params": part["params"]}


def run(args: argparse.Namespace) -> int:
    genome = load_genome(args.spec, image_size=args.image_size, num_classes=args.num_classes)
    summary = summarize(genome)
    note = _preset_note(args.spec, genome)
    if args.json:
        print_json({**summary, "preset": args.spec if note else None})
        return 0
    print(f"genome {summary['key']}  layout {summary['layout']}  depth {summary['depth']}  "
          f"input {genome.image_size}x{genome.image_size}  classes {genome.num_classes}")
    rows = [_row(summary["stem"]), *(_row(s) for s in summary["stages"]), _row(summary["head"])]
    rows.append({"stage": "total", "mixer": "", "depth": summary["depth"], "dim": "", "grid": "", "tokens": "",
                 "params": summary["params"]})
    print_table(rows)
    print(f"params: {summary['params']:,} ({summary['params'] / 1e6:.2f}M)")
    if note:
        print(note)
    return 0
