"""``nas study run|resume|status|report``: search studies."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas.cli.common import print_json, print_table
from nas.cli.flags import ANY_COUNT, EPOCHS, SEED
from nas.errors import ConfigError
from nas.genome.schema import layout_of
from nas.text import short_number


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "study", help="run, resume and inspect search studies",
        description="Neural-architecture search studies: Optuna samples genomes from a search space, Ray Tune "
        "trains them, and the study folder (study.yaml, study.db, trials.csv) keeps every trial. `run` starts or "
        "resumes one, `resume` continues it after a crash or Ctrl+C, `status` and `report` read it.",
    )
    study_sub = parser.add_subparsers(dest="study_command", metavar="ACTION")
    study_sub.required = True

    run = study_sub.add_parser("run", help="run a study (resumes it if its directory exists)")
    run.add_argument("config", help="study config: a YAML file, or a shipped config by name (quickstart)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set n_trials=4 --set budget.epochs=1")
    run.add_argument("--out", help="study directory (default: runs/<name>)")
    run.add_argument("--json", action="store_true", help="print the final status as JSON")
    run.add_argument("--dry-run", action="store_true",
                     help="every step but the training (zero metrics): checks sampling, Ray and the storage")
    run.add_argument("--profile", action="store_true",
                     help="print where the start-up time went, from the command to the first result (stderr)")
    run.set_defaults(func=_run)

    resume = study_sub.add_parser("resume", help="continue a study after a crash or kill, up to n_trials")
    resume.add_argument("dir", help="study directory")
    resume.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change n_trials, max_concurrent, resources, ray_address, retry_failed, heartbeat_interval, grace_period, "
                        "storage_path, logging or n_trials_counts")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(func=_resume)

    status = study_sub.add_parser("status", help="states, trials and Pareto front of a study")
    status.add_argument("dir", help="study directory")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)

    confirm = study_sub.add_parser(
        "confirm", help="retrain the study's front and the next architectures longer, over seeds; resumes",
        description="Retrain the study's Pareto front plus the next K architectures (by non-dominated rank, then "
        "crowding distance) at a longer budget over several seeds, as Ray Tune trials on the study's resources, "
        "and report the confirmed means with 95% intervals, the rank correlation between the study's scores and "
        "the confirmed ones, and the confirmed front with its hypervolume. Everything lands in DIR/confirm/ "
        "(confirm.md, .csv, .png, .json); the study itself is only read. Rerun to resume.")
    confirm.add_argument("dir", help="study directory")
    confirm.add_argument("--top", type=ANY_COUNT, metavar="K",
                         help="architectures to confirm beyond the front (default: enough for 8 in all)")
    confirm.add_argument("--epochs", type=EPOCHS, metavar="E", help="training epochs (default: 3x the study's)")
    confirm.add_argument("--seeds", type=SEED, nargs="+", metavar="S", help="seeds (default: 0 1 2)")
    confirm.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="change budget.FIELD, resources, max_concurrent, ray_address or logging, "
                         "e.g. --set budget.lr=1e-3")
    confirm.add_argument("--out", metavar="FOLDER", help="confirmation folder (default: DIR/confirm)")
    confirm.add_argument("--json", action="store_true", help="print the confirmation as JSON")
    confirm.set_defaults(func=_confirm)

    report = study_sub.add_parser("report", help="write plots, tables and an HTML report of a study")
    report.add_argument("dir", help="study directory")
    report.add_argument("--out", metavar="FOLDER", help="report folder (default: <DIR>/report)")
    report.add_argument("--json", action="store_true", help="print the files written and the hypervolume as JSON")
    report.set_defaults(func=_report)


def _study_config(path: Path, overrides: list[str]) -> Any:
    from nas.search.config import load_study_config

    return load_study_config(path, overrides)


def _saved_config(study_dir: Path, overrides: list[str] | None = None) -> Any:
    from nas.search.storage import STUDY_FILE

    from nas.paths import check_length

    path = check_length(study_dir, "DIR") / STUDY_FILE
    if Path(study_dir).exists() and not Path(study_dir).is_dir():
        raise ConfigError(f"{study_dir} is a file, not a study directory")
    if not path.is_file():
        raise ConfigError(f"{study_dir} is not a study directory (no {STUDY_FILE}); start one with `nas study run CONFIG`")
    return _study_config(path, overrides or [])


def _finish(config: Any, study_dir: Path, as_json: bool, ran: bool = False) -> int:
    if as_json:
        print_json(status_object(config, study_dir))
    else:
        _print_status(config, study_dir)
    if ran:  # a study in which every trial failed has no result: a non-zero exit says so
        from nas.search.outcome import check_study_outcome
        from nas.search.storage import load_optuna_study

        check_study_outcome(load_optuna_study(study_dir, config.name, config.storage), str(study_dir))
    return 0


def _run(args: argparse.Namespace) -> int:
    from nas.search.runner import run_study

    from nas.paths import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    config = _study_config(Path(args.config), args.overrides)
    study_dir = Path(args.out) if args.out else Path("runs") / config.name
    if args.profile:
        from nas.search.clock import PROFILE

        PROFILE.enabled = True
        PROFILE.mark("config read and checked")
    run_study(config, study_dir, quiet=args.json, dry_run=args.dry_run)
    return _finish(config, study_dir, args.json, ran=True)


def _resume(args: argparse.Namespace) -> int:
    from nas.search.runner import RESUMABLE_FIELDS, run_study

    for item in args.overrides:  # a resumed study is the same study: only how it runs may change
        key = str(item).partition("=")[0].split(".")[0].strip()
        if key and key not in RESUMABLE_FIELDS:
            raise ConfigError(
                f"--set {item}: a resumed study keeps its {key!r}; resume may change only "
                f"{', '.join(RESUMABLE_FIELDS)}; for another {key!r} start a new study with "
                f"`nas study run {Path(args.dir) / 'study.yaml'} --set {item} --out NEW_DIR`"
            )
    before = _saved_config(Path(args.dir)).to_dict() if args.overrides else {}
    config = _saved_config(Path(args.dir), args.overrides)
    changed = {k: (before.get(k), v) for k, v in config.to_dict().items() if before and before.get(k) != v}
    if changed:
        print("updating study.yaml: " + ", ".join(f"{k} {old!r} -> {new!r}" for k, (old, new) in changed.items()),
              file=sys.stderr if args.json else sys.stdout)  # stdout stays JSON-only with --json
    saved = Path(args.dir) / "study.yaml"
    text = saved.read_text() if changed else None
    try:
        run_study(config, Path(args.dir), quiet=args.json)
    except ConfigError:  # refused (e.g. resources the cluster lacks): the change did not take effect
        if text is not None:
            tmp = saved.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(saved)
        raise
    return _finish(config, Path(args.dir), args.json, ran=True)


def _status(args: argparse.Namespace) -> int:
    return _finish(_saved_config(Path(args.dir)), Path(args.dir), args.json)


def _confirm(args: argparse.Namespace) -> int:
    from nas.confirm import confirm_study
    from nas.confirm.render import confirmation_markdown
    from nas.paths import check_output_dir

    _saved_config(Path(args.dir))  # a clear error for a folder that holds no study
    if args.out:
        check_output_dir(args.out, "--out")
    result = confirm_study(args.dir, top=args.top, epochs=args.epochs, seeds=args.seeds, overrides=args.overrides,
                           out=args.out, quiet=args.json)
    from nas.search.outcome import check_cells_outcome

    if args.json:
        print_json({**result.confirmation.to_dict(), "cells": {"ran": result.ran, "skipped": result.skipped,
                                                               "missing": result.missing},
                    "files": {k: str(v) for k, v in result.files.items()}})
        check_cells_outcome(result.records, f"confirmation of {args.dir}", f"`nas study confirm {args.dir}` in a new --out")
        return 0 if result.missing == 0 else 1
    print()
    print(confirmation_markdown(result.confirmation))
    print(f"{result.ran} cell(s) trained, {result.skipped} already stored, {result.missing} missing; "
          f"files in {result.files['md'].parent} (confirm.md, .csv, .png, .json)")
    check_cells_outcome(result.records, f"confirmation of {args.dir}", f"`nas study confirm {args.dir}` in a new --out")
    return 0 if result.missing == 0 else 1


def _report(args: argparse.Namespace) -> int:
    from nas.analysis.report import write_report
    from nas.paths import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    result = write_report(args.dir, args.out)
    if args.json:
        print_json(result.to_dict())
        return 0
    for name, path in result.files.items():
        print(f"{name:12s} {path}")
    hv = result.hypervolume
    if hv is not None:
        print(f"hypervolume {hv.value:.6g}" + (f" ({hv.fraction:.4f} of the box)" if hv.fraction is not None else "")
              + " with reference point " + ", ".join(f"{k}={v:.4g}" for k, v in hv.reference.items()))
    return 0


def status_object(config: Any, study_dir: Path) -> dict[str, Any]:
    """The ``--json`` status: name, n_trials, states, trials, pareto, hypervolume (and its reference point)."""
    from nas.analysis.pareto import hypervolume_summary
    from nas.search.records import trial_record
    from nas.search.runner import study_summary
    from nas.search.storage import load_optuna_study

    study = load_optuna_study(study_dir, config.name, config.storage)
    objectives = list(config.objectives)
    summary = study_summary(study, objectives)
    hv = hypervolume_summary(study, config.objectives, config.constraints)
    trials = []
    for t in study.get_trials(deepcopy=False):
        rec = trial_record(t, objectives)
        rec.pop("params_sampled", None)
        rec.pop("genome", None)
        trials.append(rec)
    pareto = []
    for t in sorted(summary["front"], key=lambda t: t.number):
        rec = trial_record(t, objectives)
        pareto.append({"number": t.number, "key": rec["key"], "values": dict(zip(objectives, t.values)),
                       "params": rec.get("params"), "flops": rec.get("flops"), "genome": rec["genome"]})
    return {
        "name": config.name, "dir": str(study_dir), "n_trials": config.n_trials, "objectives": config.objectives,
        "states": summary["states"], "outcomes": summary["outcomes"], "n_trials_counts": config.n_trials_counts,
        "infeasible": summary["infeasible"],
        "prescreened": summary.get("prescreened", 0), "best_val_acc": summary["best_val_acc"],
        "trials": trials, "pareto": pareto,
        "hypervolume": None if hv is None else hv.value, "hv_reference": None if hv is None else hv.reference,
        **_strategy_status(config, study_dir),
    }


def _strategy_status(config: Any, study_dir: Path) -> dict[str, Any]:
    """``strategy`` (multi_trial | one_shot); for a one-shot study its supernet's training and, once run,
    the confirmation's rank agreement: a reader must see that the front holds inherited-weight scores."""
    if config.strategy is None:
        return {"strategy": "multi_trial"}
    import json

    from nas.analysis.confirmed import load_confirmation
    from nas.supernet.study import SUPERNET_DIR, TRAIN_FILE

    out: dict[str, Any] = {"strategy": "one_shot", "supernet": None, "confirmation": None}
    train = study_dir / SUPERNET_DIR / TRAIN_FILE
    if train.is_file():
        doc = json.loads(train.read_text())
        out["supernet"] = {k: doc.get(k) for k in ("epochs", "steps", "params", "wall_s")}
    confirmation = load_confirmation(study_dir)
    if confirmation is not None:
        out["confirmation"] = {k: confirmation.get(k) for k in ("correlations", "hypervolume")}
    return out


def _one_shot_line(status: dict[str, Any]) -> str | None:
    if status.get("strategy") != "one_shot":
        return None
    sup = status.get("supernet")
    line = "one-shot study: val_acc below is inherited-weight accuracy from the supernet"
    line += (f" ({sup['epochs']} epoch(s), {sup['params']:,} parameters)" if sup else " (not trained yet)")
    corr = (((status.get("confirmation") or {}).get("correlations") or {}).get("val_acc") or {}).get("all") or {}
    tau = corr.get("kendall_tau")
    if tau is not None:
        line += (f"; confirmed by stand-alone retraining of {corr.get('n')} architectures: Kendall tau {tau:+.2f} "
                 "between their scores and their confirmed accuracy (nas study report shows both)")
    else:
        line += "; not confirmed yet (nas study confirm, or strategy.one_shot.confirm)"
    return line


def _print_status(config: Any, study_dir: Path) -> None:
    status = status_object(config, study_dir)
    from nas.search.budget import budget_note, describe_outcomes

    outcomes = status["outcomes"]
    states = describe_outcomes(outcomes) if any(outcomes.values()) else "no trials yet"
    one_shot = status["strategy"] == "one_shot"
    print(f"study {status['name']!r} in {study_dir}: {states} (of n_trials {status['n_trials']}: "
          f"{budget_note(status['n_trials_counts'], one_shot)}; infeasible: over a constraint, never "
          + ("scored" if one_shot else "trained")
          + (f"; {status['prescreened']} screened out by the proxy, never trained, not counted"
             if status["prescreened"] else "") + ")")
    line = _one_shot_line(status)
    if line:
        print(line)
    rows = []
    for p in status["pareto"]:
        row: dict[str, Any] = {"trial": p["number"]}
        genome = p["genome"] or {}
        row["layout"] = layout_of(s["mixer"] for s in genome.get("stages", []))
        row["depths"] = ",".join(str(s["depth"]) for s in genome.get("stages", []))
        row["dims"] = ",".join(str(s["dim"]) for s in genome.get("stages", []))
        row.update({k: short_number(v) for k, v in p["values"].items()})
        row["params"] = short_number(p["params"])
        rows.append(row)
    hint = _constraint_hint(config, status)
    if hint:
        print(hint)
    if rows:
        print_table(rows, title=f"Pareto front ({', '.join(f'{k}: {v}' for k, v in status['objectives'].items())})")


def _constraint_hint(config: Any, status: dict[str, Any]) -> str | None:
    """When every finished trial broke a constraint: the closest any came, so the user sees what to change."""
    finished = sum(status["states"].get(k, 0) for k in ("COMPLETE", "PRUNED", "FAIL"))
    if not config.constraints or status["states"].get("COMPLETE") or not finished or status["infeasible"] < finished:
        return None
    best: dict[str, float] = {}
    for rec in status["trials"]:
        for name in config.constraints:
            value = rec.get(name)
            if isinstance(value, (int, float)):
                best[name] = min(best.get(name, float("inf")), float(value))
    parts = [f"{k} <= {short_number(v)} (smallest seen {short_number(best[k])})"
             for k, v in config.constraints.items() if k in best]
    return ("hint: no trial met the constraints " + ", ".join(parts) + "; loosen them or make the search "
            "space smaller (fewer/narrower stages) so that some genomes fit")


