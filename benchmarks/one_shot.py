"""One-shot (weight-sharing) studies against the quickstart: throughput, ranking, confirmed hypervolume.

Three measurements, each cached in a JSON file (``--results``) so that a later invocation runs only
what is missing, then printed as tables:

1. Throughput: architectures scored per hour by the one-shot study (supernet training included, for a
   search of ``--archs`` architectures, default 2,000) against architectures trained per hour by the
   quickstart (``nas/configs/studies/quickstart.yaml``: TPE + MO-ASHA, 24 trials of 3 epochs), on this machine.
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


QUICKSTART_S_PER_TRIAL = 4.5  # the quickstart's 24 trials took 108 s here: sizes an equal-time run with room to spare


def one_shot_total_s(r: dict[str, Any]) -> float:
    """A one-shot run's total wall time, its supernet's training included when it was trained earlier."""
    return r["wall_s"] + (r.get("supernet_train_s", 0.0) if r.get("supernet_reused") else 0.0)


def run_quickstart_for(seed: int, seconds: float, workdir: Path, s_per_trial: float = QUICKSTART_S_PER_TRIAL
                       ) -> dict[str, Any]:
    """The quickstart (TPE + MO-ASHA) given ``seconds`` of wall time: ``n_trials`` raised so that it runs
    at least that long (``s_per_trial``: the fastest quickstart run's seconds per architecture), its
    hypervolume read at ``seconds`` from the trials fully trained by then."""
    import math

    import search_efficiency as se

    n_trials = math.ceil(seconds / s_per_trial * 1.2)
    r = se.run_one("quickstart", [f"n_trials={n_trials}"], seed, workdir / "equal_time")
    r["budget_s"], r["n_trials"] = seconds, n_trials
    r["hv_at_budget"] = max((hv for t, hv in r["curve"] if t <= seconds), default=0.0)
    r["ended_before_budget"] = r["wall_s"] < seconds  # then it had fewer trials than the time allowed
    r["final_hv"] = r["curve"][-1][1]
    r["machine"] = _machine()
    return r


def confirm_quickstart_front(seed: int, workdir: Path) -> dict[str, Any]:
    """The equal-time quickstart's final front retrained over seeds 0-2 at its own budget, as the one-shot
    front is: a study's own front is the best of single noisy trainings, a confirmed front is not."""
    from nas.confirm import confirm_study

    out = workdir / "equal_time" / "quickstart" / f"seed{seed}"
    start = time.time()
    confirm_study(out, top=0, epochs=3, seeds=[0, 1, 2], quiet=True)
    doc = json.loads((out / "confirm" / "confirm.json").read_text())
    return {"hypervolume": doc.get("hypervolume"), "correlations": doc.get("correlations"),
            "wall_s": time.time() - start, "machine": _machine()}


# -- ranking: architectures trained stand-alone ------------------------------------------------------
def ranking_architectures(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` genomes of the quickstart's space spanning the four first-stage mixers and the width/depth
    range: per mixer, the feasible draws (FLOPs within the quickstart's limit) sorted by FLOPs, taken at
    evenly spaced ranks (so each mixer contributes its smallest to its largest networks)."""
    import random

    from nas.cost import count_cost
    from nas.search.config import load_study_config
    from nas.supernet.sampling import draw

    config = load_study_config(ROOT / "nas" / "configs" / "studies" / "quickstart.yaml")
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

    config = load_study_config(ROOT / "nas" / "configs" / "studies" / "quickstart.yaml")
    start = time.time()
    result = train(genome, config.data, TrainConfig.from_dict(dict(config.budget)), seed=seed)
    return {"val_acc": result.val_acc, "val_loss": result.val_loss, "wall_s": time.time() - start,
            "machine": _machine()}


def run_standalone(results: dict[str, Any], path: Path, n: int) -> None:
    archs = results.get("ranking/architectures")
    if archs is None or len(archs) != n:
        archs = results["ranking/architectures"] = ranking_architectures(n)
        _save(results, path)
    by_mixer: dict[str, list[dict[str, Any]]] = {}
    for a in archs:
        by_mixer.setdefault(a["mixer"], []).append(a)
    rounds = max(len(v) for v in by_mixer.values())
    order = [v[i] for i in range(rounds) for v in by_mixer.values() if i < len(v)]  # mixers interleaved
    for seed in SEEDS:
        for a in order:
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
            r["trials"] = len(trials)
            distinct = [t for t in trials if t.user_attrs.get("reused_from") is None]  # a copy is no new architecture
            r["scored"] = len(distinct)
            r["scored_complete"] = sum(1 for t in distinct if t.state == TrialState.COMPLETE)
            r["reused"] = len(trials) - len(distinct)
            r["scoring_span_s"] = (last - first).total_seconds()
    confirm = out / "confirm" / "confirm.json"
    if confirm.is_file():
        doc = json.loads(confirm.read_text())
        r["confirm"] = {k: doc.get(k) for k in ("hypervolume", "correlations", "elapsed_s")}
    return r


def run_one_shot(seed: int, workdir: Path, overrides: list[str]) -> dict[str, Any]:
    from nas.search.config import load_study_config
    from nas.search.runner import run_study

    config = load_study_config(ROOT / "nas" / "configs" / "studies" / "one_shot.yaml", [*overrides, f"seed={seed}"])
    from nas.errors import ConfigError

    out = workdir / "one_shot" / f"seed{seed}"
    trained_before = (out / "supernet" / "weights.pt").is_file()  # a supernet trained earlier (same config, seed)
    start = time.time()
    try:
        run_study(config, out)  # an interrupted run of the same config resumes (supernet checkpoint, trials)
    except ConfigError as exc:
        if "holds a study whose" not in str(exc):
            raise
        print(f"{out}: a run of another config ({exc}); starting afresh", flush=True)
        shutil.rmtree(out)
        start = time.time()
        run_study(config, out)
    r = {"seed": seed, "overrides": overrides, "wall_s": time.time() - start, "supernet_reused": trained_before,
         **one_shot_status(out, config.name),
         "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), "machine": _machine()}
    return r


# -- ranking: supernet scores against stand-alone accuracy --------------------------------------------
def supernet_scores(results: dict[str, Any], path: Path, workdir: Path, seed: int = 0) -> dict[str, float]:
    """The seed-``seed`` one-shot study's supernet scores of the ranking architectures (cached)."""
    import torch

    from nas.search.config import load_study_config
    from nas.supernet.score import SubnetScorer

    archs = results.get("ranking/architectures") or []
    out = {a["key"]: results[f"supernet/{a['key']}"]["val_acc"] for a in archs if f"supernet/{a['key']}" in results}
    weights = workdir / "one_shot" / f"seed{seed}" / "supernet" / "weights.pt"
    if len(out) == len(archs) or not weights.is_file():
        return out
    config = load_study_config(ROOT / "nas" / "configs" / "studies" / "one_shot.yaml", [f"seed={seed}"])
    scorer = SubnetScorer(torch.load(weights, map_location="cpu", weights_only=False), data=config.data,
                          seed=seed, budget=dict(config.budget), constraints={}, study_dir=str(weights.parent),
                          calibration_batches=config.strategy.calibration_batches, device="cpu")
    for a in archs:
        if a["key"] not in out:
            r = scorer.score(a["genome"])
            results[f"supernet/{a['key']}"] = {k: r[k] for k in ("val_acc", "val_loss", "duration_s")}
            out[a["key"]] = r["val_acc"]
    _save(results, path)
    return out


def ranking_rows(results: dict[str, Any], scores: dict[str, float]) -> list[dict[str, Any]]:
    from statistics import mean

    from nas.stats import correlate

    archs = results.get("ranking/architectures") or []
    rows = []
    for group in ("all", "attention", "reattention", "shift", "conv"):
        xs, ys, seeds = [], [], []
        for a in archs:
            accs = [results[f"standalone/{a['key']}/{s}"]["val_acc"] for s in SEEDS
                    if f"standalone/{a['key']}/{s}" in results]
            if (group == "all" or a["mixer"] == group) and accs and a["key"] in scores:
                xs.append(scores[a["key"]])
                ys.append(mean(accs))
                seeds.append(len(accs))
        c = correlate(xs, ys)
        rows.append({"architectures": group, "n": c.n, "seeds": f"{min(seeds)}-{max(seeds)}" if seeds else "-",
                     "kendall_tau": c.kendall_tau, "tau_95": (c.kendall_low, c.kendall_high),
                     "spearman_rho": c.spearman_rho, "rho_95": (c.spearman_low, c.spearman_high)})
    rows.append(seed_agreement(results, archs))
    return rows


def seed_agreement(results: dict[str, Any], archs: list[dict[str, Any]]) -> dict[str, Any]:
    """How well one stand-alone seed ranks the architectures against another (pairs of seeds, averaged):
    the ceiling of any predictor of a single seed's accuracy, and a measure of how noisy the target is."""
    from itertools import combinations
    from statistics import mean

    from nas.stats import correlate

    taus, rhos, n = [], [], 0
    for a, b in combinations(SEEDS, 2):
        pairs = [(results[f"standalone/{x['key']}/{a}"]["val_acc"], results[f"standalone/{x['key']}/{b}"]["val_acc"])
                 for x in archs if f"standalone/{x['key']}/{a}" in results and f"standalone/{x['key']}/{b}" in results]
        c = correlate([p[0] for p in pairs], [p[1] for p in pairs])
        if c.n >= 3:
            taus.append(c.kendall_tau)
            rhos.append(c.spearman_rho)
            n = max(n, c.n)
    nan = float("nan")
    return {"architectures": "stand-alone seed vs seed (the noise ceiling)", "n": n, "seeds": "pairs",
            "kendall_tau": mean(taus) if taus else nan, "tau_95": (nan, nan),
            "spearman_rho": mean(rhos) if rhos else nan, "rho_95": (nan, nan)}


# -- tables ----------------------------------------------------------------------------------------------
def _f(x: Any, digits: int = 3) -> str:
    import math

    if isinstance(x, tuple):
        return "-" if any(math.isnan(v) for v in x) else f"[{x[0]:+.2f}, {x[1]:+.2f}]"
    if isinstance(x, float):
        return "-" if math.isnan(x) else f"{x:.{digits}g}"
    return str(x)


def print_tables(results: dict[str, Any], scores: dict[str, float], archs_target: int) -> None:
    from nas.text import pipe_table

    qs = [r for k, r in results.items() if k.startswith("quickstart/")]
    os_runs = [dict(r, label=k.split("/")[0]) for k, r in results.items() if k.startswith(("one_shot/", "one_shot["))]
    print("## Throughput (architectures per hour, this machine)\n")
    rows = []
    qs_rates = [r["trained_any"] / r["wall_s"] * 3600 for r in qs]
    qs_rate = sum(qs_rates) / len(qs_rates) if qs_rates else float("nan")
    for r in qs:
        rows.append(["quickstart (TPE + MO-ASHA, 24 trials x 3 epochs)", r["seed"], _f(r["wall_s"], 4),
                     f"{r['trained_any']} trained ({r['trained']} to the end)",
                     _f(r["trained_any"] / r["wall_s"] * 3600, 3), "-", r.get("machine", "")])
    for r in os_runs:
        train, span = r.get("supernet_train_s"), r.get("scoring_span_s")
        if train and span and r.get("scored"):
            total = train + span
            rate = r["scored"] / total * 3600
            rows.append([f"{r['label']} ({r.get('trials', r['scored'])} trials; supernet training included)", r["seed"],
                         _f(total, 4), f"{r['scored']} distinct ({r.get('scored_complete', '?')} scored, the rest "
                         f"infeasible), {r.get('reused', 0)} copies, in {span:.0f}s of search",
                         _f(rate, 3), f"{rate / qs_rate:.1f}x (scored only {r.get('scored_complete', 0) / total * 3600 / qs_rate:.1f}x)",
                         r.get("machine", "")])
    print(pipe_table(["run", "seed", "wall s", "architectures", "per hour", "vs quickstart mean", "machine"], rows))
    print("\n## Ranking: supernet score vs stand-alone val_acc (mean over seeds, quickstart budget)\n")
    rows = [[r["architectures"], r["n"], r["seeds"], _f(r["kendall_tau"]), _f(r["tau_95"]), _f(r["spearman_rho"]),
             _f(r["rho_95"])] for r in ranking_rows(results, scores)]
    print(pipe_table(["architectures", "n", "seeds", "Kendall tau", "95% CI", "Spearman rho", "95% CI"], rows))
    print("\n## Final hypervolume (box val_acc 0..1 x FLOPs 0..5e6)\n")
    rows = [["quickstart", r["seed"], _f(r["final_hv"], 4), _f(r["wall_s"], 4)] for r in qs]
    for r in os_runs:
        hv = (r.get("confirm") or {}).get("hypervolume") or {}
        wall = one_shot_total_s(r) if "wall_s" in r else float("nan")
        rows.append([f"{r['label']}, confirmed front", r["seed"], _f(hv.get("confirmed_fraction", float("nan")), 4),
                     _f(wall, 4)])
    for k, r in results.items():
        if k.startswith("quickstart_equal_time/"):
            rows.append([f"quickstart given the one-shot run's wall time ({r['n_trials']} trainings asked)", r["seed"],
                         _f(r["hv_at_budget"], 4), f"{r['budget_s']:.0f} (ran {r['wall_s']:.0f})"])
            hv = ((r.get("confirm") or {}).get("hypervolume") or {}).get("confirmed_fraction")
            if hv is not None:
                rows.append(["  its final front, confirmed over seeds 0-2 (not counted in its wall time)", r["seed"],
                             _f(hv, 4), f"+{r['confirm']['wall_s']:.0f} confirming"])
    print(pipe_table(["run", "seed", "final HV (fraction of the box)", "wall s"], rows))
    pairs = [(results[f"one_shot/{r['seed']}"], r) for k, r in results.items()
             if k.startswith("quickstart_equal_time/") and f"one_shot/{r['seed']}" in results]
    if pairs:
        diffs = [((o.get("confirm") or {}).get("hypervolume") or {}).get("confirmed_fraction", float("nan"))
                 - q["hv_at_budget"] for o, q in pairs]
        print(f"\none-shot confirmed HV minus the quickstart's at equal wall time, per seed: "
              + ", ".join(f"{d:+.3f}" for d in diffs))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", default=["quickstart", "standalone", "one_shot", "equal_time",
                                                      "equal_time_confirm", "ranking"])
    parser.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--workdir", type=Path, default=WORKDIR)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a field of nas/configs/studies/one_shot.yaml (recorded with the result)")
    parser.add_argument("--archs", type=int, default=2000, help="search size of the throughput comparison")
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
    if not args.table_only and "equal_time" in args.only:
        for seed in args.seeds:
            key, one_shot = f"quickstart_equal_time/{seed}", results.get(f"one_shot/{seed}")
            if key not in results and one_shot:
                rates = [r["wall_s"] / r["trained_any"] for k, r in results.items() if k.startswith("quickstart/")]
                results[key] = run_quickstart_for(seed, one_shot_total_s(one_shot), args.workdir,
                                                  min(rates, default=QUICKSTART_S_PER_TRIAL))
                _save(results, args.results)
                print(f"{key}: {results[key]['wall_s']:.0f}s, HV at {results[key]['budget_s']:.0f}s "
                      f"{results[key]['hv_at_budget']:.4f}", flush=True)
    if not args.table_only and "equal_time_confirm" in args.only:
        for seed in args.seeds:
            r = results.get(f"quickstart_equal_time/{seed}")
            if r is not None and "confirm" not in r:
                r["confirm"] = confirm_quickstart_front(seed, args.workdir)
                _save(results, args.results)
    if not args.table_only and "standalone" in args.only:
        run_standalone(results, args.results, args.rank_archs)
    for extra in (args.results.with_name("one_shot_standalone.json"), args.results.with_name("one_shot_run.json")):
        if extra != args.results:  # parts run as separate processes keep their own caches
            results = {**_load(extra), **results}
    scores = supernet_scores(results, args.results, args.workdir) if "ranking" in args.only or args.table_only else {}
    print_tables(results, scores, args.archs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
