"""``nas ablate CONFIG``: run an ablation grid (variants x seeds) and write its table."""
from __future__ import annotations

import argparse
from pathlib import Path

from nas.cli.common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ablate", help="run an ablation (variants x seeds) and write its table; resumes")
    parser.add_argument("config", help="ablation config: a YAML file, or a shipped config by name (coatnet_layouts, shiftvit_ratio, ...)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config field, e.g. --set data=cifar10 --set budget.epochs=100")
    parser.add_argument("--out", help="ablation directory (default: runs/ablations/<name>); rerun to resume")
    parser.add_argument("--json", action="store_true", help="print the table as JSON (rows with *_mean, *_std)")
    parser.add_argument("--retry-failed", action="store_true", help="train cells stored as failed again")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.ablation.claims import claims_markdown, evaluate_claims
    from nas.ablation.config import load_ablation_config
    from nas.ablation.curves import convergence_note, mean_curves, records_loss_floor
    from nas.ablation.runner import run_ablation
    from nas.ablation.table import ablation_table, table_rows, to_markdown, write_table
    from nas.paths import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    config = load_ablation_config(Path(args.config), args.overrides)
    out_dir = Path(args.out) if args.out else Path("runs") / "ablations" / config.name
    result = run_ablation(config, out_dir, quiet=args.json, retry_failed=args.retry_failed)
    table = ablation_table(result.records, [v.name for v in config.variants], config.baseline)
    claims = evaluate_claims(config.claims, result.records)
    curves = mean_curves(result.records, list(table["variant"]))
    floor = records_loss_floor(config.budget, result.records)
    files = write_table(table, result.out_dir, title=config.name, description=config.description, claims=claims,
                        curves=curves, loss_floor=floor)
    missing = result.total - len(result.records)
    from nas.search.outcome import check_cells_outcome

    rerun = f"`nas ablate {args.config} --retry-failed" + (f" --out {args.out}`" if args.out else "`")
    if args.json:
        print_json({
            "name": config.name, "dir": str(result.out_dir), "baseline": config.baseline, "seeds": list(config.seeds),
            "cells": {"total": result.total, "skipped": result.skipped, "ran": result.ran, "missing": missing},
            "elapsed_s": result.elapsed_s, "rows": table_rows(table), "claims": [c.to_dict() for c in claims],
            "files": {k: str(v) for k, v in files.items()},
        })
        check_cells_outcome(result.records, f"ablation {config.name!r}", rerun)
        return 0 if missing == 0 else 1
    print()
    print(to_markdown(table))
    if curves:
        print(convergence_note(curves, floor) + "\n")
    if claims:
        print("Claims\n\n" + claims_markdown(claims))
    print(f"{result.ran} cell(s) trained, {result.skipped} already finished, {missing} missing; "
          f"{result.elapsed_s:.0f}s; table in {files['md']} (.csv, .tex, .png)")
    check_cells_outcome(result.records, f"ablation {config.name!r}", rerun)
    return 0 if missing == 0 else 1

