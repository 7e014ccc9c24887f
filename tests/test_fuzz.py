"""Property-based fuzzing of every user document: each one is valid or a one-line NasError, never anything else.

Random genome dicts, study configs, ablation configs and ``--set`` strings (1,040 cases in all), each
either accepted or rejected with :class:`nas.errors.NasError` — no ``TypeError``/``OverflowError``
from deep inside, no hang (hypothesis' per-case deadline), no multi-line message. Accepted genomes
also pass the size guard or are refused by it, which is what ``nas validate`` runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

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

