"""Property-based fuzzing of every user document: each one is valid or a one-line NasError, never anything else.

Random genome dicts, study configs, ablation configs and ``--set`` strings (1,040 cases), each either
accepted or rejected with :class:`nas.errors.NasError` — no ``TypeError``/``OverflowError`` from deep
inside, no hang (hypothesis' per-case deadline), no multi-line message. Accepted genomes also pass the
size guard or are refused by it, which is what ``nas validate`` runs.

Then the classes that must be refused in every numeric field of every config kind (genome, training
budget, study, ablation, search space): nan, inf, 401-digit integers, booleans, numeric strings that
overflow; numpy scalars read as the numbers they hold; duplicate keys in YAML and JSON; aliases that
expand past the cap (1,000 cases: 2,040 in all).
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nas.ablation.config import AblationConfig
from nas.errors import NasError
from nas.genome import parse_genome
from nas.models.footprint import check_fits
from nas.search.config import StudyConfig, apply_overrides

FUZZ = settings(max_examples=260, deadline=2000, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)

# Values a user might type, hostile ones included: huge, negative, fractional, non-finite, wrong types.
scalars = st.one_of(
    st.integers(-3, 70), st.sampled_from([0, 1, 2, 3, 4, 16, 32, 64, 10**6, 10**9, 2**63, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e9, 1e6, 0.5, 1 / 12, -1.0, 1e308]),
    st.booleans(), st.none(), st.text(max_size=6), st.sampled_from(["1/12", "attention", "conv", "A-C", "cls", "1e9"]),
)
values = st.one_of(scalars, st.lists(scalars, max_size=4), st.dictionaries(st.text(max_size=4), scalars, max_size=2))

STAGE_KEYS = ["mixer", "depth", "dim", "heads", "mlp_ratio", "shift_ratio", "expansion", "se_ratio", "reattn_norm", "bogus"]
GENOME_KEYS = ["image_size", "in_channels", "num_classes", "stem", "patch_size", "patch_norm", "stem_dim",
               "stem_stride", "pool", "position", "downsample", "drop_path", "qkv_bias", "head_hidden", "layout",
               "depths", "dims", "heads", "mlp_ratio", "transformer_mixer", "nonsense"]
BASE_GENOME: dict[str, Any] = {"image_size": 32, "num_classes": 10, "patch_size": 4,
                               "stages": [{"mixer": "attention", "depth": 1, "dim": 64, "heads": 4}]}


def _one_line(exc: NasError) -> None:
    text = str(exc)
    assert text and "\n" not in text, repr(text)


stage_docs = st.fixed_dictionaries({}, optional={k: values for k in STAGE_KEYS})
genome_docs = st.one_of(
    # one field of the genome changed (the common mistake), or a stage field changed
    st.tuples(st.sampled_from(GENOME_KEYS), values).map(lambda kv: {**BASE_GENOME, kv[0]: kv[1]}),
    st.tuples(st.sampled_from(STAGE_KEYS), values).map(
        lambda kv: {**BASE_GENOME, "stages": [{**BASE_GENOME["stages"][0], kv[0]: kv[1]}]}),
    # anything at all
    st.fixed_dictionaries({}, optional={**{k: values for k in GENOME_KEYS}, "stages": st.lists(stage_docs, max_size=3)}),
    values,
)


@FUZZ
@given(doc=genome_docs)
def test_genome_documents_are_valid_or_one_nas_error(doc: Any) -> None:
    try:
        genome = parse_genome(doc)
        check_fits(genome)  # what `nas validate` adds: closed-form, allocates nothing
    except NasError as exc:
        _one_line(exc)


@pytest.fixture(scope="module")
def space_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "space.yaml").write_text(yaml.safe_dump({
        "name": "s", "fixed": {"image_size": 16, "patch_size": 4, "pool": "mean"}, "num_stages": 1,
        "stage": {"mixer": {"choices": ["attention", "conv"]}, "depth": {"int": [1, 2]}, "dim": {"choices": [16, 32]},
                  "heads": {"choices": [1, 2]}},
    }))
    return folder


STUDY: dict[str, Any] = {
    "name": "f", "space": "space.yaml", "data": "synthetic", "budget": {"epochs": 1, "batch_size": 8},
    "objectives": {"val_acc": "maximize", "flops": "minimize"}, "constraints": {"flops": 5e7}, "n_trials": 3,
    "seed": 0, "max_concurrent": 1, "sampler": "random", "resources": {"cpu": 1, "gpu": 0}, "scheduler": "none",
}
STUDY_KEYS = [*STUDY, "storage", "ray_address", "keep_checkpoints", "reference_presets", "unknown_field"]


@FUZZ
@given(key=st.sampled_from(STUDY_KEYS), value=values, sub=st.sampled_from([None, "epochs", "gpu", "flops", "x"]))
def test_study_configs_are_valid_or_one_nas_error(space_dir: Path, key: str, value: Any, sub: str | None) -> None:
    doc = dict(STUDY)
    doc[key] = {sub: value} if sub and isinstance(STUDY.get(key), dict) else value
    try:
        StudyConfig.from_dict(doc, base_dir=space_dir)
    except NasError as exc:
        _one_line(exc)


ABLATION: dict[str, Any] = {
    "name": "a", "base": {"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "A", "depths": 1, "dims": 32,
                          "heads": 2},
    "axes": [{"field": "stages.*.depth", "values": [1, 2]}], "seeds": [0], "data": "synthetic",
    "budget": {"epochs": 1}, "resources": {"cpu": 1, "gpu": 0}, "max_concurrent": 1,
}
ABLATION_KEYS = [*ABLATION, "variants", "baseline", "paired", "collapse", "description", "unknown_field"]
axis_fields = st.sampled_from(["stages.*.depth", "stages.*.dim", "layout", "image_size", "stages.0.mixer", "pool",
                               "nope", "stages.9.dim", "stages.*.heads"])


@FUZZ
@given(key=st.sampled_from(ABLATION_KEYS), value=values, axis_field=axis_fields,
       axis_values=st.lists(scalars, max_size=3))
def test_ablation_configs_are_valid_or_one_nas_error(key: str, value: Any, axis_field: str, axis_values: list) -> None:
    doc = dict(ABLATION)
    doc[key] = value
    if key == "axes":
        doc["axes"] = [{"field": axis_field, "values": axis_values}]
    try:
        config = AblationConfig.from_dict(doc)
        for cell in config.cells():  # each cell's genome: what a run would train (or record as too large)
            check_fits(parse_genome(cell["genome"] if isinstance(cell, dict) else cell.genome))
    except NasError as exc:
        _one_line(exc)


set_keys = st.sampled_from(["n_trials", "budget.epochs", "budget.lr", "resources.gpu", "constraints.flops",
                            "objectives.val_acc", "sampler", "scheduler.asha.grace_period", "seed", "", ".", "a..b",
                            "budget", "max_concurrent", "name", "space", "data"])
set_values = st.one_of(st.sampled_from(["1", "-1", "0", "1e9", "nan", "inf", "[1, 2]", "{a: 1}", "null", "true",
                                        "'x'", "{", "]", ": :", "1/12", "random", "asha"]), st.text(max_size=8))


@FUZZ
@given(key=set_keys, value=set_values, sep=st.sampled_from(["=", "", "==", " = "]))
def test_set_strings_are_valid_or_one_nas_error(space_dir: Path, key: str, value: str, sep: str) -> None:
    try:
        doc = apply_overrides(STUDY, [f"{key}{sep}{value}"])
        StudyConfig.from_dict(doc, base_dir=space_dir)
    except NasError as exc:
        _one_line(exc)



# -- the classes that must never pass: non-finite, huge, bool-as-int; numpy scalars that must ------------
STRICT = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                  database=None)
# Refused in every numeric field of every config kind, whatever the field's range.
never_numbers = st.sampled_from([math.nan, math.inf, -math.inf, True, False, 10**400, -10**400, "1e400", "1e999999999", "nan",
                                 np.float64(math.nan), np.float32(math.inf), np.bool_(True), [1], {"a": 1}])
# Plain values and their numpy twins: each pair must be read alike (accepted or refused the same way).
numpy_twins = st.sampled_from([(1, np.int64(1)), (2, np.int32(2)), (4, np.uint8(4)), (64, np.int64(64)),
                               (0.5, np.float64(0.5)), (2.0, np.float32(2.0)), (0, np.int16(0)), (-1, np.int8(-1)),
                               (True, np.bool_(True)), (1e-3, np.float64(1e-3)), (2**31, np.int64(2**31))])

GENOME_NUMBERS = ["image_size", "num_classes", "patch_size", "drop_path", "head_hidden", "norm_eps", "in_channels",
                  "stages.0.depth", "stages.0.dim", "stages.0.heads", "stages.0.mlp_ratio"]
BUDGET_NUMBERS = ["epochs", "seconds", "batch_size", "lr", "weight_decay", "warmup_epochs", "min_lr_ratio",
                  "label_smoothing", "grad_clip", "subset", "val_subset", "crop_pad", "mixup_alpha", "cutmix_alpha",
                  "random_erasing", "rrc_scale_min", "rrc_max_ratio", "repeated_aug", "ema_decay", "eval_batch_size"]
STUDY_NUMBERS = ["n_trials", "seed", "max_concurrent", "heartbeat_interval", "grace_period", "constraints.flops",
                 "resources.cpu", "resources.gpu", "prescreen.keep", *(f"budget.{k}" for k in BUDGET_NUMBERS)]
ABLATION_NUMBERS = ["max_concurrent", "seeds.0", "resources.cpu", "budget.lr", "budget.epochs", "base.image_size",
                    "base.dims", "axes.0.values.0"]
SPACE_NUMBERS = ["fixed.image_size", "fixed.drop_path", "stage.depth.int.1", "stage.dim.choices.0",
                 "stage.heads.choices.1", "num_stages"]
SPACE: dict[str, Any] = {"name": "s", "fixed": {"image_size": 16, "patch_size": 4, "pool": "mean"}, "num_stages": 1,
                         "stage": {"mixer": {"choices": ["attention", "conv"]}, "depth": {"int": [1, 2]},
                                   "dim": {"choices": [16, 32]}, "heads": {"choices": [1, 2]}}}


def _set(doc: Any, path: str, value: Any) -> Any:
    """A deep copy of ``doc`` with the value at ``a.b.0.c`` replaced (mappings created on the way)."""
    import copy

    out = copy.deepcopy(doc)
    node, parts = out, path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return out


def _load(kind: str, doc: Any, folder: Path) -> Any:
    """Validate ``doc`` as a config of ``kind`` the way the CLI does (a NasError or the validated value)."""
    from nas.search.space import load_space
    from nas.train.config import TrainConfig

    if kind == "genome":
        genome = parse_genome(doc)
        check_fits(genome)
        return genome.key
    if kind == "budget":
        return TrainConfig.from_dict(doc)
    if kind == "study":
        return StudyConfig.from_dict(doc, base_dir=folder)
    if kind == "ablation":
        return AblationConfig.from_dict(doc).to_dict()
    return load_space(doc).describe()


KINDS = {"genome": (BASE_GENOME, GENOME_NUMBERS), "budget": ({"epochs": 1, "batch_size": 8}, BUDGET_NUMBERS),
         "study": ({**STUDY, "prescreen": {"proxy": "naswot", "keep": 0.5}}, STUDY_NUMBERS),
         "ablation": (ABLATION, ABLATION_NUMBERS), "space": (SPACE, SPACE_NUMBERS)}
kinds_and_fields = st.sampled_from([(k, f) for k, (_, fields) in KINDS.items() for f in fields])


@STRICT
@given(target=kinds_and_fields, value=never_numbers)
def test_non_finite_huge_and_boolean_numbers_are_refused_in_every_config_kind(
        space_dir: Path, target: tuple[str, str], value: Any) -> None:
    kind, path = target
    if kind == "ablation" and path == "base.dims" and isinstance(value, list):
        return  # a list of dims is the shorthand's per-stage spelling, not a wrong type
    with pytest.raises(NasError) as info:
        _load(kind, _set(KINDS[kind][0], path, value), space_dir)
    _one_line(info.value)
    assert len(str(info.value)) < 600  # the value is shown shortened (a 401-digit number is "a 401-digit integer")
    assert "401" in str(info.value) or "1e400" in str(info.value) or not (isinstance(value, int) and abs(value) > 10**300)


@STRICT
@given(target=kinds_and_fields, twins=numpy_twins)
def test_numpy_scalars_are_read_as_the_numbers_they_hold(space_dir: Path, target: tuple[str, str], twins: tuple) -> None:
    kind, path = target
    outcomes = []
    for value in twins:
        try:
            outcomes.append(("ok", _load(kind, _set(KINDS[kind][0], path, value), space_dir)))
        except NasError as exc:
            _one_line(exc)
            outcomes.append(("error", str(exc).replace("np.", "")))
    assert outcomes[0][0] == outcomes[1][0], outcomes
    if outcomes[0][0] == "ok":
        assert outcomes[0][1] == outcomes[1][1]


def _bomb(width: int, depth: int, leaf: str) -> str:
    """A YAML flow sequence of ``depth`` anchored levels, each ``width`` aliases of the one before: width**depth leaves."""
    levels = [f"&l0 [{', '.join([leaf] * width)}]"]
    levels += [f"&l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, depth)]
    return f"[{', '.join(levels)}]"


yaml_kinds = st.sampled_from(["genome", "study", "ablation", "space"])


@STRICT
@given(kind=yaml_kinds, data=st.data())
def test_duplicate_keys_are_refused_in_every_yaml_and_json_document(tmp_path_factory: pytest.TempPathFactory,
                                                                    kind: str, data: st.DataObject) -> None:
    from nas.genome.io import read_document

    import json

    doc = KINDS[kind][0]
    key = data.draw(st.sampled_from(sorted(doc)), label="key")
    value = data.draw(scalars.filter(lambda v: not isinstance(v, float) or math.isfinite(v)), label="value")
    nested = data.draw(st.booleans(), label="nested") and isinstance(doc.get("budget"), dict)
    as_json = data.draw(st.booleans(), label="json")
    rest = {k: v for k, v in doc.items() if not (nested and k == "budget")}
    if nested:  # a key twice inside a nested mapping
        key = "epochs"
        extra = ('"budget": {"epochs": 1, "epochs": 2}' if as_json else "budget:\n  epochs: 1\n  epochs: 2\n")
    else:  # a top-level key given again
        extra = f"{json.dumps(key)}: {json.dumps(value)}" if as_json else yaml.safe_dump({key: value})
    text = json.dumps(rest)[:-1] + ", " + extra + "}" if as_json else yaml.safe_dump(rest) + extra
    path = tmp_path_factory.mktemp("dup") / ("doc.json" if as_json else "doc.yaml")
    path.write_text(text)
    with pytest.raises(NasError, match=rf"duplicate key {re.escape(repr(key))}") as info:
        read_document(path)
    _one_line(info.value)


@STRICT
@given(kind=yaml_kinds, width=st.integers(1, 9), depth=st.integers(1, 9), data=st.data())
def test_aliases_expand_within_the_cap_or_are_refused(tmp_path_factory: pytest.TempPathFactory, kind: str,
                                                      width: int, depth: int, data: st.DataObject) -> None:
    import time

    from nas.genome.io import MAX_NODES, parse_text

    base, numbers = KINDS[kind]
    path = data.draw(st.sampled_from(numbers), label="field")
    leaf = data.draw(st.sampled_from(["1", "x", "2.5", "true", "null"]), label="leaf")
    marker = "__BOMB__"
    text = yaml.safe_dump(_set(base, path, marker)).replace(marker, _bomb(width, depth, leaf))
    folder = tmp_path_factory.mktemp("alias")
    start = time.perf_counter()
    leaves = sum(width**i for i in range(1, depth + 1))
    try:
        doc = parse_text(text, "doc.yaml", error=NasError)
        assert leaves < MAX_NODES  # a document that expands past the cap is never handed on
        _load(kind, doc, folder if kind != "study" else Path(__file__).parent)
    except NasError as exc:
        _one_line(exc)
        assert len(str(exc)) < 600
        if leaves > MAX_NODES:
            assert "expand it to more than 100,000 values" in str(exc)
    assert time.perf_counter() - start < 10  # no hang, whatever the aliases expand to
