"""Run an ablation: every variant x seed is one Ray Tune trial of a grid, trained by the study objective.

The ablation directory keeps everything needed to resume and to rebuild the table after any crash:

- ``ablation.yaml``: the resolved config (variants with their overrides, seeds, data, budget);
- ``cells.jsonl``: one JSON record per finished cell (genome, seed, cost, metrics, collapse, provenance),
  appended by the worker that trained it, with ``O_APPEND`` and ``fsync``, *before* it reports to Tune:
  once a cell is in the file a kill -9 of anything cannot lose it;
- ``cost.jsonl`` (the cost cache), ``ray/`` (Tune's own logs) and the table files.

A restart reads ``cells.jsonl`` and runs only the cells that are not in it. Cells are identified by
their genome key and seed, so renaming a variant or adding one keeps the finished cells; changing the
data or the budget would mix incomparable results and is refused.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import yaml

from nas.ablation.config import AblationConfig, Cell
from nas.errors import ConfigError, NasError
from nas.search.objective import TrialContext, run_trial
from nas.writes import Owner, atomic_write, claim_folder

__all__ = ["run_ablation", "read_cells", "append_cell", "finished_cells", "CELLS_FILE", "CONFIG_FILE",
           "AblationRun"]

CELLS_FILE = "cells.jsonl"
CONFIG_FILE = "ablation.yaml"
FINISHED = ("complete", "failed")  # a failed cell (diverged, bad genome) is a result too, unless retried


@dataclasses.dataclass(frozen=True)
class AblationRun:
    """What a call of :func:`run_ablation` did."""

    out_dir: Path
    total: int  # cells of the config (variants x seeds)
    skipped: int  # already finished before this call
    ran: int  # cells trained by this call (finished ones)
    records: tuple[dict[str, Any], ...]  # the latest record of every cell of the config
    elapsed_s: float


# -- the cell store -------------------------------------------------------------------------------
def append_cell(out_dir: str | Path, record: dict[str, Any]) -> None:
    """Append one record as one line, durably (one ``write`` on an ``O_APPEND`` file, then ``fsync``).

    A line left unfinished by a writer that died is closed first, so it spoils only itself.
    """
    path = Path(out_dir) / CELLS_FILE
    line = json.dumps(record, default=_plain, allow_nan=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            with open(path, "rb") as fh:
                fh.seek(size - 1)
                if fh.read(1) != b"\n":
                    line = "\n" + line
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def _plain(obj: Any) -> Any:
    return obj.item() if hasattr(obj, "item") else str(obj)


def read_cells(out_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Records by cell key (the last record of a key wins); unreadable lines are skipped."""
    path = Path(out_dir) / CELLS_FILE
    out: dict[str, dict[str, Any]] = {}
    if not path.is_file():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("cell"), str):
            out[rec["cell"]] = rec
    return out


def finished_cells(out_dir: str | Path, retry_failed: bool = False) -> dict[str, dict[str, Any]]:
    """Stored cells that a restart must not train again."""
    done = ("complete",) if retry_failed else FINISHED
    return {k: r for k, r in read_cells(out_dir).items() if r.get("status") in done}


# -- the Ray Tune trainable -----------------------------------------------------------------------
def cell_trainable(config: dict[str, Any], ctx: TrialContext, cells: dict[str, dict[str, Any]]) -> None:
    """One cell: the study objective under the cell's seed; its final record is stored before Tune sees it."""
    from ray import tune

    cell = cells[config["cell"]]
    meta = {"cell": config["cell"], "variant": cell["variant"], "seed": cell["seed"], "genome": cell["genome"],
            "data": ctx.data, "budget": dict(ctx.budget)}

    def report(result: dict[str, Any]) -> None:
        if result.get("status") == "too_large":  # a cell's result like any failure: shown as failed in the table
            result = {**result, "status": "failed"}
        if result.get("final"):
            append_cell(ctx.study_dir, {**meta, **result})
        tune.report({k: v for k, v in result.items() if k not in ("history", "genome", "versions")})

    run_trial({"genome": cell["genome"], "key": cell["key"]}, dataclasses.replace(ctx, seed=int(cell["seed"])),
              report)


def _progress_callback(total: int, skipped: int, labels: dict[str, str]) -> Any:
    from ray import tune

    class Progress(tune.Callback):
        """One line per finished cell."""

        def __init__(self) -> None:
            self.done, self.start = skipped, time.time()

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
            if not result.get("final"):
                return
            self.done += 1
            what = (f"val_acc={result['val_acc']:.4f} train_acc={result['train_acc']:.4f}"
                    if result.get("status") == "complete" else f"{result.get('status')} {result.get('error', '')[:90]}")
            if result.get("collapse_similarity") is not None:
                what += f" attn_sim={result['collapse_similarity']:.3f} similar={result.get('similar_blocks')}"
            cell = trial.config["cell"]
            print(f"[{self.done:>3}/{total}] {labels.get(cell, cell)} {what} | {time.time() - self.start:.0f}s",
                  flush=True)

    return Progress()


# -- the run --------------------------------------------------------------------------------------
def config_fingerprint(config: AblationConfig) -> str:
    """What makes stored cells comparable: the data and the training budget."""
    return json.dumps({"data": config.data, "budget": config.budget}, sort_keys=True)


def _save_or_check_config(config: AblationConfig, out_dir: Path) -> None:
    path = out_dir / CONFIG_FILE
    if path.is_file():
        saved = yaml.safe_load(path.read_text()) or {}
        saved_print = json.dumps({"data": saved.get("data"), "budget": saved.get("budget")}, sort_keys=True)
        if saved_print != config_fingerprint(config):
            raise ConfigError(
                f"{out_dir} holds an ablation trained with data {saved.get('data')!r} and budget "
                f"{saved.get('budget')!r}, not {config.data!r} and {config.budget!r}; its cells would not be "
                f"comparable: choose another --out"
            )
    atomic_write(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def plan_cells(config: AblationConfig) -> list[Cell]:
    """The config's cells with genomes fitted to the data's channels and classes (as a study fits them)."""
    from nas.data import load_dataset

    data = load_dataset(config.data, seed=config.seeds[0])  # also fails early on a bad data spec
    return config.cells(in_channels=data.channels, num_classes=data.num_classes)


def run_ablation(config: AblationConfig, out_dir: str | Path, *, quiet: bool = False,
                 retry_failed: bool = False, objectives: tuple[str, ...] = ("val_acc",),
                 kind: str = "ablation") -> AblationRun:
    """Train every cell of ``config`` not yet stored in ``out_dir``; returns the stored records.

    ``objectives`` are what each cell measures beyond training (``latency_ms``, ``proxy_*``), as in
    the study they come from (a confirmation measures its study's objectives). ``kind`` is the
    folder's owner (``ablation`` or ``confirmation``, :mod:`nas.writes`): one never writes into the other.
    """
    start = time.time()
    out_dir = Path(out_dir).resolve()
    claim_folder(out_dir, Owner(kind, config.name))
    _save_or_check_config(config, out_dir)
    cells = plan_cells(config)
    done = finished_cells(out_dir, retry_failed)
    todo = [c for c in cells if c.key not in done]
    if not quiet:
        print(f"ablation {config.name!r}: {len(cells)} cells ({len(config.variants)} variants x "
              f"{len(config.seeds)} seeds), {len(cells) - len(todo)} already finished, {len(todo)} to run "
              f"in {out_dir}", flush=True)
    if todo:
        _fit(config, out_dir, todo, total=len(cells), skipped=len(cells) - len(todo), quiet=quiet,
             objectives=objectives)
    stored = read_cells(out_dir)
    # A record carries the variant name it was trained under; the config's current name wins (renames keep cells).
    records = tuple({**stored[c.key], "variant": c.variant} for c in cells if c.key in stored)
    ran = sum(1 for c in todo if stored.get(c.key, {}).get("status") in FINISHED)
    return AblationRun(out_dir, len(cells), len(cells) - len(todo), ran, records, time.time() - start)


def _fit(config: AblationConfig, out_dir: Path, todo: list[Cell], *, total: int, skipped: int,
         quiet: bool, objectives: tuple[str, ...]) -> None:
    from ray import tune
    from ray.tune.logger import JsonLoggerCallback

    from nas.search.guard import fit_guarded, start_ray_checked
    from nas.search.runner import init_ray

    ctx = TrialContext(study_dir=str(out_dir), data=config.data, budget=dict(config.budget),
                       objectives=objectives, seed=config.seeds[0], collapse=config.collapse)
    cells = {c.key: {"variant": c.variant, "seed": c.seed, "genome": c.genome, "key": c.genome_key}
             for c in todo}
    started_ray = start_ray_checked(init_ray, config.ray_address, config.resources, what="a cell")
    trainable = tune.with_resources(
        tune.with_parameters(cell_trainable, ctx=ctx, cells=cells),
        {"cpu": float(config.resources.get("cpu", 1)), "gpu": float(config.resources.get("gpu", 0))},
    )
    callbacks: list[Any] = [JsonLoggerCallback(), *config.logging.callbacks(out_dir, config.name, cells)]
    if not quiet:
        labels = {c.key: f"{c.variant} seed={c.seed}" for c in todo}
        callbacks.append(_progress_callback(total, skipped, labels))
    tuner = tune.Tuner(
        trainable,
        param_space={"cell": tune.grid_search([c.key for c in todo])},
        tune_config=tune.TuneConfig(num_samples=1, max_concurrent_trials=config.max_concurrent, reuse_actors=True),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}", storage_path=str(out_dir / "ray"), verbose=0,
            failure_config=tune.FailureConfig(max_failures=0), callbacks=callbacks,
        ),
    )
    def stop_ray() -> None:
        if started_ray:
            import ray

            ray.shutdown()

    def interrupted() -> str:
        done = len(finished_cells(out_dir))
        return f"{done} of {total} cells finished (kept in {out_dir / CELLS_FILE}); run the same command again to resume"

    try:
        fit_guarded(tuner.fit, [stop_ray], interrupted)  # Ctrl+C and a full disk end in one line
    except NasError:
        raise
    except Exception as exc:  # Tune's own failure (not a cell's: those are stored as failed records)
        raise NasError(f"ablation {config.name!r}: Ray Tune stopped: {type(exc).__name__}: {exc}; finished cells "
                       f"are kept in {out_dir / CELLS_FILE}, run the same command again to resume") from None
