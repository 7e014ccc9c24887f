"""Study configs (``nas/configs/studies/*.yaml`` and the user's own): what to search, how each trial trains, and how trials run.

A config is validated entirely at load, before anything starts, so a typo costs a second rather than
a Ray cluster start-up: unknown keys name the closest known one, the search space is loaded and
checked, the budget is checked by the trainer's own :class:`~nas.train.config.TrainConfig`.

Numbers such as ``5.0e7`` and ``1e-3`` are read as floats (PyYAML follows YAML 1.1 and leaves them as
strings); ``--set key.sub=value`` overrides are parsed the same way.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nas.config_validation import NAME, Validator
from nas.errors import ConfigError, closest
from nas.fields import SEED_MAX, show
from nas.genome.io import load_yaml, read_document
from nas.proxy.registry import PROXIES
from nas.search.tracking import Tracking, parse_tracking
from nas.search.budget import COUNTINGS

__all__ = ["StudyConfig", "load_study_config", "apply_overrides", "OBJECTIVES", "SAMPLERS"]

# Objective name -> its natural direction (used when objectives are given as a list).
OBJECTIVES: dict[str, str] = {
    "val_acc": "maximize", "val_loss": "minimize", "train_acc": "maximize", "train_loss": "minimize",
    "flops": "minimize", "params": "minimize", "latency_ms": "minimize",
    **{f"proxy_{name}": "maximize" for name in PROXIES},  # zero-cost proxies, scored before training
}
TRAINING_OBJECTIVES = ("val_acc", "val_loss", "train_acc", "train_loss")  # change from epoch to epoch
CONSTRAINTS = ("flops", "params", "latency_ms")  # known from the cost model before training
SAMPLERS = ("nsga2", "tpe", "random", "gp", "qmc")
DIRECTIONS = ("maximize", "minimize")
KEEP_CHECKPOINTS = ("pareto", "all", "none")
SCHEDULERS = ("none", "asha", "moasha")
ASHA_DEFAULTS: dict[str, Any] = {"grace_period": 1, "reduction_factor": 2}
MOASHA_SELECTIONS = ("epsnet", "crowding")  # MO-ASHA's tie-breaks within a front (nas.search.moasha)
# startup_trials: a rung stops nothing before it holds this many results (docs/search_efficiency.md)
MOASHA_DEFAULTS: dict[str, Any] = {"grace_period": 1, "reduction_factor": 2, "selection": "epsnet",
                                   "startup_trials": 4}
PRESCREEN_FIELDS = ("proxy", "keep")
FIELDS = ("name", "plugins", "space", "data", "budget", "objectives", "constraints", "sampler", "n_trials", "seed",
          "resources", "max_concurrent", "scheduler", "storage", "ray_address", "keep_checkpoints",
          "reference_presets", "prescreen", "retry_failed", "heartbeat_interval", "grace_period", "storage_path",
          "logging", "n_trials_counts", "strategy")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class StudyConfig:
    """One study, validated. Build it with :func:`load_study_config` or :meth:`from_dict`."""

    name: str
    space: str  # absolute path of the search-space file
    data: str  # dataset spec, NAME[:PATH]
    objectives: dict[str, str]  # objective -> maximize | minimize, in the order Optuna reports values
    budget: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields of every trial
    constraints: dict[str, float] = field(default_factory=dict)  # upper bounds checked before training
    sampler: str = "nsga2"
    n_trials: int = 24
    seed: int = 0
    resources: dict[str, float] = field(default_factory=lambda: {"cpu": 1.0, "gpu": 0.0})  # per trial
    max_concurrent: int = 1
    scheduler: dict[str, Any] | None = None  # None: every trial runs its whole budget; else kind (asha | moasha) + settings
    storage: str | None = None  # SQLAlchemy URL; None: an SQLite file in the study directory
    ray_address: str | None = None  # None or "local": a local Ray; "auto"; "ray://host:port"
    keep_checkpoints: str = "none"
    reference_presets: tuple[str, ...] = ()
    # None: every sampled architecture is trained; else {proxy, keep}: train the best of 1/keep candidates
    prescreen: dict[str, Any] | None = None
    retry_failed: bool = False  # False: a key that failed is not trained again when sampled again
    heartbeat_interval: float = 5.0  # seconds between a driver's heartbeats for the trials it runs
    grace_period: float = 30.0  # a RUNNING trial without a heartbeat for this long belongs to a dead driver
    storage_path: str | None = None  # Ray Tune's storage (shared folder or URI) for checkpoints; None: <study>/ray
    strategy: Any = None  # None: multi-trial (every architecture trained); else nas.supernet.OneShotConfig
    plugins: tuple[str, ...] = ()  # modules that declare mixers (imported before the space is read)
    logging: Tracking = field(default_factory=Tracking)  # TensorBoard / MLflow views of the trials (nas.search.tracking)
    # trainings: n_trials architectures trained or stopped (copies and infeasible ones are free); trials: every trial
    n_trials_counts: str = "trainings"  # see nas.search.budget

    # -- documents ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], *, base_dir: str | Path | None = None,
                  label: str = "study config") -> "StudyConfig":
        """Validate a config document; relative ``space`` paths resolve against ``base_dir``, then the cwd."""
        return _Validator(label, base_dir).build(doc)

    def to_dict(self) -> dict[str, Any]:
        """Plain-YAML document that loads back to an equal config."""
        return {
            "name": self.name, "space": self.space, "data": self.data, "budget": dict(self.budget),
            "objectives": dict(self.objectives), "constraints": dict(self.constraints), "sampler": self.sampler,
            "n_trials": self.n_trials, "seed": self.seed, "resources": dict(self.resources),
            "max_concurrent": self.max_concurrent,
            "scheduler": "none" if self.scheduler is None else _scheduler_doc(self.scheduler),
            "storage": self.storage, "ray_address": self.ray_address, "keep_checkpoints": self.keep_checkpoints,
            "reference_presets": list(self.reference_presets),
            "prescreen": dict(self.prescreen) if self.prescreen else None, "retry_failed": self.retry_failed,
            "heartbeat_interval": self.heartbeat_interval, "grace_period": self.grace_period,
            "storage_path": self.storage_path, "logging": self.logging.to_doc(), "n_trials_counts": self.n_trials_counts,
            **_strategy_doc(self.strategy),
            **({"plugins": list(self.plugins)} if self.plugins else {}),
        }

    # -- derived -----------------------------------------------------------------------------------
    def directions(self) -> list[str]:
        """Directions for ``optuna.create_study(directions=...)``, in objective order."""
        return list(self.objectives.values())

    def load_space(self) -> Any:
        """The study's :class:`~nas.search.space.SearchSpace`."""
        from nas.search.space import load_space

        return load_space(self.space)

    def make_sampler(self, constraints_func: Callable[..., Sequence[float]] | None = None) -> Any:
        """The Optuna sampler named by ``sampler``, seeded with ``seed``; all of them handle several objectives.

        Studies are short (tens of trials), so the model-based samplers start modelling after a third
        of the budget (at most Optuna's usual 10 random trials) and NSGA-II's generations hold a third
        of the budget (at most 50, its default) so that it evolves at least a few generations.
        TPE runs multivariate with ``group=True`` because the spaces are conditional (heads exist only
        for attention stages): grouping models each set of co-occurring parameters jointly.
        """
        import warnings

        import optuna.samplers as s
        from optuna.exceptions import ExperimentalWarning

        startup = max(1, min(10, self.n_trials // 3))
        with warnings.catch_warnings():  # TPE's group and QMC are experimental in Optuna; chosen knowingly
            warnings.simplefilter("ignore", ExperimentalWarning)
            if self.sampler == "nsga2":
                return s.NSGAIISampler(seed=self.seed, population_size=max(4, min(50, self.n_trials // 3)),
                                       constraints_func=constraints_func)
            if self.sampler == "tpe":
                return s.TPESampler(seed=self.seed, multivariate=True, group=True, n_startup_trials=startup,
                                    constraints_func=constraints_func)
            if self.sampler == "gp":
                return s.GPSampler(seed=self.seed, n_startup_trials=startup, constraints_func=constraints_func,
                                   warn_independent_sampling=False)
            if self.sampler == "qmc":
                return s.QMCSampler(seed=self.seed, scramble=True, warn_independent_sampling=False,
                                    warn_asynchronous_seeding=False)
            return s.RandomSampler(seed=self.seed)


def _strategy_doc(strategy: Any) -> dict[str, Any]:
    """``strategy`` in the document (left out for multi-trial, so multi-trial study files are unchanged)."""
    if strategy is None:
        return {}
    from nas.supernet.config import strategy_doc

    return {"strategy": strategy_doc(strategy)}


def _scheduler_doc(scheduler: Mapping[str, Any]) -> dict[str, Any]:
    """``{"kind": "asha", ...}`` as the document spells it: ``{asha: {...}}``."""
    settings = {k: v for k, v in scheduler.items() if k != "kind"}
    return {scheduler.get("kind", "asha"): settings}


# -- loading ----------------------------------------------------------------------------------------
def _read(path: Path) -> Any:
    from nas.configs import not_found_message

    if path.is_dir():
        raise ConfigError(f"study config {path} is a directory; give a YAML file (a study folder's own is "
                          f"{path / 'study.yaml'}; `nas study resume {path}` continues that study)")
    if not path.is_file():
        raise ConfigError(f"study config not found: {path}; {not_found_message('study', path).split('; ', 1)[1]}")
    return read_document(path, error=ConfigError)


def load_study_config(path: str | Path, overrides: Sequence[str] = ()) -> StudyConfig:
    """Read a study config file, apply ``--set key.sub=value`` overrides, validate everything."""
    from nas.configs import shipped_path

    path = Path(path)
    if not path.exists():  # a shipped config's name: `nas study run quickstart`
        path = shipped_path("study", path) or path
    doc = _read(path)
    if doc is None:
        doc = {}
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{path}: a study config must be a mapping of keys, got {type(doc).__name__}")
    for item in overrides:
        key, sep, _ = str(item).partition("=")
        key = key.split(".")[0].strip()
        if sep and key and key not in FIELDS:
            raise ConfigError(f"{path.name}: unknown key {key!r} in study config{closest(key, FIELDS)} "
                              f"(from --set {item})")
    doc = apply_overrides(doc, overrides)
    doc.setdefault("name", path.stem)
    return StudyConfig.from_dict(doc, base_dir=path.parent, label=path.name)


def _plain_text(raw: str) -> bool:
    """Whether a ``--set`` value is meant as text although YAML could read a mapping into it: it is not
    written as a flow mapping (``{...}``) and none of its colons is followed by a space (``a: 1``)."""
    text = raw.strip()
    return bool(text) and not text.startswith(("{", "[", "'", '"')) and ": " not in text and "\n" not in text


def apply_overrides(doc: Mapping[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``doc`` with each ``key.sub=value`` applied; values are parsed as YAML.

    Missing mappings on the way are created, and a non-mapping on the way (``scheduler: none`` under
    ``--set scheduler.asha.grace_period=2``) is replaced: whether the result is allowed is for the
    schema that validates the document to say.
    """
    out = copy.deepcopy(dict(doc))
    for item in overrides:
        key, sep, raw = str(item).partition("=")
        parts = [p.strip() for p in key.split(".")]
        if not sep or not all(parts):
            raise ConfigError(f"--set expects key.sub=value, got {show(item)}")
        try:
            value = load_yaml(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            if _plain_text(raw):  # a URL such as sqlite:///:memory: is text, whatever YAML makes of it
                value = raw.strip()
            else:
                problem = " ".join(str(getattr(exc, "problem", None) or exc).split())  # PyYAML's text spans lines
                raise ConfigError(f"--set {show(item)}: the value is not valid YAML: {problem}") from None
        if isinstance(value, dict) and _plain_text(raw):
            value = raw.strip()  # 'sqlite:///:memory:' or 'host:6379' read as a one-key mapping: the user meant text
        node = out
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = dict(node[part]) if isinstance(node.get(part), Mapping) else {}
            node = node[part]
        node[parts[-1]] = value
    return out


class _Validator(Validator):
    """Turns a document into a :class:`StudyConfig`; every message starts with the config's name."""

    def build(self, raw: Mapping[str, Any]) -> StudyConfig:
        doc = self.mapping("study config", raw, FIELDS)
        for key in ("space", "data", "objectives"):
            if doc.get(key) is None:
                raise self.error(f"{key} is missing")
        name = doc.get("name")
        if not isinstance(name, str) or not NAME.match(name):
            raise self.error(f"name must be ASCII letters (a-z, A-Z), digits, '_', '.' or '-', starting with a letter "
                             f"or digit (it names a directory), got {show(name)}")
        from nas.mixers import load_plugins, parse_plugin_list

        plugins = parse_plugin_list(f"{self.label}: plugins", doc.get("plugins"), error=ConfigError)
        load_plugins(plugins, where=self.label, error=ConfigError)  # before the space that may name their mixers
        objectives = self.objectives(doc["objectives"])
        budget = self.budget(doc.get("budget"))
        default_sampler = "nsga2" if len(objectives) > 1 else "tpe"
        return StudyConfig(
            name=name, space=self.space(doc["space"]), data=self.data(doc["data"]), objectives=objectives,
            budget=budget, constraints=self.constraints(doc.get("constraints")),
            sampler=self.choice("sampler", doc.get("sampler") or default_sampler, SAMPLERS),
            n_trials=self.number("n_trials", doc.get("n_trials", 24), minimum=1, strict=False, integer=True),
            seed=self.number("seed", doc.get("seed", 0), minimum=0, strict=False, integer=True, maximum=SEED_MAX),
            resources=self.resources(doc.get("resources")),
            max_concurrent=self.number("max_concurrent", doc.get("max_concurrent", 1), minimum=1, strict=False,
                                       integer=True),
            scheduler=self.scheduler(doc.get("scheduler"), objectives, budget),
            storage=self.storage(doc.get("storage")), ray_address=self.ray_address(doc.get("ray_address")),
            keep_checkpoints=self.choice("keep_checkpoints", doc.get("keep_checkpoints") or "none", KEEP_CHECKPOINTS),
            reference_presets=self.presets(doc.get("reference_presets")),
            prescreen=self.prescreen(doc.get("prescreen")),
            retry_failed=self.flag("retry_failed", doc.get("retry_failed", False)),
            **self.heartbeat(doc.get("heartbeat_interval", 5.0), doc.get("grace_period", 30.0)),
            storage_path=self.storage_path(doc.get("storage_path")), plugins=plugins,
            logging=parse_tracking(doc.get("logging"), self.error),
            n_trials_counts=self.choice("n_trials_counts", doc.get("n_trials_counts") or "trainings", COUNTINGS),
            strategy=self.strategy(doc.get("strategy"), objectives, budget, doc.get("scheduler"), doc.get("prescreen")),
        )

    # -- fields ------------------------------------------------------------------------------------
    def space(self, value: Any) -> str:
        if not isinstance(value, (str, Path)) or not str(value).strip():
            raise self.error(f"space must be the path of a search-space file, got {show(value)}")
        from nas.configs import shipped, shipped_path

        path = Path(value).expanduser()
        candidates = [path] if path.is_absolute() else [(self.base_dir or Path.cwd()) / path, Path.cwd() / path]
        found = next((p for p in candidates if p.is_file()), None) or shipped_path("space", str(value))
        if found is None:
            tried = " or ".join(str(p) for p in dict.fromkeys(candidates))
            raise self.error(f"space: search-space file {show(str(value))} not found (looked at {tried}) and no "
                             f"shipped space of that name; shipped: {', '.join(shipped('space'))}")
        from nas.search.space import load_space

        load_space(found)  # a bad space fails now, not when the first trial starts
        return str(found.resolve())

    def objectives(self, value: Any) -> dict[str, str]:
        if isinstance(value, (list, tuple)):  # names only: each takes its natural direction
            for name in value:
                self.choice("objective", name, tuple(OBJECTIVES))
            value = {name: OBJECTIVES[name] for name in value}
        doc = self.mapping("objectives", value, tuple(OBJECTIVES), "objective")
        if not doc:
            raise self.error(f"objectives is empty; give at least one of {', '.join(OBJECTIVES)}")
        return {k: self.choice(f"objectives.{k}", v, DIRECTIONS) for k, v in doc.items()}

    def constraints(self, value: Any) -> dict[str, float]:
        doc = self.mapping("constraints", value, CONSTRAINTS, "constraint")
        return {k: self.number(f"constraints.{k}", v, minimum=0, strict=True) for k, v in doc.items() if v is not None}

    def scheduler(self, value: Any, objectives: dict[str, str], budget: dict[str, Any]) -> dict[str, Any] | None:
        if value is None or value == "none":
            return None
        if isinstance(value, str):
            value = {self.choice("scheduler", value, SCHEDULERS): None}
        doc = self.mapping("scheduler", value, SCHEDULERS, "scheduler")
        if len(doc) != 1:
            raise self.error(f"scheduler must name one scheduler, got {sorted(doc)}")
        kind, settings = next(iter(doc.items()))
        if kind == "none":
            return None
        defaults = ASHA_DEFAULTS if kind == "asha" else MOASHA_DEFAULTS
        settings = {**defaults, **self.mapping(f"scheduler.{kind}", settings, tuple(defaults))}
        out: dict[str, Any] = {
            "kind": kind,
            "grace_period": self.number(f"scheduler.{kind}.grace_period", settings["grace_period"], minimum=1,
                                        strict=False, integer=True),
            "reduction_factor": self.number(f"scheduler.{kind}.reduction_factor", settings["reduction_factor"],
                                            minimum=1, strict=True)}
        if kind == "moasha":
            out["selection"] = self.choice("scheduler.moasha.selection", settings["selection"], MOASHA_SELECTIONS)
            out["startup_trials"] = self.number("scheduler.moasha.startup_trials", settings["startup_trials"],
                                                minimum=0, strict=False, integer=True, cap=1_000_000)
        if not any(k in TRAINING_OBJECTIVES for k in objectives):
            raise self.error(f"scheduler {kind} stops trials by a training metric, but the objectives "
                             f"({', '.join(objectives)}) include none of {', '.join(TRAINING_OBJECTIVES)}")
        epochs = budget.get("epochs")
        if isinstance(epochs, int) and out["grace_period"] > epochs:
            raise self.error(f"scheduler.{kind}.grace_period {out['grace_period']} exceeds budget.epochs {epochs}")
        return out

    def storage(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not _URL.match(value):
            raise self.error(f"storage must be null (an SQLite file in the study directory) or an SQLAlchemy URL "
                             f"such as sqlite:///study.db or postgresql://user@host/db, got {show(value)}")
        if value.startswith("sqlite") and (":memory:" in value or value.rstrip("/") in ("sqlite:", "sqlite:/")):
            raise self.error(f"storage {show(value)} is an in-memory database: it keeps nothing once the driver ends, "
                             f"so the study could never be resumed or read; leave storage out (a file in the study "
                             f"directory) or give a file, e.g. sqlite:///study.db")
        return value

    def prescreen(self, value: Any) -> dict[str, Any] | None:
        if value is None or value == "none":
            return None
        doc = self.mapping("prescreen", value, PRESCREEN_FIELDS)
        if "proxy" not in doc:
            raise self.error(f"prescreen.proxy is missing; give one of {', '.join(PROXIES)}")
        proxy = self.choice("prescreen.proxy", doc["proxy"], tuple(PROXIES))
        keep = self.number("prescreen.keep", doc.get("keep", 0.25), minimum=0, strict=True)
        if keep > 1:
            raise self.error(f"prescreen.keep is the fraction of sampled candidates that is trained, in (0, 1]; "
                             f"got {keep:g}")
        return {"proxy": proxy, "keep": keep}

    def heartbeat(self, interval: Any, grace: Any) -> dict[str, float]:
        out = {"heartbeat_interval": self.number("heartbeat_interval", interval, minimum=1, strict=False, cap=3600),
               "grace_period": self.number("grace_period", grace, minimum=0, strict=True, cap=7 * 86400)}
        if out["grace_period"] <= out["heartbeat_interval"]:
            raise self.error(f"grace_period ({out['grace_period']:g} s) must exceed heartbeat_interval "
                             f"({out['heartbeat_interval']:g} s), or live trials would be taken for dead ones")
        return out

    def strategy(self, value: Any, objectives: dict[str, str], budget: dict[str, Any], scheduler: Any,
                 prescreen: Any) -> Any:
        """multi_trial (None) or a one-shot study's settings (nas.supernet.config)."""
        if value is None or value == "multi_trial":
            return None
        from nas.supernet.config import parse_strategy

        strategy = parse_strategy(self.label, value, objectives=objectives, budget=budget)
        if strategy is not None:
            for key, setting in (("scheduler", scheduler), ("prescreen", prescreen)):
                if setting not in (None, "none"):
                    raise self.error(f"{key} applies to multi-trial studies; a one-shot study scores every "
                                     f"architecture with inherited weights (remove {key} or the strategy)")
        return strategy

    def storage_path(self, value: Any) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"storage_path must be a shared folder or a URI such as s3://bucket/nas, got {show(value)}")
        if _URL.match(value):
            return value
        path = Path(value).expanduser()
        return str(path if path.is_absolute() else ((self.base_dir or Path.cwd()) / path).resolve())

    def presets(self, value: Any) -> tuple[str, ...]:
        if value is not None and not isinstance(value, (str, list, tuple)):
            raise self.error(f"reference_presets must be a list of preset names, got {show(value)}")
        names = [value] if isinstance(value, str) else list(value or [])
        from nas.genome.presets import PRESETS

        for name in names:
            if not isinstance(name, str) or name not in PRESETS:
                raise self.error(f"reference_presets: unknown preset {show(name)}{closest(str(name), PRESETS)}; "
                                 f"see `nas presets`")
        return tuple(names)
