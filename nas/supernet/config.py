"""The study's ``strategy``: ``multi_trial`` (the default: every architecture trained) or ``one_shot``.

::

    strategy:
      one_shot:
        supernet_epochs: 10       # epochs of supernet training; budget's other fields are its recipe
        sandwich: false           # BigNAS sandwich rule: largest + smallest + random paths each step
        paths_per_step: 1         # uniform random paths per step (SPOS: 1)
        calibration_batches: 8    # training batches that re-estimate batch-norm statistics per subnet
        batch_trials: 64          # trials asked from the sampler, then scored together over the Ray workers
        confirm: true             # retrain the supernet front (+ confirm_top) stand-alone after the search
        confirm_top: null         # architectures beyond the front (null: enough for 8 in all)
        confirm_epochs: null      # null: budget.epochs, the stand-alone budget a multi-trial study trains
        confirm_seeds: [0, 1, 2]

In a one-shot study ``n_trials`` counts architectures *scored* with inherited weights (thousands are
cheap), and ``budget`` is the training recipe both of the supernet (for ``supernet_epochs``) and of the
stand-alone confirmation (for ``confirm_epochs``).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nas.errors import ConfigError, closest
from nas.fields import INT32_MAX, SEED_MAX, flag, integer, show

__all__ = ["OneShotConfig", "STRATEGIES", "parse_strategy", "strategy_doc"]

STRATEGIES = ("multi_trial", "one_shot")
# Budget fields the supernet's trainer does not follow (its length is supernet_epochs, in epochs).
UNSUPPORTED_BUDGET = ("seconds", "rrc_scale_min", "randaugment", "repeated_aug", "ema_decay", "compile")
ONE_SHOT_OBJECTIVES = ("val_acc", "val_loss", "flops", "params")


@dataclass(frozen=True)
class OneShotConfig:
    """A one-shot study's settings (see the module docstring for what each is for)."""

    supernet_epochs: int = 10
    sandwich: bool = False
    paths_per_step: int = 1
    calibration_batches: int = 8
    batch_trials: int = 64
    confirm: bool = True
    confirm_top: int | None = None
    confirm_epochs: int | None = None
    confirm_seeds: tuple[int, ...] = (0, 1, 2)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["confirm_seeds"] = list(self.confirm_seeds)
        return out


FIELDS = tuple(OneShotConfig.__dataclass_fields__)


def _count(label: str, where: str, value: Any, minimum: int) -> int:
    return integer(f"{label}: strategy.one_shot.{where}", value, minimum=minimum, cap=INT32_MAX, text=True,
                   error=ConfigError)


def parse_strategy(label: str, value: Any, *, objectives: Mapping[str, str] | None = None,
                   budget: Mapping[str, Any] | None = None) -> OneShotConfig | None:
    """``None`` for a multi-trial study, else the validated :class:`OneShotConfig` (errors: one line)."""
    if value is None or value == "multi_trial":
        return None
    if value == "one_shot":
        value = {"one_shot": {}}
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(f"{label}: strategy must be multi_trial or {{one_shot: {{...}}}}, got {show(value)}")
    kind, doc = next(iter(value.items()))
    if kind not in STRATEGIES:
        raise ConfigError(f"{label}: unknown strategy {show(kind)}{closest(str(kind), STRATEGIES)}; "
                          f"known: {', '.join(STRATEGIES)}")
    if kind == "multi_trial":
        return None
    doc = {} if doc is None else doc
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{label}: strategy.one_shot must be a mapping of settings, got {show(doc)}")
    for key in doc:
        if key not in FIELDS:
            raise ConfigError(f"{label}: unknown key {show(key)} in strategy.one_shot{closest(str(key), FIELDS)}; "
                              f"known: {', '.join(FIELDS)}")
    d = OneShotConfig()
    seeds = doc.get("confirm_seeds", list(d.confirm_seeds))
    if not isinstance(seeds, (list, tuple)) or not seeds:
        raise ConfigError(f"{label}: strategy.one_shot.confirm_seeds must be a non-empty list of seeds, got {show(seeds)}")
    out = OneShotConfig(
        supernet_epochs=_count(label, "supernet_epochs", doc.get("supernet_epochs", d.supernet_epochs), 1),
        sandwich=flag(f"{label}: strategy.one_shot.sandwich", doc.get("sandwich", d.sandwich), error=ConfigError),
        paths_per_step=_count(label, "paths_per_step", doc.get("paths_per_step", d.paths_per_step), 1),
        calibration_batches=_count(label, "calibration_batches", doc.get("calibration_batches", d.calibration_batches), 0),
        batch_trials=_count(label, "batch_trials", doc.get("batch_trials", d.batch_trials), 1),
        confirm=flag(f"{label}: strategy.one_shot.confirm", doc.get("confirm", d.confirm), error=ConfigError),
        confirm_top=None if doc.get("confirm_top") is None else _count(label, "confirm_top", doc["confirm_top"], 0),
        confirm_epochs=None if doc.get("confirm_epochs") is None else _count(label, "confirm_epochs",
                                                                             doc["confirm_epochs"], 1),
        confirm_seeds=tuple(integer(f"{label}: strategy.one_shot.confirm_seeds", s, minimum=0, cap=SEED_MAX, text=True,
                                    error=ConfigError) for s in seeds),
    )
    for name in objectives or {}:
        if name not in ONE_SHOT_OBJECTIVES:
            raise ConfigError(f"{label}: objective {name!r} cannot be scored with inherited weights; a one-shot "
                              f"study takes {', '.join(ONE_SHOT_OBJECTIVES)}")
    budget = budget or {}
    harmless = {"repeated_aug": 1, "compile": False}  # the trainer's defaults: nothing to follow
    for name in UNSUPPORTED_BUDGET:
        if budget.get(name) is not None and budget.get(name) != harmless.get(name):
            raise ConfigError(f"{label}: budget.{name} is not supported by supernet training (one_shot); "
                              f"remove it (the supernet trains for strategy.one_shot.supernet_epochs epochs)")
    return out


def strategy_doc(strategy: OneShotConfig | None) -> Any:
    """The document spelling of a parsed strategy (``to_dict`` of a study config)."""
    return "multi_trial" if strategy is None else {"one_shot": strategy.to_dict()}
