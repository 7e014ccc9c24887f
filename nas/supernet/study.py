"""A one-shot study: train the supernet, score thousands of architectures with inherited weights using
the study's own sampler and objectives, then confirm the front by stand-alone training.

Everything lives in the study folder as for a multi-trial study: ``study.yaml``, the Optuna storage
(every scored architecture is a trial, COMPLETE or PRUNED-infeasible, marked ``scored_by: supernet``),
``trials.csv``, ``cost.jsonl``; plus ``supernet/`` (the per-epoch training checkpoint, the final
weights, ``train.json``) and ``confirm/`` (the confirmation, :mod:`nas.confirm`). Each phase resumes:
the training from its last epoch, the search from the trials already stored (a trial is written once
scored, in one transaction, so a kill leaves no half-trial), the confirmation from its stored cells.

The sampler runs on an in-memory copy of the study (asking and suggesting thousands of trials against
SQLite would cost more than scoring them); the persistent storage receives each finished trial whole.
Scoring fans out over Ray workers in batches of ``batch_trials``: the sampler proposes a batch, the
workers score it, the sampler hears all of it, and so on (a batch is a generation for NSGA-II).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import optuna
import torch

from nas.supernet.score import SCORED_BY, SubnetScorer

__all__ = ["run_one_shot_study", "SUPERNET_DIR", "WEIGHTS_FILE", "TRAIN_FILE", "train_phase", "search_phase"]

SUPERNET_DIR = "supernet"
WEIGHTS_FILE = "weights.pt"  # the trained supernet: {"skeleton": ..., "state": ...}
CHECKPOINT_FILE = "checkpoint.pt"  # per-epoch training state (weights, optimizer, RNG states)
TRAIN_FILE = "train.json"  # what the supernet training did: epochs, steps, paths, wall time, history


def _fixed(data: Any) -> dict[str, Any]:
    return {"in_channels": data.channels, "num_classes": data.num_classes}


def train_phase(config: Any, study_dir: Path, *, quiet: bool = False) -> dict[str, Any]:
    """Train the study's supernet (or resume it); returns the weights document, also written to disk."""
    import dataclasses

    from nas.search.objective import dataset_for
    from nas.supernet.model import Supernet, skeleton_of
    from nas.supernet.train import _save, train_supernet
    from nas.train.config import TrainConfig

    folder = study_dir / SUPERNET_DIR
    weights = folder / WEIGHTS_FILE
    if weights.is_file():
        return torch.load(weights, map_location="cpu", weights_only=False)
    one_shot = config.strategy
    data = dataset_for(config.data, config.seed)
    space = config.load_space()
    skeleton = skeleton_of(space, _fixed(data))
    torch.manual_seed(config.seed)
    supernet = Supernet(skeleton)
    if not quiet:
        print(f"supernet: {sum(p.numel() for p in supernet.parameters()):,} parameters, stages "
              f"{list(skeleton.counts)}, depth {list(skeleton.depth)}, dim {list(skeleton.dim)}; training "
              f"{one_shot.supernet_epochs} epoch(s)" + (" with the sandwich rule" if one_shot.sandwich else ""),
              flush=True)
    train_config = TrainConfig.from_dict({**dict(config.budget), "epochs": one_shot.supernet_epochs})

    def report(entry: dict[str, Any]) -> None:
        if not quiet:
            print(f"supernet epoch {entry['epoch']}/{one_shot.supernet_epochs}: train_loss {entry['train_loss']:.4f} "
                  f"({entry['epoch_s']:.0f}s, {entry['paths']} paths)", flush=True)

    start = time.time()
    run = train_supernet(supernet, space, data, train_config, epochs=one_shot.supernet_epochs, seed=config.seed,
                         sandwich_rule=one_shot.sandwich, paths_per_step=one_shot.paths_per_step,
                         checkpoint=folder / CHECKPOINT_FILE, fixed=_fixed(data), report=report)
    doc = {"skeleton": dataclasses.asdict(skeleton), "state": {k: v.detach().cpu() for k, v in
                                                              supernet.state_dict().items()}}
    _save(weights, doc)
    info = {"epochs": run.epochs, "steps": run.steps, "paths": run.paths, "elapsed_s": run.elapsed_s,
            "wall_s": time.time() - start, "history": run.history,
            "params": sum(p.numel() for p in supernet.parameters())}
    (folder / TRAIN_FILE).write_text(json.dumps(info, indent=1) + "\n")
    (folder / CHECKPOINT_FILE).unlink(missing_ok=True)  # the final weights replace the resumable state
    return doc


def _memory_study(config: Any, persistent: optuna.Study) -> optuna.Study:
    """An in-memory study holding the persistent study's trials, with the study's (feedback) sampler."""
    from nas.search.runner import _sampler

    from nas.errors import ConfigError

    memory = optuna.create_study(directions=config.directions(), sampler=_sampler(config, persistent),
                                 study_name=config.name)
    old = persistent.get_trials(deepcopy=False)
    unfinished = [t.number for t in old if not t.state.is_finished()]
    if unfinished:  # only this loop writes a one-shot study's trials, each finished: someone else is writing
        raise ConfigError(f"study {config.name!r}: trials {unfinished[:5]} are still running or waiting; a one-shot "
                          "study's storage must not be shared with another driver")
    if old:
        memory.add_trials(old)  # every state: the in-memory numbers are the stored numbers
    return memory


def _scorers(config: Any, weights: dict[str, Any], study_dir: Path) -> list[Any]:
    import ray

    ref = ray.put(weights)
    remote = ray.remote(num_cpus=float(config.resources.get("cpu", 1)),
                        num_gpus=float(config.resources.get("gpu", 0)))(SubnetScorer)
    device = "auto" if float(config.resources.get("gpu", 0)) > 0 else "cpu"
    return [remote.remote(ref, data=config.data, seed=config.seed, budget=dict(config.budget),
                          constraints=dict(config.constraints), study_dir=str(study_dir),
                          calibration_batches=config.strategy.calibration_batches, device=device)
            for _ in range(config.max_concurrent)]


class _TrialWriter:
    """Stores finished trials in the persistent study on a thread of its own, in the order given.

    Each ``add_trial`` is one SQLite transaction (tens of milliseconds, more than scoring a small
    subnet), so the writes overlap the next round's scoring instead of following it. A trial is stored
    whole or not at all; one still queued when the driver is killed is scored again on resume, under
    the same number (the in-memory study is rebuilt from every stored trial, and nothing else writes
    to a one-shot study's storage: :func:`_memory_study` refuses one with unfinished trials)."""

    def __init__(self, study: optuna.Study) -> None:
        import queue
        import threading

        self.study, self.error = study, None
        self.queue: queue.Queue[Any] = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="nas-trial-writer", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while (trial := self.queue.get()) is not None:
            if self.error is None:
                try:
                    self.study.add_trial(trial)
                except BaseException as exc:  # noqa: BLE001 - re-raised by close() on the driver's thread
                    self.error = exc

    def put(self, trials: list[Any]) -> None:
        if self.error is not None:
            raise self.error
        for t in trials:
            self.queue.put(t)

    def close(self) -> None:
        """Wait for every queued trial to be stored; raise the first write error."""
        self.queue.put(None)
        self.thread.join()
        if self.error is not None:
            raise self.error


def _chunks(keys: list[str], workers: int) -> list[list[str]]:
    """About four chunks per worker: a worker that drew small subnets takes more of them."""
    size = max(1, -(-len(keys) // (4 * workers)))
    return [keys[i:i + size] for i in range(0, len(keys), size)]


def search_phase(config: Any, study: optuna.Study, study_dir: Path, weights: dict[str, Any], *,
                 quiet: bool = False) -> None:
    """Score architectures until ``n_trials`` count (see the module docstring and
    :mod:`nas.search.budget`: by default copies and infeasible architectures are free)."""
    from ray.util import ActorPool

    from nas.genome import parse_genome
    from nas.search.budget import config_counting, sample_cap, spent
    from nas.search.feedback import with_feedback
    from nas.search.objective import dataset_for
    from nas.search.records import classify_result
    from nas.search.runner import write_trials_csv

    objectives, directions = list(config.objectives), config.directions()
    counting = config_counting(config)
    cap = sample_cap(config.n_trials, counting)
    data = dataset_for(config.data, config.seed)
    space = config.load_space()
    fixed = _fixed(data)
    memory = _memory_study(config, study)
    stored = memory.get_trials(deepcopy=False)
    known: dict[str, dict[str, Any]] = {}  # key -> result: an architecture is scored once per study
    for t in stored:
        if t.user_attrs.get("key") and t.user_attrs["key"] not in known:
            known[t.user_attrs["key"]] = {**{k: v for k, v in t.user_attrs.items() if k != "reused_from"},
                                          "number": t.number}
    scorers = _scorers(config, weights, study_dir)
    pool = ActorPool(scorers)
    writer = _TrialWriter(study)
    start, last_csv = time.time(), time.time()
    done, asked_total = spent(memory, counting), len(stored)
    try:
        while done < config.n_trials and asked_total < cap:
            asked = [memory.ask() for _ in range(min(config.strategy.batch_trials, config.n_trials - done,
                                                     cap - asked_total))]
            asked_total += len(asked)
            genomes = [parse_genome(space.suggest(t), **fixed) for t in asked]
            todo = {g.key: g.to_dict() for g in genomes if g.key not in known}
            chunks = _chunks(list(todo), len(scorers))
            for results in pool.map_unordered(lambda s, c: s.score_many.remote([todo[k] for k in c]), chunks):
                for result in results:  # in the order they finish: an idle worker takes the next chunk
                    known[result["key"]] = {**result, "genome": todo[result["key"]]}
            for trial, genome in zip(asked, genomes):
                result = dict(known[genome.key])
                reused = result.get("number") is not None and trial.number != result["number"]
                outcome = classify_result({**result, "genome": genome.to_dict()}, False, objectives)
                attrs = with_feedback(outcome.attrs, outcome.state, objectives, directions, memory)
                attrs["scored_by"] = SCORED_BY
                if reused:
                    attrs["reused_from"] = result["number"]
                for name, value in attrs.items():
                    trial.set_user_attr(name, value)
                memory.tell(trial, outcome.values, state=outcome.state)
                if not reused:
                    known[genome.key]["number"] = trial.number
            trials = memory.get_trials(deepcopy=False)
            writer.put(trials[asked[0].number:asked[-1].number + 1])
            done = spent(memory, counting)
            if time.time() - last_csv > 60:  # the table a user can open while the search runs
                write_trials_csv(memory, study_dir, objectives)
                last_csv = time.time()
            if not quiet:
                _progress(memory, objectives, done, config.n_trials, start)
    finally:
        writer.close()
    if done < config.n_trials and not quiet:
        print(f"stopped sampling after {asked_total} trials ({cap} at most for n_trials {config.n_trials}): "
              f"{done} architecture(s) counted; the sampler kept proposing copies or infeasible ones", flush=True)


def _progress(study: optuna.Study, objectives: list[str], done: int, total: int, start: float) -> None:
    from nas.search.runner import study_summary

    s = study_summary(study, objectives)
    best = "-" if s["best_val_acc"] is None else f"{s['best_val_acc']:.4f}"
    elapsed = time.time() - start
    o = s["outcomes"]
    distinct = o["scored"] + o["infeasible"]  # architectures looked at; a copy repeats one the sampler proposed before
    print(f"[{done:>5}/{total}] | scored {o['scored']} infeasible {o['infeasible']} reused {o['reused']} | "
          f"best val_acc {best} front {len(s['front'])} | {elapsed:.0f}s ({distinct / max(elapsed, 1e-9) * 3600:.0f} "
          "distinct architectures/h)", flush=True)


def run_one_shot_study(config: Any, study_dir: str | Path, *, quiet: bool = False) -> dict[str, Any]:
    """Run (or resume) a one-shot study in ``study_dir``: supernet, search, confirmation."""
    from nas.search.guard import start_ray_checked
    from nas.search.lock import study_lock
    from nas.search.runner import init_ray, prepare_study, study_summary, write_trials_csv
    from nas.search.budget import config_counting, spent

    study_dir = Path(study_dir).resolve()
    timings: dict[str, float] = {}
    with study_lock(study_dir):
        study = prepare_study(config, study_dir)
        objectives = list(config.objectives)
        t0 = time.time()
        weights = train_phase(config, study_dir, quiet=quiet)
        timings["train_s"] = time.time() - t0
        remaining = config.n_trials - spent(study, config_counting(config))
        if remaining > 0:
            if not quiet:
                print(f"study {config.name!r}: scoring {remaining} architecture(s) with inherited weights in "
                      f"{study_dir}", flush=True)
            started = start_ray_checked(init_ray, config.ray_address, config.resources, what="a scoring worker")
            t1 = time.time()
            try:
                search_phase(config, study, study_dir, weights, quiet=quiet)
            finally:
                if started:
                    import ray

                    ray.shutdown()
            timings["search_s"] = time.time() - t1
        write_trials_csv(study, study_dir, objectives)
    if config.strategy.confirm:
        from nas.confirm import confirm_study

        t2 = time.time()
        s = config.strategy
        epochs = s.confirm_epochs or config.budget.get("epochs") or None
        result = confirm_study(study_dir, top=s.confirm_top, epochs=epochs, seeds=list(s.confirm_seeds), quiet=quiet)
        if not quiet:
            from nas.confirm.render import confirmation_markdown

            print()
            print(confirmation_markdown(result.confirmation))
        timings["confirm_s"] = time.time() - t2
    _write_timings(study_dir, timings)
    return study_summary(study, objectives)


def _write_timings(study_dir: Path, timings: dict[str, float]) -> None:
    """Wall time of each phase this call ran, appended to ``supernet/timings.jsonl``."""
    path = study_dir / SUPERNET_DIR / "timings.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fh.write(json.dumps({**timings, "at": time.time(), "pid": os.getpid()}) + "\n")
