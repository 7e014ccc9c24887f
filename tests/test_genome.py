"""Genome parsing: both spellings, canonical keys, file round trips and every kind of bad input."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from nas.cli.main import main
from nas.errors import GenomeError, NasError
from nas.genome import PRESETS, Genome, Stage, genome_to_yaml, load_genome, parse_genome, save_genome

# One small pyramid written both ways: shift, shift, attention, re-attention on 32x32 images.
EXPLICIT: dict[str, Any] = {
    "image_size": 32,
    "num_classes": 10,
    "patch_size": 2,
    "stages": [
        {"mixer": "shift", "depth": 1, "dim": 16, "mlp_ratio": 2, "shift_ratio": 0.125},
        {"mixer": "shift", "depth": 2, "dim": 32, "mlp_ratio": 2, "shift_ratio": 0.125},
        {"mixer": "attention", "depth": 1, "dim": 64, "heads": 4, "mlp_ratio": 2},
        {"mixer": "reattention", "depth": 1, "dim": 128, "heads": 4, "mlp_ratio": 2, "reattn_norm": "layer"},
    ],
}
SHORTHAND: dict[str, Any] = {
    "image_size": 32,
    "num_classes": 10,
    "patch_size": 2,
    "layout": "S-S-A-T",
    "transformer_mixer": "reattention",
    "depths": [1, 2, 1, 1],
    "dims": [16, 32, 64, 128],
    "heads": 4,  # also given for the shift stages, where it does not apply and is dropped
    "mlp_ratio": 2.0,
    "shift_ratio": "1/8",
    "reattn_norm": "layer",
}


def _tiny(**changes: Any) -> dict[str, Any]:
    """A valid one-stage shorthand document with ``changes`` applied."""
    return {"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "A", "depths": 1, "dims": 32,
            "heads": 2, **changes}


# -- spellings and the canonical key ------------------------------------------------------------------
def test_both_spellings_give_one_genome_and_key() -> None:
    a, b = parse_genome(EXPLICIT), parse_genome(SHORTHAND)
    assert a == b
    assert a.key == b.key
    assert re.fullmatch(r"[0-9a-f]{12}", a.key)
    assert a.layout == "S-S-A-R"
    assert [s.heads for s in a.stages] == [None, None, 4, 4]  # heads dropped where it does not apply
    assert a.stages[0].shift_ratio == 0.125 and a.stages[2].shift_ratio is None


def test_inapplicable_fields_are_dropped_in_either_spelling() -> None:
    explicit = json.loads(json.dumps(EXPLICIT))
    explicit["stages"][0].update(heads=3, expansion=6, reattn_norm="batch")  # none applies to shift
    assert parse_genome(explicit).key == parse_genome(EXPLICIT).key


def test_per_stage_lists_equal_scalars() -> None:
    lists = {**SHORTHAND, "heads": [7, None, 4, 4], "mlp_ratio": [2, 2, 2, 2],
             "shift_ratio": [0.125, "1/8", None, None]}
    assert parse_genome(lists).key == parse_genome(SHORTHAND).key


def test_key_ignores_key_order_and_number_spelling() -> None:
    reordered = dict(reversed(list(EXPLICIT.items())))
    reordered["stages"] = [dict(reversed(list(s.items()))) for s in EXPLICIT["stages"]]
    reordered["image_size"] = 32.0  # an integral float is the same size
    assert parse_genome(reordered).key == parse_genome(EXPLICIT).key


def test_key_is_stable() -> None:
    """Stored trials are found by key: the canonical document of a genome must not drift silently."""
    assert load_genome("vit_cifar").key == "bb60de6fd64c"


def test_key_changes_with_any_field() -> None:
    base = parse_genome(EXPLICIT)
    assert base.replace(num_classes=100).key != base.key
    assert base.replace(drop_path=0.1).key != base.key


def test_parse_does_not_modify_the_callers_document() -> None:
    doc = json.loads(json.dumps(SHORTHAND))
    parse_genome(doc)
    assert doc == SHORTHAND


def test_fraction_strings_are_the_papers_ratios() -> None:
    g = parse_genome(_tiny(layout="S", shift_ratio="1/12", dims=96))
    assert g.stages[0].shift_ratio == 1 / 12


def test_defaults_are_filled_in() -> None:
    g = parse_genome({"layout": "A", "depths": [12], "dims": [192]})
    assert g.stages == (Stage(mixer="attention", depth=12, dim=192, heads=3, mlp_ratio=4.0),)  # heads = dim // 64
    assert (g.image_size, g.num_classes, g.patch_size, g.pool, g.position) == (224, 1000, 16, "cls", "absolute")
    assert parse_genome({"layout": "S", "depths": 2, "dims": 96}).pool == "mean"  # no cls without attention
    pyramid = parse_genome({"layout": "C-C-T-T", "stem": "conv", "depths": 1, "dims": [32, 64, 128, 256]})
    assert (pyramid.pool, pyramid.downsample, pyramid.stem_dim, pyramid.patch_size) == ("mean", "pool", 32, None)
    assert pyramid.stages[0].to_dict() == {"mixer": "conv", "depth": 1, "dim": 32, "expansion": 4.0, "se_ratio": 0.25}


def test_stage_resolutions() -> None:
    assert parse_genome(EXPLICIT).stage_resolutions() == [16, 8, 4, 2]  # 32 / patch 2, then halving
    conv = parse_genome({"layout": "C-C-T-T", "stem": "conv", "stem_stride": 1, "image_size": 32, "depths": 1,
                         "dims": [32, 64, 128, 256]})
    assert conv.stage_resolutions() == [16, 8, 4, 2]  # S1 halves the stem's 32x32 too


def test_overrides_replace_top_level_fields() -> None:
    g = load_genome("vit_cifar", image_size=64, num_classes=None)
    assert (g.image_size, g.num_classes) == (64, 10)


def test_metadata_is_ignored() -> None:
    assert parse_genome({**EXPLICIT, "metadata": {"trial": 3}, "name": "x"}).key == parse_genome(EXPLICIT).key


# -- files --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_file_round_trip(tmp_path: Path, suffix: str) -> None:
    g = parse_genome(SHORTHAND)
    path = save_genome(g, tmp_path / "sub" / f"genome{suffix}", metadata={"source": "test"})
    again = load_genome(path)
    assert again == g and again.key == g.key
    assert load_genome(str(path)) == g


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_every_preset_round_trips(tmp_path: Path, suffix: str) -> None:
    for name in PRESETS:
        g = load_genome(name)
        assert load_genome(save_genome(g, tmp_path / f"{name}{suffix}")) == g, name


def test_yaml_text_is_the_canonical_document() -> None:
    g = parse_genome(EXPLICIT)
    doc = yaml.safe_load(genome_to_yaml(g, metadata={"score": 0.5}))
    assert doc.pop("metadata") == {"score": 0.5}
    assert doc == g.to_dict()
    assert "layout" not in doc and doc["stages"][0] == {
        "mixer": "shift", "depth": 1, "dim": 16, "mlp_ratio": 2.0, "shift_ratio": 0.125}


def test_genome_is_frozen() -> None:
    g = parse_genome(EXPLICIT)
    with pytest.raises(AttributeError):
        g.image_size = 64  # type: ignore[misc]
    assert isinstance(g, Genome)


# -- bad input: one error type, naming the field, the value and what is allowed -----------------------
BAD_DOCUMENTS: list[tuple[str, dict[str, Any] | Any, str]] = [
    ("unknown mixer", {"image_size": 16, "patch_size": 4, "stages": [{"mixer": "atention", "depth": 1, "dim": 32}]},
     r"unknown mixer 'atention' at stages\[0\]\.mixer; did you mean 'attention'\?; known: attention, conv, "
     r"identity, pool, reattention, shift"),
    ("unknown key", _tiny(imagesize=32), r"unknown key 'imagesize' in genome; did you mean 'image_size'\?"),
    ("unknown stage key", {"image_size": 16, "patch_size": 4,
                           "stages": [{"mixer": "attention", "depth": 1, "dim": 32, "head": 2}]},
     r"unknown key 'head' in stages\[0\]; did you mean 'heads'\?"),
    ("unknown transformer mixer", _tiny(layout="T", transformer_mixer="reatention"),
     r"transformer_mixer must be one of attention, reattention; got 'reatention'; did you mean 'reattention'\?"),
    ("unknown layout letter", _tiny(layout="A-X", depths=1, dims=32),
     r"layout 'A-X': unknown letter 'X'; allowed: A \(attention\), R \(reattention\), S \(shift\), C \(conv\), "
     r"P \(pool\), I \(identity\), T"),
    ("unknown choice", _tiny(pool="meen"), r"pool must be one of cls, mean; got 'meen'; did you mean 'mean'\?"),
    ("heads", _tiny(layout="A-A", dims=[32, 48], heads=[2, 5]),
     r"stages\[1\]\.heads 5 does not divide dim 48; allowed: a divisor of 48 \(1, 2, 3, 4, 6, 8, 12, 16, 24, 48\)"),
    ("shift_ratio above", _tiny(layout="S", shift_ratio=0.3),
     r"stages\[0\]\.shift_ratio must be a number in \(0, 0\.25\], got 0\.3"),
    ("shift_ratio zero", _tiny(layout="S", shift_ratio=0), r"stages\[0\]\.shift_ratio must be a number in \(0, 0\.25\], got 0$"),
    ("shift_ratio too small for dim", _tiny(layout="S", shift_ratio=0.01),
     r"stages\[0\]: shift_ratio 0\.01 of dim 32 shifts no channel"),
    ("depth < 1", _tiny(depths=0), r"stages\[0\]\.depth must be a whole number >= 1, got 0"),
    ("negative dim", _tiny(dims=-32), r"stages\[0\]\.dim must be a whole number >= 1, got -32"),
    ("zero image size", _tiny(image_size=0), r"image_size must be a whole number >= 1, got 0"),
    ("zero patch size", _tiny(patch_size=0), r"patch_size must be a whole number >= 1, got 0"),
    ("one class", _tiny(num_classes=1), r"num_classes must be a whole number >= 2, got 1"),
    ("negative mlp_ratio", _tiny(mlp_ratio=-1), r"stages\[0\]\.mlp_ratio must be a number > 0, got -1"),
    ("zero expansion", _tiny(layout="C", stem="conv", patch_size=None, expansion=0),
     r"stages\[0\]\.expansion must be a number > 0, got 0"),
    ("se_ratio", _tiny(layout="C", stem="conv", patch_size=None, se_ratio=2),
     r"stages\[0\]\.se_ratio must be a number in \[0, 1\], got 2"),
    ("drop_path", _tiny(drop_path=1.0), r"drop_path must be a number in \[0, 1\), got 1\.0"),
    ("image not divisible", _tiny(image_size=30), r"image_size 30 is not divisible by the total downsampling 4 "
                                                  r"\(patch_size 4 x 2\^0 stage reductions\)"),
    ("pyramid not divisible", _tiny(layout="A-A-A", image_size=40),
     r"image_size 40 is not divisible by the total downsampling 16 \(patch_size 4 x 2\^2"),
    ("conv stem not divisible", {"layout": "C-C-T-T", "stem": "conv", "image_size": 48, "depths": 1, "dims": 32},
     r"image_size 48 is not divisible by the total downsampling 32 \(stem_stride 2 x 2\^4"),
    ("empty stages", {"stages": [], "image_size": 16}, r"stages must be a non-empty list, got \[\]"),
    ("empty layout", _tiny(layout="--"), r"layout '--' is not a layout: write one letter per stage"),
    ("doubled separator", _tiny(layout="C--A", depths=[1, 1], dims=[32, 32]), r"layout 'C--A' is not a layout"),
    ("trailing separator", _tiny(layout="A-"), r"layout 'A-' is not a layout"),
    ("transformer_mixer list", _tiny(layout="T", transformer_mixer=["attention"]),
     r"transformer_mixer must be one of attention, reattention; got \['attention'\]$"),
    ("transformer_mixer mapping", _tiny(layout="T", transformer_mixer={"a": 1}),
     r"transformer_mixer must be one of attention, reattention; got \{'a': 1\}$"),
    ("401-digit dim", _tiny(dims=10**400), r"stages\[0\]\.dim must be a whole number >= 1 and at most 2,147,483,647, "
                                          r"got a 401-digit integer$"),
    ("401-digit mlp_ratio", _tiny(mlp_ratio=10**400), r"mlp_ratio must be a number > 0 and at most 1e\+12, got a 401-digit"),
    ("'1e400' mlp_ratio", _tiny(mlp_ratio="1e400"), r"mlp_ratio must be a number > 0 and at most 1e\+12, got '1e400'$"),
    ("exponent of 9 digits", _tiny(mlp_ratio="1e999999999"), r"mlp_ratio must be a finite number > 0, got '1e999999999'$"),
    ("nan drop_path", _tiny(drop_path=float("nan")), r"drop_path must be a finite number in \[0, 1\), got nan$"),
    ("no stages", {"image_size": 16}, r"stages is missing"),
    ("list length", _tiny(layout="A-A", depths=[1, 2, 3]), r"depths has 3 entries but the layout has 2 stages"),
    ("both spellings", {**_tiny(), "stages": [{"mixer": "attention", "depth": 1, "dim": 32}]},
     r"give either stages or layout, not both"),
    ("shorthand without layout", {"stages": [{"mixer": "attention", "depth": 1, "dim": 32}], "heads": 2},
     r"heads is a shorthand field and needs layout"),
    ("string depth", _tiny(depths="two"), r"stages\[0\]\.depth must be a whole number >= 1, got 'two'"),
    ("fractional depth", _tiny(depths=1.5), r"stages\[0\]\.depth must be a whole number >= 1, got 1\.5"),
    ("boolean size", _tiny(image_size=True), r"image_size must be a whole number >= 1, got True"),
    ("string ratio", _tiny(mlp_ratio="wide"), r"stages\[0\]\.mlp_ratio must be a number > 0, got 'wide'"),
    ("string flag", _tiny(qkv_bias="yes"), r"qkv_bias must be true or false, got 'yes'"),
    ("stages not a list", {"stages": "A", "image_size": 16}, r"stages must be a non-empty list, got 'A'"),
    ("stage not a mapping", {"stages": [3], "image_size": 16}, r"stages\[0\] must be a mapping"),
    ("stage field missing", {"stages": [{"mixer": "attention", "depth": 1}]}, r"stages\[0\]\.dim is missing"),
    ("document not a mapping", [1, 2], r"a genome must be a mapping of fields, got list"),
    ("stem option on patch stem", _tiny(stem_dim=16), r"stem_dim applies to stem: conv only"),
    ("cls without attention", _tiny(layout="A-S", dims=[32, 64], pool="cls"),
     r"pool 'cls' needs the last stage to be attention or reattention, got stages\[1\]\.mixer 'shift'"),
]


@pytest.mark.parametrize("doc,pattern", [(d, p) for _, d, p in BAD_DOCUMENTS], ids=[i for i, _, _ in BAD_DOCUMENTS])
def test_bad_documents_are_rejected_with_their_message(doc: Any, pattern: str) -> None:
    with pytest.raises(GenomeError, match=pattern):
        load_genome(doc)


def test_genome_error_is_the_one_user_error_type() -> None:
    assert issubclass(GenomeError, NasError) and issubclass(GenomeError, ValueError)


@pytest.mark.parametrize("doc,pattern", [(d, p) for _, d, p in BAD_DOCUMENTS[:8]],
                         ids=[i for i, _, _ in BAD_DOCUMENTS[:8]])
def test_bad_files_name_the_file(tmp_path: Path, doc: Any, pattern: str) -> None:
    for path in (tmp_path / "g.yaml", tmp_path / "g.json"):
        path.write_text(yaml.safe_dump(doc) if path.suffix == ".yaml" else json.dumps(doc))
        with pytest.raises(GenomeError, match=re.escape(str(path)) + ": " + pattern):
            load_genome(path)


BAD_FILES: list[tuple[str, str, bytes, str]] = [
    ("malformed YAML", "g.yaml", b"layout: A\ndepths: [1, 2\n", r"g\.yaml: malformed YAML at line 3, column 1"),
    ("malformed JSON", "g.json", b'{"layout": "A",}', r"g\.json: malformed JSON at line 1, column 16"),
    ("empty file", "g.yaml", b"", r"g\.yaml: a genome must be a mapping of fields, got an empty document"),
    ("scalar document", "g.yaml", b"vit_cifar\n", r"g\.yaml: a genome must be a mapping of fields, got str"),
    ("binary file", "g.yml", b"\x80\x04\x95weights", r"g\.yml: not a YAML or JSON text file"),
]


@pytest.mark.parametrize("name,data,pattern", [f[1:] for f in BAD_FILES], ids=[f[0] for f in BAD_FILES])
def test_unreadable_files(tmp_path: Path, name: str, data: bytes, pattern: str) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(GenomeError, match=pattern):
        load_genome(path)


def test_missing_file_and_unknown_preset(tmp_path: Path) -> None:
    with pytest.raises(GenomeError, match=r"file not found: .*missing\.yaml"):
        load_genome(tmp_path / "missing.yaml")
    with pytest.raises(GenomeError, match=r"no preset or genome file named 'vit_cifr'; did you mean 'vit_cifar'\?"):
        load_genome("vit_cifr")
    with pytest.raises(GenomeError, match=r"is a directory; give a YAML or JSON file"):
        load_genome(tmp_path)  # a directory is not a genome file, and the message says so


# -- nas validate --------------------------------------------------------------------------------------
def test_validate_a_valid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.models import build_model

    genome = parse_genome(SHORTHAND)
    path = save_genome(genome, tmp_path / "g.yaml")
    assert main(["validate", str(path)]) == 0
    params = sum(p.numel() for p in build_model(genome).parameters())
    assert capsys.readouterr().out == f"valid: {genome.key} (S-S-A-R, {params:,} params)\n"


@pytest.mark.parametrize("name,text,message", [
    ("heads.yaml", yaml.safe_dump(_tiny(layout="A-A", dims=[32, 48], heads=[2, 5])),
     "stages[1].heads 5 does not divide dim 48; allowed: a divisor of 48"),
    ("mixer.json", json.dumps({"stages": [{"mixer": "atention", "depth": 1, "dim": 32}]}),
     "unknown mixer 'atention' at stages[0].mixer; did you mean 'attention'?"),
    ("broken.yaml", "stages: [{mixer: attention\n", "malformed YAML at line 2"),
])
def test_validate_an_invalid_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str,
                                  message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    assert main(["validate", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"error: {path}: {message}")
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err


def test_validate_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(tmp_path / "nope.yaml")]) == 2
    assert capsys.readouterr().err == f"error: file not found: {tmp_path / 'nope.yaml'}\n"


def test_console_script_prints_no_traceback(tmp_path: Path) -> None:
    """The installed ``nas`` script, as a user runs it, on a file that is not a genome."""
    path = tmp_path / "g.yaml"
    path.write_text("layout: A\ndepths: [1]\ndims: [30]\nheads: 4\n")
    script = shutil.which("nas")
    command = [script] if script else [sys.executable, "-m", "nas.cli.main"]
    done = subprocess.run([*command, "validate", str(path)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr == f"error: {path}: stages[0].heads 4 does not divide dim 30; allowed: a divisor of 30 " \
                          "(1, 2, 3, 5, 6, 10, 15, 30)\n"
    assert done.stdout == ""


def test_shift_ratios_that_shift_the_same_channels_are_one_genome(tiny_genome) -> None:
    # floor(0.2465 * 24) = floor(0.2495 * 24) = 5: one network, so one key (a study trains it once)
    a = tiny_genome(layout="S", dims=24, shift_ratio=0.2465)
    b = tiny_genome(layout="S", dims=24, shift_ratio=0.2495)
    assert a.key == b.key and a.stages[0].shift_ratio == 5 / 24
    assert tiny_genome(layout="S", dims=24, shift_ratio=0.25).key != a.key  # 6 channels
    from nas.layers.shift import Shift
    from nas.layers.grid import Grid

    assert Shift(24, grid=Grid(4, 4, 0), shift_ratio=a.stages[0].shift_ratio).g == 5


def test_numpy_scalars_and_arrays_count_as_the_numbers_they_hold() -> None:
    import numpy as np

    plain = parse_genome(_tiny(image_size=16, depths=2, dims=32, mlp_ratio=2.5, qkv_bias=False))
    numpy = parse_genome(_tiny(image_size=np.int64(16), depths=np.array([2]), dims=np.int32(32),
                               mlp_ratio=np.float32(2.5), qkv_bias=np.bool_(False)))
    assert numpy == plain and numpy.key == plain.key
    assert type(numpy.image_size) is int and type(numpy.stages[0].mlp_ratio) is float
    with pytest.raises(GenomeError, match=r"image_size must be a whole number >= 1, got True"):
        parse_genome(_tiny(image_size=np.bool_(True)))


# Canonical keys of the presets as they were before mixers became declarations (and before the options
# of plugin mixers and the plugins field existed): cost caches and stored studies are keyed by them.
PRESET_KEYS = {
    "deit_tiny": "14874d3892dd",
    "deit_small": "4577514f147d",
    "vit_base_16": "3c549ea3955b",
    "vit_large_16": "d628553e7853",
    "vit_16": "5e5f2446baca",
    "deepvit_16": "49b6939bbf90",
    "vit_24": "0606f466692e",
    "deepvit_24": "aeffded2526b",
    "vit_32": "4f15daf11dc5",
    "deepvit_32": "877f3fb90b80",
    "shiftvit_tiny_light": "1d6d27dfda3f",
    "shiftvit_tiny": "6cdbcfe6645b",
    "shiftvit_small_light": "d3d8b3914586",
    "shiftvit_small": "955a0b28bfee",
    "shiftvit_base": "6984fbcf7c90",
    "coatnet_0": "f49331438392",
    "coatnet_1": "0308dda9c324",
    "coatnet_2": "d11c2663432d",
    "vit_cifar": "bb60de6fd64c",
    "deepvit_cifar": "d7833375eafa",
    "shiftvit_cifar": "5631eb7cf991",
    "coatnet_cifar": "2ecda247faf6",
}


@pytest.mark.parametrize("name", sorted(PRESET_KEYS))
def test_preset_keys_are_stable(name: str) -> None:
    assert load_genome(name).key == PRESET_KEYS[name]
