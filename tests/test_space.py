"""Search spaces: loading, validity of everything they sample, determinism, conditions and errors."""
from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from nas.errors import ConfigError
from nas.mixers import attention_mixers
from nas.search.space import SearchSpace, load_space

ROOT = Path(__file__).resolve().parents[1]
SPACES = ("vit_family", "deepvit", "shiftvit", "coatnet", "metaformer")

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _space(name: str) -> SearchSpace:
    return load_space(ROOT / "search_spaces" / f"{name}.yaml")


def _doc(name: str) -> dict:
    return yaml.safe_load((ROOT / "search_spaces" / f"{name}.yaml").read_text())


def _random_trials(space: SearchSpace, n: int, seed: int = 0) -> list[tuple[optuna.trial.Trial, object]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    out = []
    for _ in range(n):
        trial = study.ask()
        out.append((trial, space.sample(trial)))
    return out


@pytest.mark.parametrize("name", SPACES)
def test_shipped_space_loads(name: str) -> None:
    space = _space(name)
    assert space.name == name
    assert space.distributions()
    first_line = (ROOT / "search_spaces" / f"{name}.yaml").read_text().splitlines()[0]
    assert first_line.startswith(f"# {name}:")


@pytest.mark.parametrize("name", SPACES)
def test_random_trials_give_valid_genomes_covering_every_choice(name: str) -> None:
    space = _space(name)
    layouts, mixers, counts = set(), set(), set()
    for trial, genome in _random_trials(space, 500):
        counts.add(len(genome.stages))
        layouts.add(trial.params.get("layout", space.layout and space.layout.choices[0]))
        mixers.update(s.mixer for s in genome.stages)
        dims = [s.dim for s in genome.stages]
        if "dim_growth" in space.stage:
            assert dims == sorted(dims)
        for stage in genome.stages:
            if stage.mixer in attention_mixers():
                assert stage.dim % stage.heads == 0
        assert set(trial.params) <= set(space.distributions())
    if space.layout is not None:
        assert layouts == set(space.layout.values())
        assert counts == {len(v.split("-")) for v in space.layout.values()}
    else:
        assert counts == set(space.num_stages.values())
    expected = set().union(*(space.mixers_at(i) for i in range(space.max_stages)))
    assert mixers == expected


def test_vit_family_covers_all_mixers_and_stage_counts() -> None:
    space = _space("vit_family")
    assert space.mixers_at(0) == {"attention", "reattention", "shift", "conv"}
    assert set(space.num_stages.values()) == {1, 2, 3, 4}


@pytest.mark.parametrize("sampler", [
    optuna.samplers.RandomSampler(seed=1),
    optuna.samplers.TPESampler(seed=1, n_startup_trials=5),
    optuna.samplers.NSGAIISampler(seed=1, population_size=6),
])
def test_fixed_trial_rebuilds_the_same_genome(sampler: optuna.samplers.BaseSampler) -> None:
    space = _space("vit_family")

    def objective(trial: optuna.trial.Trial) -> tuple[float, float]:
        genome = space.sample(trial)
        trial.set_user_attr("key", genome.key)
        return float(genome.depth), float(sum(s.dim for s in genome.stages))

    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=20)
    for t in study.trials:
        assert space.genome_from_params(t.params).key == t.user_attrs["key"]
        assert space.sample(optuna.trial.FixedTrial(t.params)).key == t.user_attrs["key"]


def test_same_params_same_genome_key_across_loads() -> None:
    trial, genome = _random_trials(_space("coatnet"), 1, seed=3)[0]
    again = _space("coatnet").genome_from_params(dict(trial.params))
    assert again == genome and again.key == genome.key


def test_conditional_params_follow_the_mixers() -> None:
    for trial, genome in _random_trials(_space("vit_family"), 300, seed=2):
        for i, stage in enumerate(genome.stages):
            assert (f"s{i}.heads" in trial.params) == (stage.mixer in attention_mixers())
        used = {s.mixer for s in genome.stages}
        assert ("shift_ratio" in trial.params) == ("shift" in used)
        assert ("expansion" in trial.params) == ("conv" in used)
        assert ("mlp_ratio" in trial.params) == bool(used - {"conv"})
        assert not any(k.startswith(f"s{len(genome.stages)}.") for k in trial.params)


def test_stage_two_shift_has_no_heads_and_tied_values_are_shared() -> None:
    space = _space("vit_family")
    params = {"num_stages": 3, "s0.mixer": "attention", "s0.depth": 1, "s0.dim": 24, "s0.heads": 4,
              "mlp_ratio": 3, "s1.mixer": "reattention", "s1.depth": 2, "s1.dim_growth": 2, "s1.heads": 2,
              "s2.mixer": "shift", "s2.depth": 1, "s2.dim_growth": 1, "shift_ratio": 0.125}
    genome = space.genome_from_params(params)
    assert [s.mixer for s in genome.stages] == ["attention", "reattention", "shift"]
    assert [s.dim for s in genome.stages] == [24, 48, 48]
    assert [s.mlp_ratio for s in genome.stages] == [3.0, 3.0, 3.0]
    assert genome.stages[2].heads is None and genome.stages[2].shift_ratio == 0.125
    with pytest.raises(ConfigError, match=r"stored params 's2.heads' are not parameters"):
        space.genome_from_params({**params, "s2.heads": 2})
    with pytest.raises(ConfigError, match=r"'s2.depth' is not found"):
        space.genome_from_params({k: v for k, v in params.items() if k != "s2.depth"})
    with pytest.raises(ConfigError, match=r"stored param 's0.dim' = 40 is outside"):
        space.genome_from_params({**params, "s0.dim": 40})


def test_per_stage_lists_and_layout_constants() -> None:
    space = _space("shiftvit")
    assert space.max_stages == 4 and space.stage["depth"][2].high == 4 and space.stage["depth"][0].high == 2
    for trial, genome in _random_trials(space, 50):
        assert genome.layout == "S-S-S-S"
        assert [s.dim for s in genome.stages] == [genome.stages[0].dim * 2**i for i in range(4)]
        assert "layout" not in trial.params and "s1.dim_growth" not in trial.params


def test_with_fixed_overrides_data_fields() -> None:
    space = _space("vit_family").with_fixed(in_channels=3, num_classes=100)
    genome = space.sample(optuna.trial.FixedTrial({"num_stages": 1, "s0.mixer": "conv", "s0.depth": 1,
                                                   "s0.dim": 32, "expansion": 2}))
    assert genome.in_channels == 3 and genome.num_classes == 100


def test_importing_nas_search_does_not_import_ray() -> None:
    code = ("import sys, nas.search as s; s.SearchSpace; s.load_space; s.StudyConfig; s.apply_overrides; "
            "s.load_study_config; assert 'ray' not in sys.modules, 'ray imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


# -- bad space files ------------------------------------------------------------------------------
def _set(doc: dict, path: str, value: object) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node.setdefault(p, {})
    if value is _DELETE:
        node.pop(last)
    else:
        node[last] = value
    return doc


_DELETE = object()
BAD = [
    ("stage.depth", {"int": [1, 3], "stepp": 1},
     r"parameter 'stage.depth': unknown key 'stepp'; did you mean 'step'\?"),
    ("stage.dim", {"int": [64, 32]}, r"parameter 'stage.dim': low 64 > high 32"),
    ("stage.heads", {"choices": []}, r"parameter 'stage.heads': choices must be a non-empty list"),
    ("stage.heads", {"chooses": [1, 2]}, r"parameter 'stage.heads': unknown key 'chooses'; did you mean 'choices'\?"),
    ("stage.heads", [1, 2], r"parameter 'stage.heads': a per-stage list needs 4 entries"),
    ("fixed.patch_sise", 4, r"unknown genome field 'patch_sise' in fixed; did you mean 'patch_size'\?"),
    ("fixed.mlp_ratio", 4, r"unknown genome field 'mlp_ratio' in fixed; stage fields belong under stage"),
    ("stage.mixer", {"choices": ["attention", "atention"]},
     r"parameter 'stage.mixer': unknown mixer 'atention'; did you mean 'attention'\?"),
    ("stage.heads", {"choices": [1, 2, 5]},
     r"parameter 'stage.heads': stage 0 \(attention\) can get dim 24 with heads 5"),
    ("num_stages", {"choices": [1, 5]},
     r"num_stages allows 5 stages but the fixed fields do not fit them: image_size 32"),
    ("stage.shift_ratio", {"float": [0.01, 0.25]},
     r"parameter 'stage.shift_ratio': shift_ratio 0.01 of stage 0's narrowest dim 24 shifts no channel"),
    ("stage.heads", {"choices": [1, 2], "when": ["conv"]},
     r"parameter 'stage.heads': when lists conv but heads applies only to attention, reattention"),
    ("stage.expansion", {"choices": [0, 4]}, r"parameter 'stage.expansion': value 0 does not make a valid genome"),
    ("stage.shift_ratio", {"float": [0, 0.25], "log": True}, r"parameter 'stage.shift_ratio': log needs low > 0"),
    ("stage.depth", {"int": [1, 4], "step": 2}, r"high - low \(3\) must be a multiple of step 2"),
    ("stage.dim", {"float": [24, 48]}, r"parameter 'stage.dim': must be whole numbers >= 1"),
    ("stage.depth", _DELETE, r"stage.depth is missing"),
    ("layout", "C-T", r"give exactly one of num_stages"),
    ("fixed.pool", "cls", r"fixed.pool 'cls' needs every network to end on attention, but with 1 stage\(s\)"),
    ("stages", {}, r"unknown key 'stages' in the file; did you mean 'stage'\?"),
    ("global.position", {"choices": ["absolute", "relativ"]}, r"parameter 'global.position': value 'relativ'"),
]


@pytest.mark.parametrize("path,value,message", BAD, ids=[b[0] + ":" + b[2][:30] for b in BAD])
def test_bad_space_names_the_parameter(tmp_path: Path, path: str, value: object, message: str) -> None:
    doc = _set(_doc("vit_family"), path, value)
    if path == "global.position":
        doc["fixed"].pop("position")
    file = tmp_path / "bad.yaml"
    file.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"^search space bad.yaml: .*" + message):
        load_space(file)


def test_bad_layout_and_transformer_mixer() -> None:
    doc = _doc("coatnet")
    with pytest.raises(ConfigError, match=r"parameter 'layout': got 'C-X-T'"):
        load_space({**doc, "layout": {"choices": ["C-X-T"]}})
    with pytest.raises(ConfigError, match=r"parameter 'transformer_mixer': got 'shift'"):
        load_space({**doc, "transformer_mixer": "shift"})
    with pytest.raises(ConfigError, match=r"the layout already fixes each stage's mixer"):
        load_space({**doc, "stage": {**doc["stage"], "mixer": "conv"}})
    space = load_space({**doc, "transformer_mixer": {"choices": ["attention", "reattention"]}})
    trial, genome = _random_trials(space, 1)[0]
    assert ("transformer_mixer" in trial.params) == ("T" in trial.params["layout"])
