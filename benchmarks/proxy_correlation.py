"""How well each zero-cost proxy ranks architectures by their short-training accuracy.

Samples architectures from a search space with Optuna's random sampler (those over the FLOPs limit are
drawn again), trains each one with the quickstart budget (mnist5k, 3 epochs, batch 64, lr 2e-3, seed
0), scores it with every proxy at initialisation, and prints Kendall's tau-b between each proxy and the
validation accuracy: over all architectures, and per mixer family (architectures that use a mixer in
at least one stage; "single mixer" = every stage the same mixer).

Every training and every proxy score is appended to a JSON-lines cache keyed by the genome key, so a
rerun (or a run with more architectures) trains only what is missing:

    python benchmarks/proxy_correlation.py                      # 64 architectures, all proxies
    python benchmarks/proxy_correlation.py --phase train        # only fill the training cache
    python benchmarks/proxy_correlation.py --n 80 --threads 2   # more architectures, more threads

Training 64 architectures takes tens of minutes on two CPU cores; run it in the background
(``nohup ... > proxy_correlation.log &``). Timings depend on the machine and its load.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
BUDGET = {"epochs": 3, "batch_size": 64, "lr": 2.0e-3}  # nas/configs/studies/quickstart.yaml's budget


def _read_cache(path: Path) -> dict[str, dict[str, Any]]:
    """key -> merged record (later lines win field by field)."""
    out: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
            out.setdefault(rec["key"], {}).update(rec)
    return out


def _append(path: Path, record: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def sample_genomes(space_file: Path, n: int, seed: int, max_flops: float, data: Any) -> list[Any]:
    """``n`` distinct architectures from the space, drawn by Optuna's random sampler, under ``max_flops``."""
    import optuna

    from nas.cost import count_cost
    from nas.genome import parse_genome
    from nas.search.space import load_space

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = load_space(space_file)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    genomes, seen, draws = [], set(), 0
    while len(genomes) < n:
        draws += 1
        if draws > 50 * n:
            raise SystemExit(f"only {len(genomes)} feasible architectures in {draws} draws")
        trial = study.ask()
        genome = parse_genome(space.suggest(trial), in_channels=data.channels, num_classes=data.num_classes)
        if genome.key in seen or count_cost(genome).flops > max_flops:
            continue
        seen.add(genome.key)
        genomes.append(genome)
    return genomes


def family_of(genome: Any) -> tuple[str, ...]:
    return tuple(sorted({s.mixer for s in genome.stages}))


def kendall_tau(x: list[float], y: list[float]) -> float:
    from scipy.stats import kendalltau

    if len(x) < 3:
        return float("nan")
    return float(kendalltau(x, y).statistic)  # tau-b: ties (equal scores) are accounted for


def best_of_k_gain(rows: list[dict[str, Any]], fields: dict[str, str], *, k: int, draws: int,
                   seed: int) -> dict[str, float]:
    """Mean over random groups of ``k`` rows of (val_acc of the group's best by each score) minus the
    group's mean val_acc: what ``prescreen: {keep: 1/k}`` gains per trial slot over training a random one."""
    import random

    rng = random.Random(seed)
    groups = [rng.sample(rows, k) for _ in range(draws)] if len(rows) >= k else []
    out = {}
    for name, field in fields.items():
        gains = [max(g, key=lambda r: r[field])["val_acc"] - sum(r["val_acc"] for r in g) / k for g in groups]
        out[name] = sum(gains) / len(gains) if gains else float("nan")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=str(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml"))
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--n", type=int, default=64, help="architectures to sample (default 64)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the sampler, the split and every training")
    ap.add_argument("--max-flops", type=float, default=5e6, help="FLOPs limit in MACs (default 5e6, the quickstart's)")
    ap.add_argument("--batch", type=int, default=32, help="proxy batch size (default 32, as studies use)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the machine is shared)")
    ap.add_argument("--phase", choices=("all", "train", "table"), default="all",
                    help="train: fill the training cache only; table: print from the cache only")
    ap.add_argument("--cache", default=str(ROOT / "benchmarks" / "results" / "proxy_correlation.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from nas.cost import count_cost
    from nas.data import load_dataset
    from nas.train import TrainConfig, train

    cache_path = Path(args.cache)
    data = load_dataset(args.data, seed=args.seed)
    genomes = sample_genomes(Path(args.space), args.n, args.seed, args.max_flops, data)
    cache = _read_cache(cache_path)
    config = TrainConfig.from_dict(dict(BUDGET))
    if args.phase != "table":
        for i, genome in enumerate(genomes):
            if "val_acc" in cache.get(genome.key, {}):
                continue
            t0 = time.perf_counter()
            result = train(genome, data, config, seed=args.seed)
            cost = count_cost(genome)
            rec = {"key": genome.key, "genome": genome.to_dict(), "layout": genome.layout,
                   "family": list(family_of(genome)), "flops": int(cost.flops), "params": int(cost.params),
                   "val_acc": float(result.val_acc),
                   "train_seconds": time.perf_counter() - t0, "budget": BUDGET, "data": args.data, "seed": args.seed}
            _append(cache_path, rec)
            cache.setdefault(genome.key, {}).update(rec)
            print(f"[{i + 1}/{len(genomes)}] {genome.key} {genome.layout} val_acc {rec['val_acc']:.4f} "
                  f"({rec['train_seconds']:.0f}s)", flush=True)
    if args.phase == "train":
        return
    from nas.proxy import PROXIES, proxy_batch, score

    batch = proxy_batch(data, args.batch, seed=args.seed, image_size=genomes[0].image_size)
    tag = f"b{args.batch}s{args.seed}"
    if args.phase == "all":
        for genome in genomes:
            rec = cache.setdefault(genome.key, {})
            new = {}
            for name in PROXIES:
                field = f"proxy_{name}_{tag}"
                if field not in rec:
                    t0 = time.perf_counter()
                    new[field] = score(name, genome, batch, seed=args.seed)
                    new[f"seconds_{name}_{tag}"] = time.perf_counter() - t0
            if new:
                _append(cache_path, {"key": genome.key, **new})
                rec.update(new)
    print_table(genomes, cache, tag, args)


def print_table(genomes: list[Any], cache: dict[str, dict[str, Any]], tag: str, args: argparse.Namespace) -> None:
    from nas.proxy import PROXIES

    rows = [cache[g.key] | {"_family": family_of(g)} for g in genomes if "val_acc" in cache.get(g.key, {})]
    groups: list[tuple[str, list[dict[str, Any]]]] = [("all", rows)]
    for mixer in ("attention", "reattention", "shift", "conv"):
        groups.append((f"uses {mixer}", [r for r in rows if mixer in r["_family"]]))
    groups.append(("single mixer", [r for r in rows if len(r["_family"]) == 1]))
    print(f"Kendall tau-b of each proxy (at initialisation, batch {args.batch}, seed {args.seed}) against "
          f"{BUDGET['epochs']}-epoch val_acc on {args.data} ({len(rows)} architectures of "
          f"{Path(args.space).name}, FLOPs <= {args.max_flops:g})")
    names = list(PROXIES) + ["flops", "params"]
    print("| group | n | " + " | ".join(names) + " |")
    print("|---|---|" + "---|" * len(names))
    for label, members in groups:
        cells = []
        for name in names:
            field = f"proxy_{name}_{tag}" if name in PROXIES else name
            # flops and params are the baselines: how much does size alone say?
            pairs = [(float(r[field]), r["val_acc"]) for r in members if r.get(field) is not None]
            tau = kendall_tau([p[0] for p in pairs], [p[1] for p in pairs])
            cells.append("-" if math.isnan(tau) else f"{tau:+.3f}")
        print(f"| {label} | {len(members)} | " + " | ".join(cells) + " |")
    # How much of a proxy is model size, and what pre-screening with keep 0.25 would gain on these rows.
    fields = {n: (f"proxy_{n}_{tag}" if n in PROXIES else n) for n in names}
    scored = [r for r in rows if all(r.get(f) is not None for f in fields.values())]
    print(f"\nsize and pre-screening ({len(scored)} architectures):")
    print("| | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for cost in ("params", "flops"):
        print(f"| tau vs {cost} | " + " | ".join(
            f"{kendall_tau([r[f] for r in scored], [r[cost] for r in scored]):+.3f}" for f in fields.values()) + " |")
    gains = best_of_k_gain(scored, fields, k=4, draws=5000, seed=args.seed)
    print("| best of 4 by it, val_acc minus a random one of the 4 | " + " | ".join(
        f"{gains[n]:+.3f}" for n in names) + " |")
    secs = {n: [r[f"seconds_{n}_{tag}"] for r in rows if f"seconds_{n}_{tag}" in r] for n in PROXIES}
    accs = sorted(r["val_acc"] for r in rows)
    if accs:
        print(f"val_acc: min {accs[0]:.3f}, median {accs[len(accs) // 2]:.3f}, max {accs[-1]:.3f}")
    print("median proxy seconds per architecture (first scoring, this machine): " + ", ".join(
        f"{n} {sorted(v)[len(v) // 2]:.3f}" for n, v in secs.items() if v))


if __name__ == "__main__":
    main()
