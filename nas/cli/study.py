"""``nas study run|resume|status|report``: search studies."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.cli.common import print_json, print_table
from nas.errors import ConfigError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("study", help="run, resume and inspect search studies")
    study_sub = parser.add_subparsers(dest="study_command", metavar="ACTION")
    study_sub.required = True

    run = study_sub.add_parser("run", help="run a study (resumes it if its directory exists)")
    run.add_argument("config", help="study config YAML, e.g. studies/quickstart.yaml")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                     help="override a config field, e.g. --set n_trials=4 --set budget.epochs=1")
    run.add_argument("--out", help="study directory (default: runs/<name>)")
    run.add_argument("--json", action="store_true", help="print the final status as JSON")
    run.add_argument("--dry-run", action="store_true",
                     help="every step but the training (zero metrics): checks sampling, Ray and the storage")
    run.set_defaults(func=_run)

    resume = study_sub.add_parser("resume", help="continue a study after a crash or kill, up to n_trials")
    resume.add_argument("dir", help="study directory")
    resume.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change n_trials, max_concurrent, resources or ray_address")
    resume.add_argument("--json", action="store_true")
    resume.set_defaults(func=_resume)

    status = study_sub.add_parser("status", help="states, trials and Pareto front of a study")
    status.add_argument("dir", help="study directory")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=_status)

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

    path = Path(study_dir) / STUDY_FILE
    if not path.is_file():
        raise ConfigError(f"{study_dir} is not a study directory (no {STUDY_FILE}); start one with `nas study run CONFIG`")
    return _study_config(path, overrides or [])


def _finish(config: Any, study_dir: Path, as_json: bool) -> int:
    if as_json:
        print_json(status_object(config, study_dir))
    else:
        _print_status(config, study_dir)
    return 0


def _run(args: argparse.Namespace) -> int:
    from nas.search.runner import run_study

    config = _study_config(Path(args.config), args.overrides)
    study_dir = Path(args.out) if args.out else Path("runs") / config.name
    run_study(config, study_dir, quiet=args.json, dry_run=args.dry_run)
    return _finish(config, study_dir, args.json)


def _resume(args: argparse.Namespace) -> int:
    from nas.search.runner import run_study

    config = _saved_config(Path(args.dir), args.overrides)
    run_study(config, Path(args.dir), quiet=args.json)
    return _finish(config, Path(args.dir), args.json)


def _status(args: argparse.Namespace) -> int:
    return _finish(_saved_config(Path(args.dir)), Path(args.dir), args.json)


def _report(args: argparse.Namespace) -> int:
    from nas.analysis.report import write_report

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
        "states": summary["states"], "infeasible": summary["infeasible"], "best_val_acc": summary["best_val_acc"],
        "trials": trials, "pareto": pareto,
        "hypervolume": None if hv is None else hv.value, "hv_reference": None if hv is None else hv.reference,
    }


def _print_status(config: Any, study_dir: Path) -> None:
    status = status_object(config, study_dir)
    states = ", ".join(f"{k} {v}" for k, v in sorted(status["states"].items())) or "no trials yet"
    print(f"study {status['name']!r} in {study_dir}: {states} (of n_trials {status['n_trials']}; "
          f"{status['infeasible']} over a constraint, never trained)")
    rows = []
    for p in status["pareto"]:
        row: dict[str, Any] = {"trial": p["number"]}
        genome = p["genome"] or {}
        letters = {"conv": "C", "attention": "A", "reattention": "R", "shift": "S"}
        row["layout"] = "-".join(letters[s["mixer"]] for s in genome.get("stages", []))
        row["depths"] = ",".join(str(s["depth"]) for s in genome.get("stages", []))
        row["dims"] = ",".join(str(s["dim"]) for s in genome.get("stages", []))
        row.update({k: _short(v) for k, v in p["values"].items()})
        row["params"] = _short(p["params"])
        rows.append(row)
    if rows:
        print_table(rows, title=f"Pareto front ({', '.join(f'{k}: {v}' for k, v in status['objectives'].items())})")


def _short(value: Any) -> str:
    """Numbers as people read them in a narrow table: 0.9731, 12.3M, 4.56G."""
    if value is None:
        return "-"
    value = float(value)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.4g}"
