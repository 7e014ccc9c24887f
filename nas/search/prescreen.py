"""Zero-cost pre-screening: train only the most promising of several sampled architectures.

With ``prescreen: {proxy: naswot, keep: 0.25}`` each trial slot asks the sampler for ``1/keep``
candidates (4 here), checks each against the cost constraints, scores the feasible ones with the proxy
at initialisation on one fixed batch of the study's data, and hands only the best to Ray Tune (an
architecture the study has not trained yet before one it has: a repeat would only be reused). The
others are told to Optuna at once, without training: PRUNED with ``status: prescreened``, their genome,
key, cost and proxy scores, and the ``sampler_values`` / ``sampler_violation`` attributes through which
the sampler still learns from them (training objectives at their worst value, costs and proxies real;
a violation of 1, plus the relative excess over a violated limit, ranks them below every trained
trial). They do not count against ``n_trials`` (:func:`nas.search.storage.finished_count`).

Zero-cost proxies: Mellor et al. 2021 (NASWOT), Tanaka et al. 2020 (synflow), Abdelfattah et al. 2021
(grad_norm, snip; and the idea of using them to pre-screen a search's candidates).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.genome import parse_genome

__all__ = ["Prescreener", "Candidate", "make_prescreener", "sampler_feedback", "UNMEASURED_LOSS", "PROXY_PREFIX"]

PROXY_PREFIX = "proxy_"
UNMEASURED_LOSS = 1.0e3  # a loss never measured, when the study has no finite loss to borrow yet
_MAXIMIZED_TRAINING = ("val_acc", "train_acc")


@dataclass
class Candidate:
    """One sampled architecture awaiting the screen's verdict."""

    trial: optuna.trial.Trial
    genome: Any
    cost: dict[str, Any]
    violations: dict[str, float] = field(default_factory=dict)
    excess: float = 0.0  # relative excess over the tightest violated limit; 0 when feasible
    scores: dict[str, float] = field(default_factory=dict)  # proxy name -> score
    error: str | None = None  # why the proxies could not be computed
    proxy_name: str = ""  # the screening proxy

    @property
    def ranked(self) -> bool:
        """Whether the screening proxy gave a finite score (else the candidate ranks below all scored ones)."""
        return math.isfinite(self.scores.get(self.proxy_name, math.nan))


def sampler_feedback(objectives: Mapping[str, str], values: Mapping[str, Any], study: optuna.Study | None,
                     violation: float) -> dict[str, Any]:
    """``sampler_values`` (objective order) and ``sampler_violation`` for a trial that was never trained.

    Costs and proxies are taken from ``values``; training objectives get the worst value of their
    direction: accuracy 0, a loss the largest finite value any COMPLETE trial of ``study`` reached
    (or :data:`UNMEASURED_LOSS` when there is none yet).
    """
    out: list[float] = []
    for i, (name, direction) in enumerate(objectives.items()):
        if name in values and values[name] is not None:
            out.append(float(values[name]))
        elif name in _MAXIMIZED_TRAINING or direction == "maximize":
            out.append(0.0)
        else:
            seen = [t.values[i] for t in (study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                                          if study is not None else []) if t.values and math.isfinite(t.values[i])]
            out.append(max(seen) if seen else UNMEASURED_LOSS)
    return {"sampler_values": out, "sampler_violation": float(violation)}


class Prescreener:
    """Picks one trial per slot among ``candidates`` sampled ones (see the module docstring).

    ``cost(genome) -> {flops, params[, latency_ms]}`` is the trial objective's own (cached) cost, so the
    driver and the trials agree; ``data`` is the study's dataset, from which one fixed batch is drawn.
    """

    def __init__(self, *, proxy: str, keep: float, objectives: Mapping[str, str], constraints: Mapping[str, float],
                 cost: Callable[[Any], dict[str, Any]], data: Any, seed: int, batch_size: int) -> None:
        from nas.proxy import get_proxy

        get_proxy(proxy)
        self.proxy, self.keep = proxy, float(keep)
        self.candidates = max(1, math.ceil(1.0 / self.keep - 1e-9))
        self.objectives, self.constraints = dict(objectives), dict(constraints)
        self.cost, self.data, self.seed, self.batch_size = cost, data, int(seed), int(batch_size)
        wanted = [n.removeprefix(PROXY_PREFIX) for n in self.objectives if n.startswith(PROXY_PREFIX)]
        self.proxies = list(dict.fromkeys([proxy, *wanted]))  # scored for every candidate
        self._batches: dict[int, Any] = {}
        self.screened = 0  # candidates recorded without training by this screener

    def batch(self, image_size: int) -> Any:
        from nas.proxy import proxy_batch

        if image_size not in self._batches:  # one fixed batch: every candidate is scored on the same images
            self._batches[image_size] = proxy_batch(self.data, self.batch_size, seed=self.seed, image_size=image_size)
        return self._batches[image_size]

    def pick(self, study: optuna.Study, suggest_genome: Callable[[Any], dict[str, Any]]) -> optuna.trial.Trial:
        """Ask, screen and return the trial to train; the others are recorded as prescreened."""
        first = study.ask()
        if first.user_attrs.get("key"):  # re-queued after an interruption: it was chosen already
            return first
        candidates = [self.assess(first, suggest_genome)]
        for _ in range(self.candidates - 1):
            candidates.append(self.assess(study.ask(), suggest_genome))
        feasible = [c for c in candidates if not c.violations]
        mine = {c.trial.number for c in candidates}
        seen = {t.user_attrs.get("key") for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                TrialState.RUNNING)) if t.number not in mine}  # trained or being trained: nothing new to learn
        if feasible:  # an unseen architecture first, then the proxy; ties: the first sampled
            best = max(feasible, key=lambda c: (c.genome.key not in seen, c.ranked,
                                                c.scores[self.proxy] if c.ranked else 0.0))
        else:  # nothing feasible: the least violating one runs (and is recorded infeasible, as usual)
            best = min(candidates, key=lambda c: c.excess)
        for cand in candidates:
            if cand is not best:
                self.record(study, cand, best)
        best.trial.set_user_attr("prescreen", {"proxy": self.proxy, "candidates": len(candidates),
                                               "screened_out": [c.trial.number for c in candidates if c is not best]})
        return best.trial

    def assess(self, trial: optuna.trial.Trial, suggest_genome: Callable[[Any], dict[str, Any]]) -> Candidate:
        from nas.proxy import score_all

        doc = suggest_genome(trial)
        genome = parse_genome(doc)
        trial.set_user_attr("genome", doc)
        trial.set_user_attr("key", genome.key)
        cost = self.cost(genome)
        violations = {k: cost[k] for k, limit in self.constraints.items() if cost.get(k, 0) > float(limit)}
        excess = max(((cost[k] - float(self.constraints[k])) / float(self.constraints[k]) for k in violations),
                      default=0.0)
        cand = Candidate(trial, genome, cost, violations, excess, proxy_name=self.proxy)
        try:
            cand.scores = score_all(self.proxies, genome, self.batch(genome.image_size), seed=self.seed)
        except Exception as exc:  # noqa: BLE001 - one odd network must not stop the study's driver
            cand.error = f"{type(exc).__name__}: {exc}"
            trial.set_user_attr("proxy_error", cand.error)
        for name, value in cand.scores.items():
            trial.set_user_attr(PROXY_PREFIX + name, value)
        return cand

    def record(self, study: optuna.Study, cand: Candidate, best: Candidate) -> None:
        """Tell Optuna about a candidate that will not be trained (PRUNED, ``status: prescreened``)."""
        attrs: dict[str, Any] = {**cand.cost, "status": "prescreened", "prescreened_by": best.trial.number}
        if cand.violations:
            attrs["violations"] = cand.violations
        values = {**cand.cost, **{PROXY_PREFIX + k: v for k, v in cand.scores.items() if math.isfinite(v)}}
        attrs.update(sampler_feedback(self.objectives, values, study, 1.0 + cand.excess))
        for name, value in attrs.items():
            cand.trial.set_user_attr(name, value)
        study.tell(cand.trial, state=TrialState.PRUNED)
        self.screened += 1


def make_prescreener(config: Any, ctx: Any, data: Any) -> Prescreener | None:
    """The study's :class:`Prescreener` (None without ``prescreen``), costing candidates exactly as the
    trials do (the study's cost cache; latency on the trials' device)."""
    if not config.prescreen:
        return None
    from nas.proxy import DEFAULT_BATCH
    from nas.runtime import pick_device
    from nas.search.objective import _cost
    from nas.train import TrainConfig

    device = str(pick_device(TrainConfig.from_dict(dict(config.budget)).device))
    return Prescreener(
        proxy=config.prescreen["proxy"], keep=config.prescreen["keep"], objectives=config.objectives,
        constraints=config.constraints, cost=lambda genome: _cost(genome, ctx, device), data=data,
        seed=config.seed, batch_size=DEFAULT_BATCH,
    )
