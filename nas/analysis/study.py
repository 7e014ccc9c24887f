"""Opening a finished (or running) study for analysis: its config, its Optuna study, its trials.

Everything here reads the study directory's stored records (``study.yaml`` and the Optuna storage);
no model is built and nothing is trained, so analysing a study costs seconds even for large ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from nas.errors import ConfigError

__all__ = ["StudyView", "open_study", "load_study"]


@dataclass(frozen=True)
class StudyView:
    """A study as analysis sees it: where it lives, its validated config and its Optuna study.

    ``objectives`` and ``directions`` come from the config, in the order Optuna stores the values.
    """

    dir: Path
    config: Any  # nas.search.config.StudyConfig
    study: optuna.Study

    @property
    def name(self) -> str:
        return str(self.config.name)

    @property
    def objectives(self) -> dict[str, str]:
        """Objective name -> ``maximize`` | ``minimize``."""
        return dict(self.config.objectives)

    @property
    def directions(self) -> list[str]:
        return list(self.config.objectives.values())

    def trials(self, *states: TrialState) -> list[FrozenTrial]:
        """Stored trials (all, or those in ``states``), by trial number."""
        return sorted(self.study.get_trials(deepcopy=False, states=states or None), key=lambda t: t.number)

    def trial(self, number: int) -> FrozenTrial:
        for t in self.study.get_trials(deepcopy=False):
            if t.number == number:
                return t
        raise ConfigError(f"study {self.name!r} has no trial {number}")

    def frame(self) -> pd.DataFrame:
        """The trials as a DataFrame (see :func:`trials_table`)."""
        return trials_table(self.study, list(self.objectives))

    def references(self) -> dict[str, dict[str, Any]]:
        """Reference presets trained on the study's data: preset name -> stored result (may be empty)."""
        from nas.search.references import load_references

        return load_references(self.dir)


def trials_table(study: optuna.Study, objectives: list[str]) -> pd.DataFrame:
    """All trials, one row each (:func:`nas.search.records.trials_frame`), plus a boolean ``pareto``.

    ``pareto`` marks the trials of Optuna's non-dominated front (``study.best_trials``) of the
    COMPLETE trials, so a reader of the table or of ``trials.csv`` sees the front without recomputing it.
    """
    from nas.analysis.pareto import front_trials
    from nas.search.records import trials_frame

    frame = trials_frame(study, objectives)
    if frame.empty:
        return frame
    front = {t.number for t in front_trials(study)}
    frame["pareto"] = frame["number"].isin(front)
    frame = frame.sort_values("number").reset_index(drop=True)
    frame.attrs["objectives"] = {name: _direction(d) for name, d in zip(objectives, study.directions)}
    return frame


def _direction(direction: Any) -> str:
    return "maximize" if direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"


def open_study(study_dir: str | Path) -> StudyView:
    """Open the study stored in ``study_dir`` for reading.

    Raises :class:`~nas.errors.ConfigError` when the directory holds no study (no ``study.yaml``)
    or its storage holds no study of that name.
    """
    from nas.search.config import load_study_config
    from nas.search.storage import STUDY_FILE, load_optuna_study

    path = Path(study_dir).expanduser()
    config_file = path / STUDY_FILE
    if not config_file.is_file():
        raise ConfigError(f"{path} is not a study directory (no {STUDY_FILE}); start one with `nas study run CONFIG`")
    config = load_study_config(config_file)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_optuna_study(path, config.name, config.storage)
    return StudyView(dir=path.resolve(), config=config, study=study)


def load_study(study_dir: str | Path) -> pd.DataFrame:
    """The trials of the study in ``study_dir`` as a pandas DataFrame, one row per trial.

    Columns: ``number``, ``state`` (COMPLETE / PRUNED / FAIL ...), ``status``, ``key``, ``layout``,
    the objectives, cost (``params``, ``flops``, ``flops_unit``, ``latency_ms``), metrics
    (``val_acc``, ``train_loss`` ...), ``genome.*`` and ``s<i>.*`` genome fields, ``pareto``.
    ``frame.attrs`` holds ``study`` (name), ``dir`` and ``objectives`` (name -> direction).
    """
    view = open_study(study_dir)
    frame = view.frame()
    frame.attrs.update({"study": view.name, "dir": str(view.dir), "objectives": view.objectives})
    return frame
