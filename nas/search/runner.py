"""Run a study: Optuna samples, Ray Tune runs the trials, the study directory keeps everything.

``run_study`` starts (or resumes) a study in a directory: trials a killed driver left RUNNING are
queued again, finished trials are never repeated, and the run continues until ``n_trials`` trials
have finished. Ray is started locally unless the config names a cluster address.
"""
from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from nas.errors import ConfigError
from nas.search.folder import sqlite_path
from nas.search.budget import config_counting, spent
from nas.search.guard import fit_guarded, start_ray_checked
from nas.search.objective import TrialContext
from nas.search.trainable import trial_trainable
from nas.search.prescreen import make_prescreener
from nas.search.records import trials_frame
from nas.search.storage import STUDY_FILE, finished_count, open_storage, requeue_interrupted, storage_url

__all__ = ["run_study", "prepare_study", "write_trials_csv", "study_summary", "init_ray", "trial_trainable"]

# Fields that may change when a study is resumed; any other difference means a different study.
RESUMABLE_FIELDS = ("n_trials", "max_concurrent", "resources", "ray_address", "retry_failed", "heartbeat_interval",
                    "grace_period", "storage_path", "logging", "n_trials_counts")


def _save_or_check_config(config: Any, study_dir: Path) -> None:
    path = study_dir / STUDY_FILE
    doc = config.to_dict()
    if path.exists():
        saved = yaml.safe_load(path.read_text()) or {}
        for key in sorted(set(saved) | set(doc)):
            if key not in RESUMABLE_FIELDS and saved.get(key) != doc.get(key):
                raise ConfigError(
                    f"{study_dir} holds a study whose {key!r} is {saved.get(key)!r}, not {doc.get(key)!r}; "
                    f"resume it with `nas study resume {study_dir}` or choose another --out"
                )
    from nas.writes import atomic_write

    atomic_write(path, yaml.safe_dump(doc, sort_keys=False))  # a kill or a full disk never leaves half a config


def prepare_study(config: Any, study_dir: Path) -> optuna.Study:
    """Create or open the Optuna study of ``config`` in ``study_dir`` and re-queue interrupted trials.

    With the study folder's own SQLite file (and its driver lock held) every RUNNING trial is a dead
    driver's and is queued again; on a shared storage only trials whose heartbeat went stale are.
    """
    from nas.search.folder import check_storage_present

    check_storage_present(study_dir, storage_url(study_dir, config.storage))  # never a fresh study over an old one
    _save_or_check_config(config, study_dir)
    storage = open_storage(storage_url(study_dir, config.storage), heartbeat_interval=config.heartbeat_interval,
                           grace_period=config.grace_period)
    from nas.search.identity import create_nas_study

    study = create_nas_study(storage, storage_url(study_dir, config.storage), config.name, config.directions(),
                             own_file=config.storage is None)  # marked as nas's; a plain-Optuna study is refused
    if study.metric_names != list(config.objectives):  # the dashboard's names instead of "0", "1"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(config.objectives))
    study.set_user_attr("objectives", list(config.objectives))
    study.set_user_attr("directions", config.directions())
    study.set_user_attr("config", config.to_dict())
    from nas.mixers import plugin_versions

    config.load_space()  # imports the space's plugins too
    versions = plugin_versions()
    if versions:  # provenance: which plugin modules (and versions) declared the mixers this study may use
        study.set_user_attr("plugins", versions)
    from nas.search.claims import KeyClaims, engine_of
    from nas.search.heartbeat import fail_stale

    if config.storage is None:
        ids = {t._trial_id for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        KeyClaims(engine_of(storage), config.name).release(ids)
        requeue_interrupted(study, only=ids)
    else:
        fail_stale(study)
    return study


def write_trials_csv(study: optuna.Study, study_dir: Path, objectives: list[str]) -> Path:
    frame = trials_frame(study, objectives)
    from nas.writes import atomic_open

    path = study_dir / "trials.csv"
    with atomic_open(path) as fh:
        frame.drop(columns=[c for c in ("sampled",) if c in frame], errors="ignore").to_csv(fh, index=False)
    return path


def study_summary(study: optuna.Study, objectives: list[str]) -> dict[str, Any]:
    """Counts per state, best accuracy and the Pareto front (Optuna's non-dominated sorting)."""
    trials = study.get_trials(deepcopy=False)
    states: dict[str, int] = {}
    for t in trials:
        states[t.state.name] = states.get(t.state.name, 0) + 1
    from nas.pareto import front_trials

    front = front_trials(study)
    best_acc = None
    if "val_acc" in objectives:
        accs = [t.values[objectives.index("val_acc")] for t in trials if t.state == TrialState.COMPLETE]
        best_acc = max(accs) if accs else None
    infeasible = sum(1 for t in trials if t.user_attrs.get("infeasible"))
    prescreened = sum(1 for t in trials if t.user_attrs.get("status") == "prescreened")
    from nas.search.budget import outcome_counts

    return {"states": states, "infeasible": infeasible, "prescreened": prescreened, "best_val_acc": best_acc,
            "front": front, "outcomes": outcome_counts(trials)}


class _Progress:
    """One line per finished trial: its outcome and the study's running totals."""

    def __init__(self, study: optuna.Study, objectives: list[str], n_trials: int, searcher: Any = None,
                 counting: str = "trainings") -> None:
        from nas.search.clock import command_start

        self.study, self.objectives, self.n_trials, self.searcher = study, objectives, n_trials, searcher
        self.counting = counting
        self.start = command_start()  # the clock runs from the command, start-up included

    def __call__(self, trial: optuna.trial.FrozenTrial) -> None:
        from nas.search.budget import describe_outcomes

        s = study_summary(self.study, self.objectives)
        done = spent(self.study, self.counting)
        running = 0
        if self.searcher is not None:
            running = max(0, len(self.searcher._ot_trials) - len(self.searcher._completed_trials)
                          - len(self.searcher._parked))
        attrs = trial.user_attrs
        what = attrs.get("status", trial.state.name.lower())
        if trial.values is not None:
            what += " " + " ".join(f"{k}={_fmt(v)}" for k, v in zip(self.objectives, trial.values))
        elif attrs.get("error"):
            what += f" ({attrs['error'][:80]})"
        elif attrs.get("violations"):
            what += " " + " ".join(f"{k}={_fmt(v)}>limit" for k, v in attrs["violations"].items())
        best = "-" if s["best_val_acc"] is None else f"{s['best_val_acc']:.4f}"
        print(
            f"[{done:>3}/{self.n_trials}] trial {trial.number:>3} {attrs.get('key', '')} {what} | "
            f"{describe_outcomes(s['outcomes'])} running {running}"
            + (f" screened out {s['prescreened']}" if s["prescreened"] else "")
            + f" | best val_acc {best} front {len(s['front'])} "
            f"| {time.time() - self.start:.0f}s",
            flush=True,
        )


def _after_each_trial(progress: Any, study: optuna.Study, study_dir: Path, objectives: list[str]) -> Any:
    """The searcher's per-trial hook: rewrite ``trials.csv`` (atomically), then print the progress line,
    so that a driver killed at any moment leaves a ``trials.csv`` as current as its storage."""

    def hook(trial: optuna.trial.FrozenTrial) -> None:
        write_trials_csv(study, study_dir, objectives)
        if progress is not None:
            progress(trial)

    return hook


def _fmt(v: Any) -> str:
    if isinstance(v, float) and abs(v) >= 1e4:
        return f"{v:.3g}"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def quiet_tune() -> None:
    """Tune settings read in the driver: our progress lines only, results in the Optuna storage."""
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")  # infeasible trials report no accuracy
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no status tables
    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV loggers
    from nas.search.startup import drop_log_message

    # ... and so no result.json for Tune's result grid to read at the end of a run: its warning that it
    # found none says nothing to the user (the study's records are its storage and trials.csv)
    drop_log_message("ray.tune.analysis.experiment_analysis", "Failed to fetch metrics for")


def init_ray(address: str | None) -> bool:
    """Start a local Ray (or connect to ``address``); returns True when this call started it."""
    import ray

    quiet_tune()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    env = plugin_runtime_env()
    if env:
        kwargs["runtime_env"] = env
    if address in (None, "", "local"):
        kwargs.update(address="local", include_dashboard=False)
        from nas.search.priority import worker_niceness_env
        from nas.search.startup import no_prestart_env

        os.environ.update(worker_niceness_env())  # the raylet reads them when it starts, below
        os.environ.update(no_prestart_env())
    else:
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except Exception as exc:
        raise ConfigError(f"ray_address {address!r}: cannot start or reach Ray: {type(exc).__name__}: {exc}") from None
    return True


def plugin_runtime_env() -> dict[str, Any] | None:
    """Ray's ``runtime_env`` that lets every worker, on any node, import the plugins this driver imported
    from folders outside the installed packages (a genome names its plugins; workers import them when
    they parse it). The folders must be reachable at the same path on every node, as the study folder is;
    installed plugins need nothing."""
    from nas.mixers import plugin_paths

    paths = plugin_paths()
    if not paths:
        return None
    current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    return {"env_vars": {"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths + current))}}


def _sampler(config: Any, study: optuna.Study, rank: int = 0) -> optuna.samplers.BaseSampler:
    """The study's sampler; on resume its seed moves on by the number of stored trials, so a resumed
    run does not replay the first run's random draws (which would propose the same architectures),
    and each driver of a shared study adds its rank among the study's driver starts (drivers started
    together see the same number of trials). Wrapped so that infeasible, early-stopped and prescreened
    trials inform it."""
    import dataclasses

    from nas.search.feedback import FeedbackSampler

    n = len(study.get_trials(deepcopy=False)) + 100_003 * rank
    seeded = dataclasses.replace(config, seed=config.seed + n) if n else config
    return FeedbackSampler(seeded.make_sampler())  # learns from PRUNED trials too (nas.search.feedback)


def _scheduler(config: Any, epochs: int | None) -> Any:
    sched = config.scheduler
    if not sched:
        return None
    if sched.get("kind") == "moasha":  # promotes by non-dominated sorting over all objectives
        from nas.search.moasha import MOASHAScheduler

        return MOASHAScheduler(config.objectives, max(1, int(epochs or 1)), grace_period=int(sched["grace_period"]),
                               reduction_factor=float(sched["reduction_factor"]), selection=sched["selection"],
                               startup_trials=int(sched["startup_trials"]))
    from ray.tune.schedulers import ASHAScheduler

    objectives = list(config.objectives)
    metric = "val_acc" if "val_acc" in objectives else objectives[0]
    mode = "max" if config.objectives[metric] == "maximize" else "min"
    # max_t one past the budget: ASHA stops any trial that reaches max_t, and a trial that has run
    # its whole budget must still deliver its final report (rungs below the budget are unchanged).
    return ASHAScheduler(
        time_attr="epoch", metric=metric, mode=mode, max_t=max(1, int(epochs or 1)) + 1,
        grace_period=int(sched.get("grace_period", 1)), reduction_factor=float(sched.get("reduction_factor", 2)),
    )


def run_study(config: Any, study_dir: str | Path, *, quiet: bool = False, dry_run: bool = False) -> dict[str, Any]:
    """Run (or resume) the study of ``config`` in ``study_dir`` until ``n_trials`` trials have finished.

    The study folder is locked for the run (one driver per folder). Several drivers may share one
    ``storage`` URL, each with its own folder: ``n_trials`` is then the budget of the whole study.
    ``dry_run`` replaces each trial's training by a no-op (zero metrics): sampling, Ray scheduling,
    cost and storage still run, which is what the orchestration benchmark measures.
    """
    from nas.search.identity import check_folder_storage
    from nas.search.lock import study_lock
    from nas.writes import Owner, claim_folder

    if getattr(config, "strategy", None) is not None:  # one-shot: a supernet scores the space (nas.supernet)
        from nas.supernet.study import run_one_shot_study

        return run_one_shot_study(config, study_dir, quiet=quiet)
    study_dir = Path(study_dir).resolve()
    check_folder_storage(study_dir, config.name, config.storage)  # a plain-Optuna study.db: refused, nothing written
    from nas.reach import probe_ray_address

    probe_ray_address(config.ray_address)  # a dead cluster address: refused in seconds, before the folder is made
    claim_folder(study_dir, Owner("study", config.name))  # never another study's or an ablation's folder
    with study_lock(study_dir):
        return _run_locked(config, study_dir, quiet=quiet, dry_run=dry_run)


def _early_ray(config: Any, study_dir: Path) -> Any:
    """A new study in its folder's own SQLite file has every trial still to run: Ray starts on its thread
    before the study storage is opened (about 0.75 s of the first result on 2 cores), not after. A study
    that already has a storage (a rerun, a resume, a shared database) may have nothing left to run, and
    starts Ray only once it knows (:func:`_run_locked`)."""
    if config.storage is not None or config.n_trials <= 0:
        return None
    db = sqlite_path(storage_url(study_dir, config.storage))
    if db is None or db.exists():
        return None
    from nas.search.clock import PROFILE

    config.load_space()  # imports the space's plugins first: Ray's runtime_env names their folders
    PROFILE.mark("space and plugins loaded")
    return _ray_thread(config)


def _ray_thread(config: Any) -> Any:
    """Ray's start (local, or the connection to ``ray_address``) on a thread: nothing needs it until the
    first trial is scheduled (:class:`nas.search.startup.BackgroundRay`)."""
    from nas.search.startup import BackgroundRay

    import ray  # noqa: F401 - imported here, on the main thread; the thread only calls ray.init

    return BackgroundRay(start_ray_checked, init_ray, config.ray_address, config.resources).start()


def _run_locked(config: Any, study_dir: Path, *, quiet: bool, dry_run: bool) -> dict[str, Any]:
    from nas.search.clock import PROFILE

    ray_start = _early_ray(config, study_dir)
    try:
        study = prepare_study(config, study_dir)
    except BaseException:
        if ray_start is not None:
            ray_start.abandon()
        raise
    PROFILE.mark("study storage open")
    objectives = list(config.objectives)
    counting = config_counting(config)
    remaining = config.n_trials - spent(study, counting)
    if remaining <= 0 and ray_start is not None:
        ray_start.abandon()
    if remaining > 0:
        if ray_start is None:
            ray_start = _ray_thread(config)
        try:
            data, space, prescreener, ctx, claims, rank = _prepare_run(config, study, study_dir, objectives, dry_run)
        except BaseException:
            ray_start.abandon()
            raise
        if not quiet:
            print(f"study {config.name!r}: {remaining} trial(s) to run in {study_dir}", flush=True)
        started_ray = ray_start.join()
        from nas import signals

        signals.reinstall()  # ray.init on a thread put Ray's own fatal-signal handler in place of ours
        PROFILE.mark("driver ready, Ray up: the first trials are scheduled")

        def rounds() -> None:
            for _ in range(20):  # a round ends when this driver sees the budget spent or taken by live trials
                _run_round(config, study, study_dir, ctx, _genome_suggester(space, data), claims, rank, quiet,
                           prescreener)
                waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if spent(study, counting) >= config.n_trials or not waiting:
                    break  # else trials of a dead driver were queued again: run them

        def stop_ray() -> None:
            if started_ray:
                import ray

                ray.shutdown()
            ray_start.release()

        fit_guarded(  # Ctrl+C and a full disk end in one line; each round puts back its own unfinished trials
            rounds,
            [lambda: write_trials_csv(study, study_dir, objectives), stop_ray],
            lambda: f"{spent(study, counting)} of {config.n_trials} trials finished; resume with "
                    f"`nas study resume {study_dir}`",
            database=str(sqlite_path(storage_url(study_dir, config.storage)) or "the study's storage"),
        )
    write_trials_csv(study, study_dir, objectives)
    if config.keep_checkpoints == "pareto":
        _prune_checkpoints(study, study_dir)
    from nas.search.references import record_references

    record_references(config, study, study_dir, quiet=quiet)  # reference presets, hypervolume reference point
    return study_summary(study, objectives)


def _genome_suggester(space: Any, data: Any) -> Any:
    fixed = {"in_channels": data.channels, "num_classes": data.num_classes}

    def suggest_genome(trial: Any) -> dict[str, Any]:
        from nas.genome import parse_genome

        return parse_genome(space.suggest(trial), **fixed).to_dict()

    return suggest_genome


def _prepare_run(config: Any, study: optuna.Study, study_dir: Path, objectives: list[str], dry_run: bool) -> tuple:
    """What the driver needs before its first trial: data, space, trial context, pre-screener, claims;
    and Ray Tune's modules imported (while Ray starts on its thread)."""
    from nas.data import load_dataset
    from nas.search.claims import KeyClaims, engine_of
    from nas.search.clock import PROFILE

    data = load_dataset(config.data, seed=config.seed)  # fail early on a bad data spec
    PROFILE.mark("dataset read in the driver")
    space = config.load_space()
    ctx = TrialContext(
        study_dir=str(study_dir), data=config.data, budget=dict(config.budget), objectives=tuple(objectives),
        constraints=dict(config.constraints), seed=config.seed, keep_checkpoints=config.keep_checkpoints,
        dry_run=dry_run, tune_checkpoints=True,
    )
    prescreener = make_prescreener(config, ctx, data)
    claims = KeyClaims(engine_of(study._storage), config.name)
    rank = claims.register_driver()
    import ray.tune  # noqa: F401 - the seconds its import takes overlap Ray's start-up

    import nas.search.searcher  # noqa: F401

    if _wants_tune_callbacks(config):
        from nas.search.startup import import_tune_telemetry

        import_tune_telemetry()
    PROFILE.mark("driver imports done (Ray Tune, searcher)")
    return data, space, prescreener, ctx, claims, rank


def _run_round(config: Any, study: optuna.Study, study_dir: Path, ctx: TrialContext, suggest_genome: Any,
               claims: Any, rank: int, quiet: bool, prescreener: Any = None) -> None:
    """One Ray Tune run that samples while the study-wide budget allows, with this driver's heartbeat."""
    from ray import tune

    from nas.search.heartbeat import Heartbeat
    from nas.search.searcher import StudySearcher

    objectives = list(config.objectives)
    searcher = StudySearcher(
        suggest_genome=suggest_genome, objectives=objectives, directions=config.directions(),
        study_name=config.name, storage=study._storage, sampler=_sampler(config, study, rank),
        claims=claims, n_trials=config.n_trials, retry_failed=config.retry_failed, prescreen=prescreener,
        counting=config_counting(config),
    )
    progress = None if quiet else _Progress(searcher.study, objectives, config.n_trials, searcher,
                                            config_counting(config))
    searcher._on_complete = _after_each_trial(progress, study, study_dir, objectives)  # trials.csv after every trial
    trainable = tune.with_resources(
        tune.with_parameters(trial_trainable, ctx=ctx),
        {"cpu": float(config.resources.get("cpu", 1)), "gpu": float(config.resources.get("gpu", 0))},
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=_scheduler(config, ctx.budget.get("epochs")), num_samples=-1,
            max_concurrent_trials=config.max_concurrent, reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=f"run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}",
            storage_path=config.storage_path or str(study_dir / "ray"), verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            callbacks=_tune_callbacks(config, study_dir, searcher._checkpoints),
        ),
    )
    with Heartbeat(study, searcher.owned, config.heartbeat_interval), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Heartbeat of storage")  # our thread beats (nas.search.heartbeat)
        try:
            from nas.search.clock import PROFILE

            PROFILE.mark("Ray Tune starts (Tuner.fit)")
            tuner.fit()

            PROFILE.report(searcher.first_result)  # nas study run --profile: once, after the first round
            PROFILE.enabled = False
            while searcher.waiting_on_others:  # trials whose key another driver is training
                searcher.poll_others(force=True)
                time.sleep(0.5)
        finally:
            own = searcher.owned()  # nothing of ours stays RUNNING, whatever happened; others' are untouched
            claims.release(own)
            requeue_interrupted(study, only=own)


def _wants_tune_callbacks(config: Any) -> bool:
    """Whether the run gives Ray Tune callbacks: only when checkpoints are kept or `logging` is set."""
    return config.keep_checkpoints != "none" or bool(config.logging.to_doc())


def _tune_callbacks(config: Any, study_dir: Path, checkpoints: dict[str, str]) -> list[Any]:
    """The Ray Tune callbacks a study needs, and no others.

    The study's records are its Optuna storage and ``trials.csv``; Tune's own loggers are off
    (``quiet_tune``). A callback list that is not empty costs the driver time before its first trial:
    ``Tuner.fit`` then imports Tune's MLflow, W&B, Comet and Aim logger modules to count the callbacks
    for its usage statistics, 0.75 s with MLflow installed. So a study passes callbacks only for what
    it was asked to keep: where Tune persisted each checkpoint (``keep_checkpoints``), and the
    trackers of ``logging``.
    """
    out: list[Any] = list(config.logging.callbacks(study_dir, config.name))
    if config.keep_checkpoints != "none":
        out.append(_CheckpointLocations(checkpoints))
    return out


class _CheckpointLocations:
    """Ray Tune callback: note where each trial's checkpoint was persisted (a path or a URI) in
    ``locations`` (the searcher's dict: a plain dict, so that Tune can pickle its run config)."""

    def __new__(cls, locations: dict[str, str]) -> Any:
        from ray.tune import Callback

        class _Callback(Callback):
            def on_checkpoint(self, iteration: int, trials: list, trial: Any, checkpoint: Any, **info: Any) -> None:
                fs = getattr(checkpoint, "filesystem", None)
                kind = getattr(fs, "type_name", "local")
                locations[trial.trial_id] = checkpoint.path if kind == "local" else f"{kind}://{checkpoint.path}"

        return _Callback()


def _prune_checkpoints(study: optuna.Study, study_dir: Path) -> None:
    """Keep the checkpoints of the Pareto front only."""
    keep = {t.user_attrs.get("key") for t in (study.best_trials if finished_count(study) else [])}
    for trial in study.get_trials(deepcopy=False):  # weights Ray Tune persisted on a local or shared folder
        path = Path(str(trial.user_attrs.get("checkpoint") or ""))
        if trial.user_attrs.get("key") not in keep and "://" not in str(path) and path.suffix == ".pt" and path.is_file():
            path.unlink()
    folder = study_dir / "checkpoints"
    if not folder.is_dir():
        return
    for path in folder.glob("*.pt"):
        if path.stem not in keep:
            path.unlink()

