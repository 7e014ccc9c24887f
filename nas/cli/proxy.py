"""``nas proxy SPEC --data D``: zero-cost proxy scores of a genome at initialisation, with their time."""
from __future__ import annotations

import argparse
import time
from typing import Any

from nas.cli.common import print_json, print_table
from nas.cli.flags import ANY_COUNT, SEED, THREADS
from nas.errors import NasError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    from nas.proxy import DEFAULT_BATCH, PROXIES

    p = subparsers.add_parser(
        "proxy", help="zero-cost proxy scores of an untrained genome (naswot, synflow, grad_norm, snip)",
        description="Score a genome at initialisation with zero-cost proxies on a fixed, seeded batch of the "
                    "dataset's training images (higher = predicted to train better), and time each score.",
    )
    p.add_argument("spec", metavar="SPEC", help="preset name (see `nas presets`) or genome file (.yaml/.json)")
    p.add_argument("--data", default="mnist5k", metavar="NAME[:PATH]", help="dataset spec (default mnist5k)")
    p.add_argument("--proxy", default="all", choices=[*PROXIES, "all"], help="which proxy (default: all)")
    p.add_argument("--batch", type=ANY_COUNT, default=DEFAULT_BATCH,
                   help=f"images in the batch (default {DEFAULT_BATCH})")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the initial weights and of the batch draw")
    p.add_argument("--threads", type=THREADS, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.threads is None:
        return _run(args)
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(before)  # an in-process caller keeps its own setting


def _run(args: argparse.Namespace) -> int:
    from nas.data import load_dataset
    from nas.genome import load_genome
    from nas.proxy import PROXIES, proxy_batch, score

    genome = load_genome(args.spec)
    data = load_dataset(args.data, seed=args.seed, image_size=genome.image_size)
    batch = proxy_batch(data, args.batch, seed=args.seed, image_size=genome.image_size)
    names = list(PROXIES) if args.proxy == "all" else [args.proxy]
    rows, errors = [], {}
    for name in names:
        start = time.perf_counter()
        try:
            value: float | None = score(name, genome, batch, seed=args.seed)
        except NasError as exc:  # one proxy that cannot score this network does not hide the others
            value, errors[name] = None, str(exc)
        rows.append({"proxy": name, "score": value, "seconds": time.perf_counter() - start,
                     "what": errors.get(name, PROXIES[name].summary)})
    if len(errors) == len(names):
        raise NasError(f"{args.spec}: " + "; ".join(errors.values()))
    if args.json:
        print_json({"spec": args.spec, "key": genome.key, "layout": genome.layout, "data": data.name,
                    "batch": args.batch, "seed": args.seed,
                    "scores": {r["proxy"]: r["score"] for r in rows},
                    "seconds": {r["proxy"]: r["seconds"] for r in rows}, "errors": errors})
        return 0
    shown = [{**r, "score": "-" if r["score"] is None else r["score"]} for r in rows]
    print_table(shown, title=f"{args.spec} ({genome.layout}, key {genome.key}) on {batch.size} {data.name} images, "
                            f"seed {args.seed}; build + score time per proxy")
    return 0
