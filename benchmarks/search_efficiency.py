"""Search efficiency: hypervolume against wall time for samplers, early stopping and pre-screening.

Every variant runs the quickstart study (``nas/configs/studies/quickstart.yaml``: the ``vit_family`` space on
mnist5k, 24 trials of 3 epochs, val_acc vs FLOPs under a 5e6-MAC limit, 2 trials at a time) for
each seed, with only the variant's overrides changed. All runs share one local Ray started by this
script (its start-up is not counted in any wall time) and one hypervolume reference point, the
issue's box val_acc 0..1 x FLOPs 0..5e6, so HV is a fraction of that box and comparable everywhere.

Each (variant, seed) result is cached in a JSON file (``--results``); a later invocation runs only
the missing ones (``--only VARIANT``, ``--seeds``), then prints the table and draws HV against wall
time (``--plot``). HV(t) uses each trial's completion timestamp (Optuna's ``datetime_complete``)
relative to the start of the run; only COMPLETE trials (fully trained) count.

Columns: wall time (median over seeds), trials trained / pruned (stopped early) / infeasible /
reused / prescreened (sums over seeds), final HV per seed, HV at 25/50/100% of the default's (nsga2)
wall time of the same seed (medians), and the time this variant took to reach the default's final
HV as a fraction of the default's wall time (median; "-" when it never did). The last column does the same in epochs of training spent (the sum over trials
of the epochs each trained; infeasible and reused trials cost none), which does not depend on the
machine's load. A variant wins when both medians are <= 0.5: on a shared machine a run's wall time
also measures what else was running, and the epochs column keeps a lucky quiet spell from deciding.

    python benchmarks/search_efficiency.py [--seeds 0 1 2] [--only nsga2 tpe ...] [--table-only]
    python benchmarks/search_efficiency.py --seeds 0 --set n_trials=4 --set budget.epochs=2 \
        --results /tmp/se.json --workdir /tmp/se --plot /tmp/se.png      # a smoke run of a minute or two
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "nas" / "configs" / "studies" / "quickstart.yaml"
REFERENCE = [0.0, 5.0e6]  # val_acc, flops: the box val_acc 0..1 x flops 0..5e6
BOX = 1.0 * 5.0e6
DEFAULT = "nsga2"
VARIANTS: dict[str, list[str]] = {
    "nsga2": ["sampler=nsga2", "scheduler=none"],
    "random": ["sampler=random", "scheduler=none"],
    "tpe": ["sampler=tpe", "scheduler=none"],
    "nsga2+asha": ["sampler=nsga2", "scheduler.asha.grace_period=1", "scheduler.asha.reduction_factor=2"],
    "nsga2+moasha": ["sampler=nsga2", "scheduler.moasha.grace_period=1", "scheduler.moasha.reduction_factor=2"],
    "nsga2+prescreen": ["sampler=nsga2", "scheduler=none", "prescreen.proxy=naswot", "prescreen.keep=0.25"],
    "best": [],  # resolved from the cached results of the others (see best_overrides)
}
SAMPLER_VARIANTS = ("nsga2", "random", "tpe")
SCHEDULER_VARIANTS = ("nsga2", "nsga2+asha", "nsga2+moasha")  # nsga2 without and with early stopping


def prescreen_supported() -> bool:
    from nas.search.config import FIELDS

    return "prescreen" in FIELDS


# -- one run ---------------------------------------------------------------------------------------
def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else math.nan


def hv_curve(trials: list[Any], start: float) -> list[tuple[float, float]]:
    """``(seconds since start, HV fraction of the COMPLETE trials finished by then)`` at each completion."""
    from optuna.trial import TrialState

    from nas.pareto import hypervolume

    done = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.datetime_complete),
                  key=lambda t: t.datetime_complete)
    seen: list[list[float]] = []
    out = [(0.0, 0.0)]
    for t in done:
        seen.append(list(t.values))
        hv = hypervolume(seen, ["maximize", "minimize"], REFERENCE) / BOX
        out.append((t.datetime_complete.timestamp() - start, hv))
    return out


def _epochs(trial: Any) -> int:
    """Epochs of training a trial cost (0 for an infeasible or reused one)."""
    a = trial.user_attrs
    if a.get("reused_from") is not None or a.get("status") in ("infeasible", "prescreened"):
        return 0
    return int(a.get("epoch_reached") or a.get("epochs") or len(a.get("history") or []))


def epoch_curve(trials: list[Any]) -> list[tuple[float, float]]:
    """``(epochs trained so far, HV fraction)`` at each trial completion: a measure of search cost that,
    unlike wall time, does not depend on what else the machine is running."""
    from optuna.trial import TrialState

    from nas.pareto import hypervolume

    done = sorted((t for t in trials if t.datetime_complete), key=lambda t: t.datetime_complete)
    seen: list[list[float]] = []
    out, spent, hv = [(0.0, 0.0)], 0, 0.0
    for t in done:
        spent += _epochs(t)
        if t.state == TrialState.COMPLETE:
            seen.append(list(t.values))
            hv = hypervolume(seen, ["maximize", "minimize"], REFERENCE) / BOX
        out.append((float(spent), hv))
    return out


def hv_at(curve: list[list[float]] | list[tuple[float, float]], t: float) -> float:
    """The curve's value at time ``t`` (a step function)."""
    value = 0.0
    for when, hv in curve:
        if when <= t:
            value = hv
    return value


def time_to(curve: list[Any], target: float) -> float:
    """First time the curve reaches ``target`` (inf when it never does)."""
    return next((when for when, hv in curve if hv >= target - 1e-12), math.inf)


def run_one(variant: str, overrides: list[str], seed: int, workdir: Path) -> dict[str, Any]:
    from optuna.trial import TrialState

    from nas.search.config import load_study_config
    from nas.search.runner import run_study
    from nas.search.storage import load_optuna_study

    config = load_study_config(CONFIG, [*overrides, f"seed={seed}", f"name=quickstart-{variant.replace('+', '-')}"])
    out = workdir / variant / f"seed{seed}"
    if out.exists():
        shutil.rmtree(out)  # a half-finished run from an interrupted invocation: start clean, it is timed
    start = time.time()
    run_study(config, out, quiet=True)
    wall = time.time() - start
    study = load_optuna_study(out, config.name, config.storage)
    trials = study.get_trials(deepcopy=False)
    status = [t.user_attrs.get("status", t.state.name.lower()) for t in trials]
    gen_key = "NSGAIISampler:generation"
    return {
        "variant": variant, "seed": seed, "overrides": overrides, "wall_s": wall,
        "trained": sum(1 for t, s in zip(trials, status) if t.state == TrialState.COMPLETE and s != "reused"),
        "pruned": status.count("pruned"), "infeasible": status.count("infeasible"),
        "reused": sum(1 for t in trials if t.user_attrs.get("reused_from") is not None),
        "prescreened": status.count("prescreened"), "failed": status.count("failed"),
        "curve": hv_curve(trials, start), "epoch_curve": epoch_curve(trials),
        "generations": [t.system_attrs.get(gen_key) for t in sorted(trials, key=lambda t: t.number)],
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end",
    }


def backfill(results: dict[str, Any], workdir: Path) -> bool:
    """Add the epoch curve to cached runs measured before it was recorded, from their study directories."""
    from nas.search.storage import load_optuna_study

    added = False
    for r in results.values():
        out = workdir / r["variant"] / f"seed{r['seed']}"
        if "epoch_curve" not in r and (out / "study.db").is_file():
            name = f"quickstart-{r['variant'].replace('+', '-')}"
            r["epoch_curve"] = epoch_curve(load_optuna_study(out, name, None).get_trials(deepcopy=False))
            added = True
    return added


def _save(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)  # atomic: an interrupted benchmark keeps what it measured


# -- the best combination ----------------------------------------------------------------------------
def _final(results: dict[str, Any], variant: str) -> float:
    runs = [r for r in results.values() if r["variant"] == variant]
    return _median([r["curve"][-1][1] for r in runs]) if runs else -math.inf


def best_overrides(results: dict[str, Any]) -> list[str] | None:
    """The best sampler (median final HV) with the best early stopping for nsga2 and, when it helped,
    pre-screening. None until the parts have results."""
    if any(_final(results, v) == -math.inf for v in (*SAMPLER_VARIANTS, *SCHEDULER_VARIANTS)):
        return None
    sampler = max(SAMPLER_VARIANTS, key=lambda v: _final(results, v))
    stopping = max(SCHEDULER_VARIANTS, key=lambda v: _final(results, v))
    out = [f"sampler={sampler}"] + [o for o in VARIANTS[stopping] if not o.startswith("sampler=")]
    if prescreen_supported() and _final(results, "nsga2+prescreen") > _final(results, DEFAULT):
        out += [o for o in VARIANTS["nsga2+prescreen"] if o.startswith("prescreen.")]
    return out


# -- table and plot ----------------------------------------------------------------------------------
def summarise(results: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    rows, winner = [], None
    defaults = {r["seed"]: r for r in results.values() if r["variant"] == DEFAULT}
    for variant in VARIANTS:
        runs = sorted((r for r in results.values() if r["variant"] == variant), key=lambda r: r["seed"])
        if not runs:
            continue
        row: dict[str, Any] = {"variant": variant, "seeds": ",".join(str(r["seed"]) for r in runs),
                               "wall_s": _median([r["wall_s"] for r in runs])}
        for k in ("trained", "pruned", "infeasible", "reused", "prescreened"):
            row[k] = sum(r[k] for r in runs)
        row["final_hv"] = " / ".join(f"{r['curve'][-1][1]:.3f}" for r in runs)
        ratios = []
        for frac in (0.25, 0.5, 1.0):
            vals = [hv_at(r["curve"], frac * defaults[r["seed"]]["wall_s"]) for r in runs if r["seed"] in defaults]
            row[f"hv@{int(frac * 100)}%"] = _median(vals)
        for r in runs:
            if r["seed"] in defaults:
                d = defaults[r["seed"]]
                ratios.append(time_to(r["curve"], d["curve"][-1][1]) / d["wall_s"])
        row["t_reach"] = _median(ratios)
        spent = []
        for r in runs:
            d = defaults.get(r["seed"])
            if d and "epoch_curve" in r and "epoch_curve" in d:
                spent.append(time_to(r["epoch_curve"], d["curve"][-1][1]) / d["epoch_curve"][-1][0])
        row["e_reach"] = _median(spent)
        wins = row["t_reach"] <= 0.5 and row["e_reach"] <= 0.5  # in wall time, and in epochs (load-independent)
        if variant != DEFAULT and wins and (winner is None or row["t_reach"] < rows_t(rows, winner)):
            winner = variant
        row["overrides"] = " ".join(runs[0]["overrides"])
        rows.append(row)
    return rows, winner


def rows_t(rows: list[dict[str, Any]], variant: str) -> float:
    return next(r["t_reach"] for r in rows if r["variant"] == variant)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ("variant", "seeds", "wall s", "trained", "pruned", "infeasible", "reused", "prescreened", "final HV",
            "HV@25%", "HV@50%", "HV@100%", "t(default HV)", "epochs(default HV)")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        t = "-" if not math.isfinite(r["t_reach"]) else f"{r['t_reach']:.2f}"
        e = "-" if not math.isfinite(r["e_reach"]) else f"{r['e_reach']:.2f}"
        cells = (r["variant"], r["seeds"], f"{r['wall_s']:.0f}", r["trained"], r["pruned"], r["infeasible"],
                 r["reused"], r["prescreened"], r["final_hv"], f"{r['hv@25%']:.3f}", f"{r['hv@50%']:.3f}",
                 f"{r['hv@100%']:.3f}", t, e)
        print("| " + " | ".join(str(c) for c in cells) + " |")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, variant in enumerate(VARIANTS):
        runs = [r for r in results.values() if r["variant"] == variant]
        for j, r in enumerate(sorted(runs, key=lambda r: r["seed"])):
            xs = [p[0] for p in r["curve"]] + [r["wall_s"]]
            ys = [p[1] for p in r["curve"]] + [r["curve"][-1][1]]
            ax.step(xs, ys, where="post", color=colours[i % len(colours)], alpha=0.8,
                    label=variant if j == 0 else None, linestyle="-" if j == 0 else ("--" if j == 1 else ":"))
    ax.set_xlabel("wall time (s), 2 trials at a time on 2 shared CPU cores")
    ax.set_ylabel("hypervolume (fraction of val_acc 0..1 x FLOPs 0..5e6)")
    ax.set_title("quickstart search: hypervolume against wall time (one line style per seed)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- main --------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--only", nargs="+", choices=list(VARIANTS), help="variants to run (default: all)")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "search_efficiency.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "search_efficiency")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "search_efficiency.png")
    parser.add_argument("--table-only", action="store_true", help="run nothing: print the cached table")
    parser.add_argument("--set", dest="extra", action="append", default=[], metavar="KEY=VALUE",
                        help="an extra study override for every run (a quick smoke run: --set n_trials=4)")
    args = parser.parse_args()

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.is_file() else {}
    todo = [] if args.table_only else [v for v in (args.only or VARIANTS)]
    if "nsga2+prescreen" in todo and not prescreen_supported():
        print("note: skipping nsga2+prescreen: this study config has no `prescreen` field", flush=True)
        todo.remove("nsga2+prescreen")
    started = False
    # seed-major order: if the machine's time runs out, every variant has its first seeds
    order = [(v, seed) for seed in args.seeds for v in todo if v != "best"]
    order += [("best", seed) for seed in args.seeds if "best" in todo]
    for variant, seed in order:
        overrides = VARIANTS[variant]
        if variant == "best":
            overrides = best_overrides(results) or []
            if not overrides:
                print("note: skipping best: run the sampler and scheduler variants first", flush=True)
                continue
        overrides = overrides + args.extra
        key = f"{variant}/{seed}"
        if key in results and results[key]["overrides"] == overrides:
            continue
        if not started:
            import ray

            from nas.search.guard import quiet_ray_notices

            quiet_ray_notices()
            ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
            started = True
        print(f"running {key} ({' '.join(overrides)})", flush=True)
        results[key] = run_one(variant, overrides, seed, args.workdir)
        r = results[key]
        print(f"  {r['wall_s']:.0f} s, final HV {r['curve'][-1][1]:.3f}, trained {r['trained']}, "
              f"pruned {r['pruned']}, infeasible {r['infeasible']}", flush=True)
        _save(results, args.results)  # after every run
    if backfill(results, args.workdir):
        _save(results, args.results)
    rows, winner = summarise(results)
    print_table(rows)
    if winner:
        print(f"winner: {winner} reaches the default's final hypervolume in {rows_t(rows, winner):.2f} of its "
              f"wall time and <= 0.5 of its training epochs (medians over seeds)")
    else:
        print("no variant reaches the default's final hypervolume in <= 50% of its wall time and of its training "
              "epochs (medians over seeds)")
    if results:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
