"""Pre-screening and proxy objectives: config, the screen's choice and records, and one real study."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from conftest import TINY_SPACE
from optuna.trial import TrialState

from nas.data import load_dataset
from nas.errors import ConfigError
from nas.genome import parse_genome
from nas.proxy import PROXIES, proxy_batch, score
from nas.search.config import OBJECTIVES, StudyConfig
from nas.search.prescreen import UNMEASURED_LOSS, Prescreener, sampler_feedback
from nas.search.space import load_space
from nas.search.storage import finished_count, requeue_interrupted

SPACE = TINY_SPACE
OBJ = {"val_acc": "maximize", "flops": "minimize", "proxy_naswot": "maximize"}


@pytest.fixture(scope="module")
def data():
    return load_dataset("synthetic", seed=0)


def fake_cost(genome: Any) -> dict[str, Any]:
    """16k, 32k or 64k "MACs": dim 32 at depth 2 is over the 40k limit used below (excess 0.6)."""
    return {"flops": 1000 * sum(s.dim * s.depth for s in genome.stages), "params": 10 * genome.stages[0].dim}


def screener(data: Any, *, keep: float = 0.25, constraints: dict[str, float] | None = None,
             objectives: dict[str, str] | None = None) -> Prescreener:
    return Prescreener(proxy="naswot", keep=keep, objectives=objectives or OBJ,
                       constraints={"flops": 40_000} if constraints is None else constraints,
                       cost=fake_cost, data=data, seed=0, batch_size=8)


def suggester() -> Any:
    space = load_space(SPACE)
    return lambda trial: parse_genome(space.suggest(trial), in_channels=3, num_classes=10).to_dict()


def new_study(directions: list[str] | None = None, storage: str | None = None) -> optuna.Study:
    return optuna.create_study(directions=directions or list(OBJ.values()), storage=storage,
                               sampler=optuna.samplers.RandomSampler(seed=0))


def config_doc(tmp_path: Path, **fields: Any) -> dict[str, Any]:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    return {"name": "t", "space": "space.yaml", "data": "synthetic", "objectives": ["val_acc", "flops"], **fields}


def test_config_reads_prescreen_and_proxy_objectives(tmp_path: Path) -> None:
    assert {f"proxy_{n}" for n in PROXIES} <= set(OBJECTIVES)
    doc = config_doc(tmp_path, prescreen={"proxy": "synflow"}, objectives=["val_acc", "proxy_snip"])
    config = StudyConfig.from_dict(doc, base_dir=tmp_path)
    assert config.prescreen == {"proxy": "synflow", "keep": 0.25}
    assert config.objectives == {"val_acc": "maximize", "proxy_snip": "maximize"}
    assert StudyConfig.from_dict(config.to_dict()) == config
    assert StudyConfig.from_dict(config_doc(tmp_path), base_dir=tmp_path).prescreen is None  # old configs load


@pytest.mark.parametrize("value, message", [
    ({"proxy": "naswot", "keep": 0}, "prescreen.keep must be a number > 0, got 0"),
    ({"proxy": "naswot", "keep": 1.5}, r"prescreen.keep is the fraction .* in \(0, 1\]; got 1.5"),
    ({"proxy": "nasswot"}, "prescreen.proxy must be one of naswot, synflow, grad_norm, snip; got 'nasswot'"),
    ({"keep": 0.5}, "prescreen.proxy is missing"),
    ({"proxy": "naswot", "kep": 0.5}, "unknown key 'kep' in prescreen; did you mean 'keep'"),
])
def test_config_rejects_bad_prescreen(tmp_path: Path, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        StudyConfig.from_dict(config_doc(tmp_path, prescreen=value), base_dir=tmp_path)


def test_each_slot_trains_the_best_feasible_candidate_and_records_the_rest(data: Any) -> None:
    study, screen, suggest = new_study(), screener(data), suggester()
    batch = proxy_batch(data, 8, seed=0, image_size=16)
    for slot in range(3):
        chosen = screen.pick(study, suggest)
        trials = study.get_trials(deepcopy=False)
        cands = trials[-4:]  # four candidates per slot at keep 0.25
        assert chosen.number in [t.number for t in cands]
        feasible = [t for t in cands if t.user_attrs["key"] and fake_cost(parse_genome(t.user_attrs["genome"]))
                    ["flops"] <= 40_000]
        for t in cands:  # the driver's score is the proxy of the genome under the study's seed
            assert t.user_attrs["proxy_naswot"] == score("naswot", parse_genome(t.user_attrs["genome"]), batch)
        if feasible:
            assert chosen.user_attrs["proxy_naswot"] == max(t.user_attrs["proxy_naswot"] for t in feasible)
        for t in cands:
            if t.number == chosen.number:
                assert t.state == TrialState.RUNNING and "status" not in t.user_attrs
                continue
            a = t.user_attrs
            cost = fake_cost(parse_genome(a["genome"]))
            assert t.state == TrialState.PRUNED and a["status"] == "prescreened" and a["prescreened_by"] == chosen.number
            assert a["sampler_values"] == [0.0, cost["flops"], a["proxy_naswot"]]
            over = cost["flops"] > 40_000
            assert a["sampler_violation"] == pytest.approx(1.6 if over else 1.0)
            assert ("violations" in a) == over
        study.tell(chosen, [0.5, 1.0, 1.0])
    assert len(study.trials) == 12 and screen.screened == 9
    assert finished_count(study) == 3  # the screened-out candidates do not count against n_trials


def test_with_nothing_feasible_the_least_violating_candidate_runs(data: Any) -> None:
    study = new_study()
    chosen = screener(data, constraints={"flops": 10_000}).pick(study, suggester())
    flops = {t.number: fake_cost(parse_genome(t.user_attrs["genome"]))["flops"] for t in study.trials}
    assert flops[chosen.number] == min(flops.values())


def test_a_requeued_trial_is_run_again_without_screening(data: Any, tmp_path: Path) -> None:
    study, suggest = new_study(storage=f"sqlite:///{tmp_path / 'study.db'}"), suggester()  # as studies store
    first = screener(data).pick(study, suggest)
    requeue_interrupted(study)  # a killed driver left it RUNNING
    again = screener(data).pick(study, suggest)
    assert again.number == first.number and len(study.trials) == 4


def test_keep_one_screens_nothing(data: Any) -> None:
    study = new_study()
    screen = screener(data, keep=1.0)
    screen.pick(study, suggester())
    assert len(study.trials) == 1 and screen.screened == 0


def test_sampler_feedback_borrows_the_worst_loss_seen() -> None:
    objectives = {"val_loss": "minimize", "flops": "minimize"}
    study = new_study(["minimize", "minimize"])
    assert sampler_feedback(objectives, {"flops": 7}, study, 1.0) == {
        "sampler_values": [UNMEASURED_LOSS, 7.0], "sampler_violation": 1.0}
    for loss in (0.5, 2.5):
        study.tell(study.ask(), [loss, 1.0])
    assert sampler_feedback(objectives, {"flops": 7}, study, 1.2)["sampler_values"] == [2.5, 7.0]



def test_study_with_prescreen_and_a_proxy_objective(tmp_path: Path, ray_session: None,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import pandas as pd

    from nas.cli.main import main
    from nas.search.runner import run_study
    from nas.search.storage import load_optuna_study

    doc = config_doc(tmp_path, objectives=OBJ, n_trials=2, sampler="random", max_concurrent=1,
                     budget={"epochs": 1, "batch_size": 32, "subset": 64, "val_subset": 64},
                     prescreen={"proxy": "naswot", "keep": 0.5})
    config = StudyConfig.from_dict(doc, base_dir=tmp_path)
    summary = run_study(config, tmp_path / "out", quiet=True)
    assert summary["states"] == {"COMPLETE": 2, "PRUNED": 2} and summary["prescreened"] == 2
    study = load_optuna_study(tmp_path / "out", "t", None)
    assert finished_count(study) == 2
    for t in study.trials:
        if t.state == TrialState.COMPLETE:  # the trial scored its proxy objective as the driver did
            assert t.values[2] == t.user_attrs["proxy_naswot"]
            assert t.user_attrs["prescreen"]["candidates"] == 2
        else:
            assert t.user_attrs["status"] == "prescreened" and t.user_attrs["sampler_values"][0] == 0.0
    frame = pd.read_csv(tmp_path / "out" / "trials.csv")
    assert sorted(frame["status"]) == ["complete", "complete", "prescreened", "prescreened"]
    assert frame["proxy_naswot"].notna().all()
    assert main(["study", "status", str(tmp_path / "out")]) == 0
    assert "2 screened out by the proxy, never trained, not counted" in capsys.readouterr().out


def test_a_candidate_the_proxy_cannot_score_ranks_last_and_keeps_the_error(
        data: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import nas.proxy

    real = nas.proxy.score_all

    def flaky(names: Any, genome: Any, batch: Any, *, seed: int = 0) -> dict[str, float]:
        if genome.stages[0].mixer != "shift":
            raise RuntimeError("odd network")
        return real(names, genome, batch, seed=seed)

    monkeypatch.setattr(nas.proxy, "score_all", flaky)
    study = new_study()
    chosen = screener(data, keep=0.125, constraints={}).pick(study, suggester())
    mixers = {t.number: t.user_attrs["genome"]["stages"][0]["mixer"] for t in study.trials}
    assert "shift" in mixers.values() and set(mixers.values()) != {"shift"}  # both kinds were sampled
    assert mixers[chosen.number] == "shift"
    failed = [t for t in study.trials if mixers[t.number] != "shift"]
    assert all(t.user_attrs["proxy_error"] == "RuntimeError: odd network" for t in failed)
    assert all(t.user_attrs["sampler_values"][2] == 0.0 for t in failed)  # no score: the direction's worst


def test_an_architecture_already_trained_is_passed_over(data: Any) -> None:
    docs = [parse_genome({"image_size": 16, "num_classes": 10, "patch_size": 4, "layout": layout, "depths": 1,
                          "dims": 16, "heads": 1, "mlp_ratio": 2}).to_dict() for layout in ("A", "S")]
    calls = iter(range(100))
    suggest = lambda trial: docs[next(calls) % 2]  # noqa: E731 - candidates A, S, A, S, ...
    study, screen = new_study(), screener(data, keep=0.5, constraints={})
    first = screen.pick(study, suggest)
    study.tell(first, [0.5, 1.0, 1.0])
    second = screen.pick(study, suggest)  # the same two again: the untrained one runs, whatever its score
    assert {first.user_attrs["key"], second.user_attrs["key"]} == {parse_genome(d).key for d in docs}
