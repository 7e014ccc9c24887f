"""`nas` against the loops a researcher would use instead, on the quickstart problem.

Three tools solve the same problem (the vit_family space on mnist5k, 24 architectures of up to 3
epochs, val_acc against FLOPs under a 5e6-MAC limit, 2 trainings at a time, one seed drives the
sampler, the data split and every training):

- ``nas``: ``nas study run quickstart`` as a user types it (its defaults: TPE, MO-ASHA);
- ``plain``: ``benchmarks/plain_optuna_loop.py``, Optuna's TPE with the FLOPs constraint in one
  process, ``study.optimize(n_jobs=2)``, `nas`'s space, training and cost functions, no early stopping;
- ``synetune``: Syne Tune's MOASHA (grace period 1, reduction factor 2, as the quickstart's), random
  sampling, LocalBackend with 2 workers, one process per trial (``benchmarks/synetune_trial.py``);
  Syne Tune is an optional benchmark dependency (``pip install syne-tune``): without it that tool is skipped.

Each (tool, seed) runs as its own command, timed from just before it is launched, so start-up counts.
A run's trials are put in the order they finished; its hypervolume (a fraction of the box val_acc
0..1 x FLOPs 0..5e6, from fully trained trials only) is followed against the training epochs spent
(load-independent) and against wall time. Printed per tool: time to the first fully trained result,
HV at 12/24/36/48 epochs and at fixed wall times (medians), final HV (median, mean and its 95%
t-interval, and `nas` minus the peer paired over seeds), epochs and wall time; then a second table of
`nas` minus each peer, paired over seeds with 95% t-intervals, at each epoch mark and for the first
result. Every run is cached in
``--results`` (JSON) as soon as it ends, with the machine's load average sampled during it; a rerun
only runs what is missing, so an interrupted invocation resumes.

    python benchmarks/search_peers.py                       # seeds 0-8, every tool
    python benchmarks/search_peers.py --seeds 9 10 --only nas
    python benchmarks/search_peers.py --table-only          # table and docs/search_peers.png from the cache
    python benchmarks/search_peers.py --seeds 0 --n-trials 4 --epochs 1 --results /tmp/p.json \\
        --plot /tmp/p.png --workdir /tmp/peers                # a smoke run of a minute or two
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = [0.0, 5.0e6]  # val_acc, flops: the box val_acc 0..1 x flops 0..5e6
BOX = 1.0 * 5.0e6
TOOLS = ("nas", "plain", "synetune")
EPOCH_MARKS = (12, 24, 36, 48)
TIME_MARKS = (30, 60, 90, 120)


def _hv(points: list[list[float]]) -> float:
    from nas.pareto import hypervolume

    return hypervolume(points, ["maximize", "minimize"], REFERENCE) / BOX if points else 0.0


# -- one run: a command, then its trials as events ---------------------------------------------------
class _LoadSampler:
    """The 1-minute load average every 5 s while a run goes on (the machine is shared)."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(5.0):
            self.samples.append(os.getloadavg()[0])

    def __enter__(self) -> "_LoadSampler":
        self.samples.append(os.getloadavg()[0])
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(os.getloadavg()[0])


def _command(tool: str, seed: int, args: argparse.Namespace, out: Path) -> list[str]:
    py = sys.executable
    if tool == "nas":
        sets = [f"seed={seed}", f"n_trials={args.n_trials}", f"budget.epochs={args.epochs}", *args.set]
        return [py, "-m", "nas", "study", "run", str(ROOT / "nas" / "configs" / "studies" / "quickstart.yaml"), "--out", str(out / "study"),
                "--profile", *[x for s in sets for x in ("--set", s)]]
    if tool == "plain":
        return [py, str(ROOT / "benchmarks" / "plain_optuna_loop.py"), "--seed", str(seed), "--n-trials",
                str(args.n_trials), "--epochs", str(args.epochs), "--events", str(out / "events.jsonl")]
    return [py, str(Path(__file__).resolve()), "--synetune-child", "--seeds", str(seed), "--n-trials",
            str(args.n_trials), "--epochs", str(args.epochs), "--workdir", str(out)]


def run_one(tool: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    out = args.workdir / _label(tool, args) / f"seed{seed}"
    if out.exists():
        shutil.rmtree(out)  # a half-finished run of an interrupted invocation: start clean, it is timed
    out.mkdir(parents=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with _LoadSampler() as load, (out / "output.txt").open("w") as log:
        t0 = time.time()
        proc = subprocess.run(_command(tool, seed, args, out), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = time.time() - t0
    if proc.returncode != 0:
        tail = (out / "output.txt").read_text()[-2000:]
        raise RuntimeError(f"{tool} seed {seed} exited {proc.returncode}:\n{tail}")
    events = {"nas": _nas_events, "plain": _plain_events, "synetune": _synetune_events}[tool](out, args.epochs)
    for e in events:
        e["t"] -= t0
    events.sort(key=lambda e: e["t"])
    record = {"tool": _label(tool, args), "sets": list(args.set) if tool == "nas" else [], "seed": seed,
              "n_trials": args.n_trials, "epochs_per_trial": args.epochs,
              "wall_s": wall, "events": events, "load": load.samples,
              "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": f"{os.cpu_count()} CPUs"}
    if tool == "nas":
        record["profile"] = _nas_profile(out / "output.txt")
    return record


def _label(tool: str, args: argparse.Namespace) -> str:
    """``nas`` with ``--set`` overrides is a variant of its own: ``nas[LABEL]`` (a lever of the study)."""
    return f"nas[{args.variant}]" if tool == "nas" and args.variant else tool


def _tools(results: dict[str, Any]) -> list[str]:
    """The tools and variants in ``results``: the three tools first, then nas's variants by name."""
    seen = {r["tool"] for r in results.values()}
    return [t for t in TOOLS if t in seen] + sorted(seen - set(TOOLS))


def _nas_events(out: Path, epochs: int) -> list[dict[str, Any]]:
    from optuna.trial import TrialState

    from nas.search.storage import load_optuna_study

    study = load_optuna_study(out / "study", "quickstart", None)
    events = []
    for t in study.get_trials(deepcopy=False):
        if t.datetime_complete is None:
            continue
        a = t.user_attrs
        status = a.get("status", t.state.name.lower())
        reused = a.get("reused_from") is not None
        trained = 0 if reused or status in ("infeasible", "prescreened", "too_large") else int(
            a.get("epoch_reached") or a.get("epochs") or len(a.get("history") or []))
        full = t.state == TrialState.COMPLETE
        events.append({"t": t.datetime_complete.timestamp(), "epochs": trained, "kind": "reused" if reused else status,
                       "values": list(t.values) if full else None})
    return events


def _nas_profile(output: Path) -> list[str]:
    """The start-up breakdown `nas study run --profile` printed."""
    lines = output.read_text().splitlines()
    return [ln for ln in lines if ln.startswith("profile")]


def _plain_events(out: Path, epochs: int) -> list[dict[str, Any]]:
    events = []
    for line in (out / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        events.append({"t": e["t"], "epochs": e["epochs"], "kind": "complete" if e["values"] else "infeasible",
                       "values": e["values"]})
    return events


def _synetune_events(out: Path, epochs: int) -> list[dict[str, Any]]:
    trials: dict[str, dict[str, Any]] = {}
    for line in (out / "events.jsonl").read_text().splitlines():
        e = json.loads(line)
        trials[e["trial"]] = e  # per-epoch lines: the last one is how the trial ended
    events = []
    for e in trials.values():
        full = e["epoch"] >= epochs
        kind = "infeasible" if e["val_acc"] is None else ("complete" if full else "stopped")
        events.append({"t": e["t"], "epochs": e["epoch"], "kind": kind,
                       "values": [e["val_acc"], e["flops"]] if kind == "complete" else None})
    return events


# -- Syne Tune (in a child process of its own, like the other two) -----------------------------------
def synetune_space() -> dict[str, Any]:
    """The vit_family space flattened for Syne Tune: every parameter the define-by-run space can ask
    for, with its Optuna distribution as a Syne Tune domain (a trial uses the ones its genome needs)."""
    import optuna
    from syne_tune.config_space import choice, randint, uniform

    from nas.search.space import load_space

    space = load_space(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    dists: dict[str, Any] = {}
    for _ in range(300):
        trial = study.ask()
        space.suggest(trial)
        dists.update(trial.distributions)
        study.tell(trial, 0.0)
    out: dict[str, Any] = {}
    for name, d in sorted(dists.items()):
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            out[name] = choice(list(d.choices))
        elif isinstance(d, optuna.distributions.IntDistribution):
            out[name] = randint(d.low, d.high)
        else:
            out[name] = uniform(d.low, d.high)
    return out


def run_synetune(seed: int, n_trials: int, epochs: int, workdir: Path) -> None:
    import logging

    os.environ.setdefault("SYNETUNE_FOLDER", str(workdir / "syne-tune"))  # read when syne_tune is imported
    import numpy as np
    from syne_tune import StoppingCriterion, Tuner
    from syne_tune.backend import LocalBackend
    from syne_tune.optimizer.schedulers.multiobjective.moasha import MOASHA

    logging.getLogger("syne_tune").setLevel(logging.WARNING)
    np.random.seed(seed)  # MOASHA samples configurations with numpy's global generator
    config_space = {**synetune_space(), "events": str(workdir / "events.jsonl"), "seed": seed, "epochs": epochs,
                    "flops_limit": REFERENCE[1]}
    scheduler = MOASHA(config_space, metrics=["error", "flops"], do_minimize=True, time_attr="epoch", max_t=epochs,
                       grace_period=1, reduction_factor=2, random_seed=seed)
    tuner = Tuner(
        trial_backend=LocalBackend(entry_point=str(ROOT / "benchmarks" / "synetune_trial.py"), pass_args_as_json=True),
        scheduler=scheduler, stop_criterion=StoppingCriterion(max_num_trials_started=n_trials - 1), n_workers=2,
        sleep_time=0.5,  # Syne Tune's default polls every 5 s, which would leave a worker idle after each trial
        wait_trial_completion_when_stopping=True, save_tuner=False, tuner_name=f"peers-seed{seed}",
        results_update_interval=60, print_update_interval=600,
    )
    tuner.run()


# -- summaries ---------------------------------------------------------------------------------------
def curves(run: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """``(epochs spent, HV)`` and ``(seconds, HV)`` after each finished trial."""
    points: list[list[float]] = []
    by_epoch, by_time, spent = [(0.0, 0.0)], [(0.0, 0.0)], 0
    for e in run["events"]:
        spent += e["epochs"]
        if e["values"] is not None:
            points.append(e["values"])
        hv = _hv(points)
        by_epoch.append((float(spent), hv))
        by_time.append((e["t"], hv))
    return by_epoch, by_time


def at(curve: list[tuple[float, float]], x: float) -> float:
    """The step function's value at ``x`` (a run that ended before ``x`` keeps its final front)."""
    return max((hv for when, hv in curve if when <= x), default=0.0)


def _median(xs: list[float]) -> float:
    xs = [x for x in xs if not math.isnan(x)]
    return statistics.median(xs) if xs else math.nan


def summarise(results: dict[str, Any]) -> list[dict[str, Any]]:
    from nas.stats import compare, summarize

    rows = []
    finals = {tool: {r["seed"]: curves(r)[0][-1][1] for r in results.values() if r["tool"] == tool}
              for tool in _tools(results)}
    for tool in _tools(results):
        runs = sorted((r for r in results.values() if r["tool"] == tool), key=lambda r: r["seed"])
        if not runs:
            continue
        by = [curves(r) for r in runs]
        first = [next((e["t"] for e in r["events"] if e["values"] is not None), math.nan) for r in runs]
        s = summarize(list(finals[tool].values()))
        row: dict[str, Any] = {
            "tool": tool, "seeds": len(runs), "first_s": _median(first), "wall_s": _median([r["wall_s"] for r in runs]),
            "epochs": _median([c[0][-1][0] for c in by]), "final": _median([c[0][-1][1] for c in by]),
            "mean": s.mean, "ci": (s.ci_low, s.ci_high),
            "load": _median([statistics.fmean(r["load"]) for r in runs]),
            "trained": sum(e["kind"] in ("complete",) for r in runs for e in r["events"]) / len(runs),
            "stopped": sum(e["kind"] in ("pruned", "stopped") for r in runs for e in r["events"]) / len(runs),
            "infeasible": sum(e["kind"] == "infeasible" for r in runs for e in r["events"]) / len(runs),
            "reused": sum(e["kind"] == "reused" for r in runs for e in r["events"]) / len(runs),
        }
        for m in EPOCH_MARKS:
            row[f"e{m}"] = _median([at(c[0], m) for c in by])
        for m in TIME_MARKS:
            row[f"t{m}"] = _median([at(c[1], m) for c in by])
        if tool != "nas" and finals.get("nas"):
            row["vs_nas"] = compare(finals["nas"], finals[tool])
        row["by_seed"] = {  # per seed: HV at each epoch mark and the first result, for paired differences
            r["seed"]: {**{f"e{m}": at(c[0], m) for m in EPOCH_MARKS}, "first": f}
            for r, c, f in zip(runs, by, first)}
        rows.append(row)
    return rows


def print_differences(rows: list[dict[str, Any]]) -> None:
    """``nas`` minus each other tool, paired over shared seeds (95% t-intervals): HV at each epoch mark
    and the time to the first result (negative: nas sooner)."""
    from nas.stats import compare

    ours = next((r for r in rows if r["tool"] == "nas"), None)
    if ours is None:
        return
    keys = [*[f"e{m}" for m in EPOCH_MARKS], "first"]
    head = ["nas - tool", *[f"HV@{m}ep" for m in EPOCH_MARKS], "first result s"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        if r is ours:
            continue
        cells = [r["tool"]]
        for k in keys:
            c = compare({s: v[k] for s, v in ours["by_seed"].items()}, {s: v[k] for s, v in r["by_seed"].items()})
            fmt = "+.1f" if k == "first" else "+.3f"
            cells.append("-" if c.test is None or math.isnan(c.delta) else
                         f"{c.delta:{fmt}} [{_f(c.ci_low, fmt)}, {_f(c.ci_high, fmt)}]")
        print("| " + " | ".join(cells) + " |")


def _f(x: float, spec: str = ".3f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = ["tool", "seeds", "first result s", *[f"HV@{m}ep" for m in EPOCH_MARKS], *[f"HV@{m}s" for m in TIME_MARKS],
            "final HV median", "final HV mean [95% CI]", "nas - tool [95% CI]", "epochs", "wall s",
            "trained/stopped/infeasible/reused per run", "load"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows:
        c = r.get("vs_nas")
        delta = "-" if c is None or c.test is None else f"{c.delta:+.3f} [{c.ci_low:+.3f}, {c.ci_high:+.3f}]"
        cells = [r["tool"], r["seeds"], _f(r["first_s"], ".1f"), *[_f(r[f"e{m}"]) for m in EPOCH_MARKS],
                 *[_f(r[f"t{m}"]) for m in TIME_MARKS], _f(r["final"]),
                 f"{_f(r['mean'])} [{_f(r['ci'][0])}, {_f(r['ci'][1])}]", delta, _f(r["epochs"], ".0f"),
                 _f(r["wall_s"], ".0f"),
                 "/".join(f"{r[k]:.1f}" for k in ("trained", "stopped", "infeasible", "reused")), _f(r["load"], ".1f")]
        print("| " + " | ".join(str(x) for x in cells) + " |")


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = {"nas": "C0", "plain": "C1", "synetune": "C2"}
    drawn = [t for t in TOOLS if any(r["tool"] == t for r in results.values())]  # variants: in the tables only
    wall = max((r["wall_s"] for r in results.values() if r["tool"] in drawn), default=1.0)
    for i, tool in enumerate(drawn):
        runs = [r for r in results.values() if r["tool"] == tool]
        for ax, which, xmax in ((axes[0], 0, 80), (axes[1], 1, wall)):
            grid = np.linspace(0, xmax, 200)
            ys = np.array([[at(curves(r)[which], x) for x in grid] for r in runs])
            med = np.array([_median(list(col)) for col in ys.T])
            lo = np.array([np.nanpercentile(col, 25) if not np.all(np.isnan(col)) else np.nan for col in ys.T])
            hi = np.array([np.nanpercentile(col, 75) if not np.all(np.isnan(col)) else np.nan for col in ys.T])
            ax.plot(grid, med, color=colours.get(tool, f"C{i + 3}"), label=f"{tool} (median of {len(runs)})")
            ax.fill_between(grid, lo, hi, color=colours.get(tool, f"C{i + 3}"), alpha=0.15)
    axes[0].set_xlabel("training epochs spent")
    axes[1].set_xlabel("wall time from the command (s), 2 trainings at a time, 2 shared CPU cores")
    for ax in axes:
        ax.set_ylabel("hypervolume (fraction of val_acc 0..1 x FLOPs 0..5e6)")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle("quickstart problem: nas against a plain Optuna loop and Syne Tune MOASHA (band: quartiles)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _save(results: dict[str, Any], path: Path) -> None:
    """Write ``results`` over what the file holds (runs another invocation saved meanwhile are kept)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file():
        results.update({k: v for k, v in json.loads(path.read_text()).items() if k not in results})
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1) + "\n")
    tmp.replace(path)  # atomic: an interrupted benchmark keeps what it measured


def main() -> None:
    global TIME_MARKS
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(range(9)))
    parser.add_argument("--only", nargs="+", choices=TOOLS, help="tools to run (default: all)")
    parser.add_argument("--n-trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "results" / "search_peers.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / "runs" / "search_peers")
    parser.add_argument("--plot", type=Path, default=ROOT / "docs" / "search_peers.png")
    parser.add_argument("--table-only", action="store_true", help="run nothing: print the cached table")
    parser.add_argument("--time-marks", type=float, nargs="+", default=list(TIME_MARKS), metavar="S",
                        help="wall times (s) at which the table reads HV (default: 30 60 90 120, a quiet machine)")
    parser.add_argument("--merge", type=Path, nargs="+", default=[], metavar="JSON",
                        help="add the runs of other result files (e.g. one tool run as a separate invocation)")
    parser.add_argument("--variant", metavar="LABEL",
                        help="run nas with the --set overrides below as the variant nas[LABEL] (a lever study)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a field of the quickstart for nas's runs (needs --variant), e.g. scheduler=none")
    parser.add_argument("--synetune-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.set and not args.variant:
        parser.error("--set makes a variant of nas: name it with --variant LABEL")
    if args.synetune_child:
        run_synetune(args.seeds[0], args.n_trials, args.epochs, args.workdir)
        return
    results: dict[str, Any] = json.loads(args.results.read_text()) if args.results.is_file() else {}
    tools = [] if args.table_only else list(args.only or TOOLS)
    if "synetune" in tools:
        try:
            import syne_tune  # noqa: F401
        except ImportError:
            print("note: skipping synetune: `pip install syne-tune` to include it", flush=True)
            tools.remove("synetune")
    for seed in args.seeds:  # seed-major: if time runs out, every tool has its first seeds
        for tool in tools:
            key = f"{_label(tool, args)}/{seed}"
            done = results.get(key)
            if done and done["n_trials"] == args.n_trials and done["epochs_per_trial"] == args.epochs:
                continue
            print(f"running {key}", flush=True)
            try:
                r = run_one(tool, seed, args)
            except RuntimeError as exc:  # on a shared machine another user's `ray stop` can end a run: once more
                print(f"  failed, running it again: {str(exc).splitlines()[0]}", flush=True)
                r = run_one(tool, seed, args)
            results[key] = r
            by_epoch, _ = curves(r)
            first = next((e["t"] for e in r["events"] if e["values"] is not None), math.nan)
            print(f"  {r['wall_s']:.0f} s, first result {first:.1f} s, final HV {by_epoch[-1][1]:.3f}, "
                  f"{by_epoch[-1][0]:.0f} epochs, load {statistics.fmean(r['load']):.1f}", flush=True)
            _save(results, args.results)  # after every run
    TIME_MARKS = tuple(int(m) if float(m).is_integer() else m for m in args.time_marks)
    for extra in args.merge:
        results.update({k: v for k, v in json.loads(extra.read_text()).items() if k not in results})
    if args.merge:
        _save(results, args.results)
    rows = summarise(results)
    print_table(rows)
    print()
    print_differences(rows)
    if results:
        plot(results, args.plot)
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
