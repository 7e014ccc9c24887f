"""Confirmation of a study: candidates, a real retraining through Ray Tune, kill -9 and resume, export."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
import yaml
from conftest import TINY_SPACE
from scipy import stats as sp

from nas.confirm.candidates import choose, rank_candidates
from nas.errors import ConfigError

SPACE = TINY_SPACE
STUDY = {"name": "t", "space": "space.yaml", "data": "synthetic",
         "budget": {"epochs": 1, "batch_size": 32, "subset": 128, "val_subset": 128, "lr": 3e-3},
         "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": 4, "seed": 0, "max_concurrent": 2,
         "sampler": "random"}
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas.cli.main", *args], env=ENV, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory: pytest.TempPathFactory, ray_session: None) -> Path:
    """A tiny study (4 trials, 1 epoch) trained for real, once for the module."""
    from nas.search.config import StudyConfig
    from nas.search.runner import run_study

    root = tmp_path_factory.mktemp("confirm")
    (root / "space.yaml").write_text(yaml.safe_dump(SPACE))
    run_study(StudyConfig.from_dict(STUDY, base_dir=root), root / "study", quiet=True)
    return root / "study"


# -- candidates -------------------------------------------------------------------------------------
class _View:
    """What candidate selection reads of a study: objectives, name, dir and COMPLETE trials."""

    def __init__(self, points: list[tuple[float, float]], **attrs: dict[int, dict[str, Any]]) -> None:
        self.objectives = {"val_acc": "maximize", "flops": "minimize"}
        self.name, self.dir = "fake", Path("/nowhere")
        study = optuna.create_study(directions=["maximize", "minimize"])
        for i, values in enumerate(points):
            extra = attrs.get("extra", {}).get(i, {})
            genome = {"stages": [{"mixer": "shift", "depth": 1, "dim": 16 + i}]}
            study.add_trial(optuna.trial.create_trial(values=list(values), user_attrs={
                "genome": genome, "key": extra.pop("key", f"k{i}"), **extra}))
        self._study = study

    def trials(self, *states: Any) -> list[Any]:
        return self._study.get_trials(states=states or None)


def test_candidates_are_the_front_then_the_next_by_rank_and_crowding() -> None:
    points = [(0.9, 10), (0.8, 5), (0.7, 2),  # front
              (0.85, 12), (0.6, 3), (0.75, 6),  # rank 1: (0.85,12) and (0.6,3) are its extremes
              (0.5, 20),  # rank 2
              (0.9, 10), (0.95, 50)]  # a reuse of trial 0 (skipped) and a second key of the same values
    view = _View(points, extra={7: {"reused_from": 0, "key": "k0"}, 8: {"key": "k0"}})
    ranked = rank_candidates(view)
    # Within a rank the extremes (infinite crowding distance) come first; 8 repeats k0: the first trial counts.
    assert [c.number for c in ranked] == [0, 2, 1, 3, 4, 5, 6]
    assert [c.rank for c in ranked] == [0, 0, 0, 1, 1, 1, 2]
    assert math.isinf(ranked[3].crowding) and ranked[5].crowding < math.inf  # extremes first within a rank
    assert [c.number for c in choose(view)] == [0, 2, 1, 3, 4, 5, 6]  # default: up to 8 in all
    assert [c.number for c in choose(view, top=1)] == [0, 2, 1, 3]
    assert [c.number for c in choose(view, top=0)] == [0, 2, 1]
    assert ranked[0].name == "#0 S" and ranked[0].on_front and not ranked[3].on_front
    with pytest.raises(ConfigError, match="has 1 finished architecture"):
        choose(_View([(0.9, 10)]))
    with pytest.raises(ConfigError, match="--top must be a whole number >= 0"):
        choose(view, top=-1)


# -- end to end -------------------------------------------------------------------------------------
def test_confirm_retrains_and_reports_the_evidence(study_dir: Path) -> None:
    from nas.analysis.study import open_study
    from nas.confirm import confirm_study
    from nas.pareto import hv_reference, hypervolume

    result = confirm_study(study_dir, epochs=2, seeds=[0, 1], quiet=True)
    conf = result.confirmation
    archs = conf.architectures
    assert result.missing == 0 and result.ran == 2 * len(archs) and len(archs) >= 2
    assert conf.budget["epochs"] == 2 and conf.study_budget["epochs"] == 1 and conf.seeds == (0, 1)
    cells = [json.loads(line) for line in (study_dir / "confirm" / "cells.jsonl").read_text().splitlines()]
    assert all(c["epochs"] == 2 and c["status"] == "complete" for c in cells)  # trained at the longer budget
    for a in archs:  # the confirmed statistics are the cells' own, per architecture
        accs = [c["val_acc"] for c in cells if c["variant"] == a.candidate.name]
        ci = sp.ttest_1samp(accs, 0).confidence_interval(0.95) if np.std(accs) else (np.mean(accs),) * 2
        s = a.confirmed["val_acc"]
        assert a.n_seeds == 2 and s.mean == pytest.approx(np.mean(accs))
        assert s.std == pytest.approx(np.std(accs, ddof=1))
        assert (s.ci_low, s.ci_high) == pytest.approx(tuple(ci))
        assert a.confirmed["flops"].std == 0 and a.confirmed["flops"].mean == a.candidate.values["flops"]
    corr = conf.correlations["val_acc"]["all"]
    study_acc = [a.candidate.values["val_acc"] for a in archs]
    mean_acc = [a.confirmed["val_acc"].mean for a in archs]
    if len(archs) >= 3:
        assert corr.kendall_tau == pytest.approx(sp.kendalltau(study_acc, mean_acc).statistic, nan_ok=True)
        assert corr.spearman_rho == pytest.approx(sp.spearmanr(study_acc, mean_acc).statistic, nan_ok=True)
    assert "flops" not in conf.correlations  # counted, not trained: nothing to correlate
    means = [[a.confirmed[o].mean for o in conf.objectives] for a in archs]
    from nas.pareto import pareto_mask

    assert [a.confirmed_front for a in archs] == list(pareto_mask(means, ["maximize", "minimize"]))
    view = open_study(study_dir)
    reference = hv_reference(view.study, view.objectives, view.config.constraints, store=False)
    assert conf.hypervolume["reference"] == reference
    assert conf.hypervolume["confirmed"] == pytest.approx(hypervolume(means, ["maximize", "minimize"],
                                                                      list(reference.values())))
    files = result.files
    assert {p.name for p in files.values()} == {"confirm.md", "confirm.csv", "confirm.png", "confirm.json"}
    text = files["md"].read_text()
    assert "## Rank agreement" in text and "Confirmed front" in text and archs[0].candidate.name in text
    assert files["png"].stat().st_size > 10_000
    # The study itself is untouched: same trials, no file of the confirmation outside confirm/.
    assert all(not (study_dir / f).exists() for f in ("cells.jsonl", "confirm.md"))

    # Export from the confirmed front, with the confirmed metrics in the metadata.
    out = study_dir.parent / "best.yaml"
    done = cli("export", str(study_dir), "--pick", "knee", "--confirmed", "--out", str(out), "--verify")
    assert done.returncode == 0, done.stderr
    meta = yaml.safe_load(out.read_text())["metadata"]
    picked = next(a for a in archs if a.candidate.number == meta["trial"])
    assert picked.confirmed_front and meta["confirmed"]["n_seeds"] == 2 and meta["confirmed"]["budget"]["epochs"] == 2
    assert meta["confirmed"]["metrics"]["val_acc"]["mean"] == pytest.approx(picked.confirmed["val_acc"].mean)
    assert "confirmed over 2 seeds at 2 epochs" in done.stdout
    best = max((a for a in archs if a.confirmed_front), key=lambda a: a.confirmed["val_acc"].mean)
    done = cli("export", str(study_dir), "--pick", "max:val_acc", "--confirmed", "--out", str(out), "--json", "--force")
    assert done.returncode == 0 and json.loads(done.stdout)["trial"] == best.candidate.number

    # The study report shows the confirmation.
    done = cli("study", "report", str(study_dir))
    assert done.returncode == 0, done.stderr
    report = (study_dir / "report" / "trials.md").read_text()
    assert "## Confirmation" in report and "Rank agreement" in report
    assert (study_dir / "report" / "confirm.png").is_file()
    assert "<h2>Confirmation</h2>" in (study_dir / "report" / "report.html").read_text()


def test_kill_9_during_a_confirm_then_rerun_trains_no_cell_twice(study_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "confirm"
    args = ["study", "confirm", str(study_dir), "--epochs", "3", "--seeds", "0", "1", "--out", str(out),
            "--set", "budget.subset=256", "--set", "max_concurrent=1"]
    log = tmp_path / "driver.log"
    with log.open("w") as sink:
        driver = subprocess.Popen([sys.executable, "-m", "nas.cli.main", *args], env=ENV, stdout=sink,
                                  stderr=subprocess.STDOUT)
    cells = out / "cells.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and driver.poll() is None and (not cells.is_file() or not cells.read_text().strip()):
        time.sleep(0.2)
    exited = driver.poll()
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    assert exited is None and cells.is_file(), f"the confirm ended before the kill:\n{log.read_text()[-3000:]}"
    before = {json.loads(line)["cell"]: json.loads(line) for line in cells.read_text().splitlines() if line.strip()}
    assert not (out / "confirm.json").exists()  # killed before the end: no summary yet

    done = cli(*args, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    first = json.loads(done.stdout)
    n_cells = 2 * len(first["architectures"])
    assert first["cells"]["skipped"] >= len(before) and first["cells"]["missing"] == 0
    assert first["cells"]["ran"] + first["cells"]["skipped"] == n_cells
    keys = [json.loads(line)["cell"] for line in cells.read_text().splitlines() if line.strip()]
    assert len(keys) == len(set(keys)) == n_cells  # no cell trained twice
    after = {json.loads(line)["cell"]: json.loads(line) for line in cells.read_text().splitlines()}
    assert all(after[k]["val_acc"] == rec["val_acc"] for k, rec in before.items())  # nothing finished was redone
    table = (out / "confirm.csv").read_text()
    again = cli(*args, "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["cells"] == {"ran": 0, "skipped": n_cells, "missing": 0}
    assert (out / "confirm.csv").read_text() == table  # the same table


def test_bad_confirm_requests_are_one_line_errors(study_dir: Path, tmp_path: Path) -> None:
    for args, message in [
        (["study", "confirm", str(tmp_path / "none")], "is not a study directory"),
        (["study", "confirm", str(study_dir), "--top", "-2"], "--top must be a whole number >= 0"),
        (["study", "confirm", str(study_dir), "--epochs", "0"], "--epochs must be a whole number >= 1"),
        (["study", "confirm", str(study_dir), "--set", "n_trials=3"], "a confirmation may change only budget"),
        (["study", "confirm", str(study_dir), "--set", "budget.lr=-1"], "confirm: budget: lr must be"),
        (["study", "confirm", str(study_dir), "--seeds", "1", "1"], "seeds must be a non-empty list of at most 1,000 distinct"),
        (["export", str(tmp_path / "none"), "--pick", "knee", "--confirmed"], "is not a study directory"),
    ]:
        done = cli(*args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), (args, done.stderr)
        assert message in lines[0], (args, lines[0])
