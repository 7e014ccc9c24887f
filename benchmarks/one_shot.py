"""One-shot (weight-sharing) studies against the quickstart: throughput, ranking, confirmed hypervolume.

Three measurements, each cached in a JSON file (``--results``) so that a later invocation runs only
what is missing, then printed as tables:

1. Throughput: architectures scored per hour by the one-shot study (supernet training included, for a
   search of ``--archs`` architectures, default 2,000) against architectures trained per hour by the
   quickstart (``studies/quickstart.yaml``: TPE + MO-ASHA, 24 trials of 3 epochs), on this machine.
2. Ranking: ``--rank-archs`` architectures (default 24) drawn to span all four mixers and the
   width/depth range, each trained stand-alone over seeds 0-2 with the quickstart's budget, against
   their supernet scores: Kendall tau and Spearman rho with 95% bootstrap intervals, overall and per
   mixer (of the first stage).
3. Final hypervolume of the *confirmed* front (box val_acc 0..1 x FLOPs 0..5e6) of the one-shot study
   against the quickstart's front, seeds 0-2, with the wall time each took.

    python benchmarks/one_shot.py                      # everything missing, then the tables
    python benchmarks/one_shot.py --only quickstart    # one part: quickstart | one_shot | ranking
    python benchmarks/one_shot.py --table-only
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
RESULTS = ROOT / "benchmarks" / "results" / "one_shot.json"
WORKDIR = Path("/tmp/nas-one-shot-bench")
SEEDS = (0, 1, 2)


def _machine() -> str:
    return f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}"


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)  # atomic: an interrupted benchmark keeps what it measured


def run_quickstart(seed: int, workdir: Path) -> dict[str, Any]:
    """One quickstart run (TPE + MO-ASHA) through the search-efficiency benchmark's runner."""
    import search_efficiency as se

    r = se.run_one("quickstart", [], seed, workdir / "quickstart")
    r["trained_any"] = r["trained"] + r["pruned"]  # every architecture that got any training
    r["final_hv"] = r["curve"][-1][1]
    r["machine"] = _machine()
    return r


# -- ranking: architectures trained stand-alone ------------------------------------------------------
def ranking_architectures(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` genomes of the quickstart's space spanning the four first-stage mixers and the width/depth
    range: per mixer, the feasible draws (FLOPs within the quickstart's limit) sorted by FLOPs, taken at
    evenly spaced ranks (so each mixer contributes its smallest to its largest networks)."""
    import random

    from nas.cost import count_cost
    from nas.search.config import load_study_config
    from nas.supernet.sampling import draw

    config = load_study_config(ROOT / "studies" / "quickstart.yaml")
    space = config.load_space()
    limit = config.constraints.get("flops", float("inf"))
    fixed = {"in_channels": 1, "num_classes": 10}
    rng = random.Random(seed)
    mixers = ("attention", "reattention", "shift", "conv")
    per = -(-n // len(mixers))
    pools: dict[str, dict[str, tuple[int, Any]]] = {m: {} for m in mixers}
    while any(len(p) < 4 * per for p in pools.values()):
        g = draw(space, rng, fixed)
        pool = pools[g.stages[0].mixer]
        if len(pool) >= 4 * per or g.key in pool:
            continue
        flops = int(count_cost(g).flops)
        if flops <= limit:
            pool[g.key] = (flops, g)
    out = []
    for m in mixers:
        ranked = sorted(pools[m].values(), key=lambda fg: fg[0])
        picks = [ranked[round(i * (len(ranked) - 1) / max(per - 1, 1))] for i in range(per)]
        out += [{"mixer": m, "flops": f, "genome": g.to_dict(), "key": g.key} for f, g in picks]
    return out[:n] if len(out) > n else out


def train_standalone(genome: dict[str, Any], seed: int) -> dict[str, Any]:
    """One stand-alone training at the quickstart's budget (what a quickstart trial trains)."""
    from nas.search.config import load_study_config
    from nas.train import TrainConfig, train

    config = load_study_config(ROOT / "studies" / "quickstart.yaml")
    start = time.time()
    result = train(genome, config.data, TrainConfig.from_dict(dict(config.budget)), seed=seed)
    return {"val_acc": result.val_acc, "val_loss": result.val_loss, "wall_s": time.time() - start,
            "machine": _machine()}


def run_standalone(results: dict[str, Any], path: Path, n: int) -> None:
    archs = results.get("ranking/architectures")
    if archs is None or len(archs) != n:
        archs = results["ranking/architectures"] = ranking_architectures(n)
        _save(results, path)
    for seed in SEEDS:
        for a in archs:
            key = f"standalone/{a['key']}/{seed}"
            if key not in results:
                results[key] = train_standalone(a["genome"], seed)
                _save(results, path)
                print(f"{key} {a['mixer']}: val_acc {results[key]['val_acc']:.4f} "
                      f"({results[key]['wall_s']:.0f}s)", flush=True)


# -- the one-shot study -----------------------------------------------------------------------------
def one_shot_status(out: Path, name: str) -> dict[str, Any]:
    """What a (possibly unfinished) one-shot study folder shows: phase wall times, scoring rate, HVs."""
    from optuna.trial import TrialState

    from nas.search.storage import load_optuna_study

    r: dict[str, Any] = {}
    train = out / "supernet" / "train.json"
    if train.is_file():
        info = json.loads(train.read_text())
        r.update(supernet_train_s=info["wall_s"], supernet_params=info["params"], supernet_paths=info["paths"])
    timings = out / "supernet" / "timings.jsonl"
    if timings.is_file():
        for line in timings.read_text().splitlines():
            r.update({k: v for k, v in json.loads(line).items() if k.endswith("_s")})
    if (out / "study.db").is_file():
        trials = [t for t in load_optuna_study(out, name, None).get_trials(deepcopy=False)
                  if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
        if trials:
            first = min(t.datetime_start for t in trials)
            last = max(t.datetime_complete for t in trials)
            r["scored"] = len(trials)
            r["scored_complete"] = sum(1 for t in trials if t.state == TrialState.COMPLETE)
            r["scoring_span_s"] = (last - first).total_seconds()
    confirm = out / "confirm" / "confirm.json"
    if confirm.is_file():
        doc = json.loads(confirm.read_text())
        r["confirm"] = {k: doc.get(k) for k in ("hypervolume", "correlations", "elapsed_s")}
    return r


def run_one_shot(seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
    from nas.search.config import load_study_config
    from nas.search.runner import run_study

    config = load_study_config(ROOT / "studies" / "one_shot.yaml", [*overrides, f"seed={seed}"])
    out = workdir / "one_shot" / f"seed{seed}"
    start = time.time()
    run_study(config, out)
    r = {"seed": seed, "overrides": overrides, "wall_s": time.time() - start, **one_shot_status(out, config.name),
         "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": _machine()}
    return r


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=["quickstart", "standalone", "one_shot", "ranking"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of studies/one_shot.yaml (recorded with the result)")
    parser.add_argument("--rank-archs", type=int, default=24)
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args(argv)
    results = _load(args.results)
    if not args.table_only and "quickstart" in args.only:
        for seed in args.seeds:
            key = f"quickstart/{seed}"
            if key not in results:
                results[key] = run_quickstart(seed, args.workdir)
                _save(results, args.results)
                print(f"{key}: {results[key]['wall_s']:.0f}s, HV {results[key]['final_hv']:.4f}", flush=True)
    if not args.table_only and "one_shot" in args.only:
        for seed in args.seeds:
            key = f"one_shot/{seed}"
            if key not in results:
                results[key] = run_one_shot(seed, args.workdir, args.set)
                _save(results, args.results)
    if not args.table_only and "standalone" in args.only:
        run_standalone(results, args.results, args.rank_archs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
