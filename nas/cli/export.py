"""``nas export DIR --pick RULE``: write the genome (and weights) of the trial a rule picks from a study."""
from __future__ import annotations

import argparse

from nas.cli.common import print_json


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export the best architecture of a study as a genome file",
        description="Pick one COMPLETE trial of a study by a rule and write its genome with a metadata block "
        "(study, trial, rule, metrics, params, FLOPs, versions, date). `nas build FILE` rebuilds it.",
        epilog="rules: max:NAME, min:NAME or knee, optionally with 'where NAME<=NUMBER, ...', e.g. "
        "'max:val_acc where flops<=5e7', 'min:flops where val_acc>=0.95', knee",
    )
    p.add_argument("dir", help="study directory")
    p.add_argument("--pick", required=True, metavar="RULE", help="selection rule, e.g. knee or 'max:val_acc'")
    p.add_argument("--out", default="best.yaml", help="genome file to write (default: best.yaml)")
    p.add_argument("--weights", metavar="FILE",
                   help="also write the trial's trained state dict here (needs keep_checkpoints: pareto or all)")
    p.add_argument("--verify", action="store_true",
                   help="rebuild the written genome, re-count params and FLOPs, fail on any drift")
    p.add_argument("--confirmed", action="store_true",
                   help="pick from the confirmed front (`nas study confirm DIR`) and write its confirmed metrics")
    p.add_argument("--force", action="store_true",
                   help="replace an existing --out or --weights file of yours (a study's own files are never replaced)")
    p.add_argument("--json", action="store_true", help="print the export as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.analysis.export import export_trial
    from nas.paths import check_output_file, refuse_run_file
    from nas.writes import check_target

    for option, path in (("--out", args.out), ("--weights", args.weights)):
        if path is not None:  # before anything is read: nothing of a study's, nor a file of yours without --force
            check_output_file(path, option)
            refuse_run_file(path, option, run_dir=args.dir)
            check_target(path, option, force=args.force)
    result = export_trial(args.dir, args.pick, args.out, weights=args.weights, verify=args.verify,
                          confirmed=args.confirmed)
    if args.json:
        print_json(result.to_dict())
        return 0
    meta = result.metadata
    values = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v:,}" for k, v in meta["objectives"].items())
    where = "in the study " if meta.get("confirmed") else ""
    print(f"trial {result.selection.number} ({result.selection.reason}): {where}{values}; "
          f"params {meta['params']:,}, flops {meta['flops']:,} MACs")
    conf = meta.get("confirmed")
    if conf:
        trained = {k: m for k, m in conf["metrics"].items()
                   if m.get("mean") is not None and k not in ("params", "flops")}
        stats = ", ".join(f"{k} {m['mean']:.4g}" + (f" ± {m['std']:.2g}" if m.get("std") is not None else "")
                          for k, m in trained.items())
        budget = conf["budget"] or {}
        print(f"confirmed over {conf['n_seeds']} seeds at {budget.get('epochs', budget.get('seconds'))} "
              f"{'epochs' if 'epochs' in budget else 's'}: {stats}")
    print(f"wrote {result.path}")
    if result.weights is not None:
        print(f"wrote {result.weights} (loads into the rebuilt network with strict=True)")
    if result.verified is not None:
        v = result.verified
        print(f"verified: rebuilt {v.key} has params {v.params:,} and flops {v.flops:,}, as stored"
              + ("; weights load" if v.weights_loaded else ""))
    return 0
