"""``nas study report``: the report folder of a stored study, and ``nas.load_study``."""
from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState, create_trial

import nas
from nas.analysis.pareto import HV_ATTR
from nas.analysis.report import plot_axes, write_report
from nas.cli.main import main
from nas.search.config import StudyConfig
from nas.search.runner import prepare_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = Path(__file__).resolve().parents[1] / "nas" / "configs" / "search_spaces" / "vit_family.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


def make_study_dir(path: Path, tiny_genome, objectives: dict[str, str], constraints=None, refs=None) -> Path:
    """A study directory as ``nas study run`` leaves it: study.yaml, study.db with trials, references.json."""
    config = StudyConfig.from_dict({"name": "demo", "space": str(SPACE), "data": "mnist5k", "objectives": objectives,
                                    "constraints": constraints or {}, "n_trials": 8})
    study = prepare_study(config, path)
    layouts = ["A", "S", "C", "S-A", "C-A", "A", "S"]
    for i, layout in enumerate(layouts):
        genome = tiny_genome(layout=layout, dims=16 + 8 * i).to_dict()
        attrs = {"genome": genome, "key": f"k{i}", "params": 1000 * (i + 1), "flops": 10_000 * 3 ** i,
                 "flops_unit": "MACs", "val_acc": 0.2 + 0.1 * i - (0.25 if i == 3 else 0), "train_loss": 2.0 - 0.1 * i,
                 "status": "complete"}
        values = [attrs[k] for k in objectives]
        study.add_trial(create_trial(values=values, user_attrs=attrs))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "status": "infeasible", "infeasible": True, "flops": 9_000_000, "params": 50_000}))
    study.add_trial(create_trial(state=TrialState.PRUNED, user_attrs={
        "status": "pruned", "flops": 50_000, "params": 2_000, "val_acc": 0.3, "epoch_reached": 1}))
    study.add_trial(create_trial(state=TrialState.FAIL, user_attrs={"status": "failed", "error": "RuntimeError: x"}))
    if refs:
        (path / "references.json").write_text(json.dumps(refs))
    return path


def test_report_files(tmp_path: Path, tiny_genome, capsys) -> None:
    refs = {"vit_cifar": {"status": "complete", "val_acc": 0.55, "flops": 400_000, "params": 9_000, "layout": "A"}}
    study_dir = make_study_dir(tmp_path / "study", tiny_genome, {"val_acc": "maximize", "flops": "minimize"},
                               {"flops": 5e6}, refs)
    assert main(["study", "report", str(study_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    folder = study_dir / "report"
    assert out["dir"] == str(folder)
    for name in ("pareto.png", "hypervolume.png"):
        data = (folder / name).read_bytes()
        assert data.startswith(PNG) and len(data) > 10_000
    page = (folder / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 2 and "<img" in page
    assert "vit_cifar" in page and "Pareto front" in page and "Hypervolume" in page
    markdown = (folder / "trials.md").read_text()
    assert "| number | state |" in markdown and "## Pareto front" in markdown
    csv = (folder / "trials.csv").read_text().splitlines()
    assert len(csv) == 1 + 10 and "pareto" in csv[0]
    hv = out["hypervolume"]
    assert hv["reference"] == {"val_acc": 0.0, "flops": 5e6} and 0 < hv["fraction"] < 1
    assert optuna.load_study(study_name="demo", storage=f"sqlite:///{study_dir / 'study.db'}").user_attrs[HV_ATTR] \
        == hv["reference"]  # fixed with the study at first computation


def test_status_json_has_the_hypervolume(tmp_path: Path, tiny_genome, capsys) -> None:
    study_dir = make_study_dir(tmp_path / "s", tiny_genome, {"val_acc": "maximize", "flops": "minimize"})
    assert main(["study", "status", str(study_dir), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["hypervolume"] > 0 and set(status["hv_reference"]) == {"val_acc", "flops"}


def test_report_three_objectives_and_custom_folder(tmp_path: Path, tiny_genome) -> None:
    objectives = {"val_acc": "maximize", "flops": "minimize", "params": "minimize"}
    study_dir = make_study_dir(tmp_path / "s3", tiny_genome, objectives)
    result = write_report(study_dir, tmp_path / "elsewhere")
    assert result.dir == tmp_path / "elsewhere" and result.files["pareto"].read_bytes().startswith(PNG)
    assert plot_axes(objectives)[:2] == ("flops", "val_acc") and "first two of 3" in plot_axes(objectives)[2]


def test_plot_axes_put_cost_on_x() -> None:
    assert plot_axes({"flops": "minimize", "val_acc": "maximize"})[:2] == ("flops", "val_acc")
    assert plot_axes({"val_acc": "maximize", "latency_ms": "minimize"})[:2] == ("latency_ms", "val_acc")
    assert plot_axes({"val_acc": "maximize"})[:2] == ("flops", "val_acc")


def test_load_study_dataframe(tmp_path: Path, tiny_genome) -> None:
    study_dir = make_study_dir(tmp_path / "s", tiny_genome, {"val_acc": "maximize", "flops": "minimize"})
    frame = nas.load_study(study_dir)
    assert len(frame) == 10 and list(frame["number"]) == list(range(10))
    assert frame.attrs["objectives"] == {"val_acc": "maximize", "flops": "minimize"}
    assert set(frame[frame["pareto"]]["number"]) == {0, 1, 2, 4, 5, 6}  # trial 3 costs more than 2 for less
    study = optuna.load_study(study_name="demo", storage=f"sqlite:///{study_dir / 'study.db'}")
    assert set(frame[frame["pareto"]]["number"]) == {t.number for t in study.best_trials}
    assert {"layout", "params", "flops", "val_acc", "s0.mixer", "state"} <= set(frame.columns)


def test_not_a_study_directory(tmp_path: Path, capsys) -> None:
    assert main(["study", "report", str(tmp_path)]) == 2
    assert "is not a study directory" in capsys.readouterr().err


@pytest.fixture(autouse=True)
def _agg_backend(monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
