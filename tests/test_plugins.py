"""Plugins: a mixer declared outside nas works everywhere a built-in does.

The worked example (examples/nas_gfnet, GFNet's global filter) is put on the path, never installed:
``nas mixers --check`` on it, a 2-trial study whose space includes it on the 2-node Ray cluster, the
best genome exported and rebuilt, and a resume without the plugin refused in one line.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import yaml

from nas.errors import ConfigError, GenomeError
from nas.genome import genome_to_yaml, load_genome, load_yaml, parse_genome
from nas.mixers import (MIXER_REGISTRY, MixerField, MixerSpec, load_plugins, mixer_spec, plugin_versions,
                        register_mixer, unregister_mixer)
from servers import RAY_ENV

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "nas_gfnet"


def _forget(module: str, *mixers: str) -> None:
    """Undo a plugin's import, so that the tests after this one see the registry as nas ships it."""
    from nas.mixers import plugins

    for name in mixers:
        unregister_mixer(name)
    plugins._loaded.pop(module, None)
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        del sys.modules[name]


@pytest.fixture
def gfnet(monkeypatch: pytest.MonkeyPatch) -> Iterator[MixerSpec]:
    """The example plugin imported from its folder (as ``PYTHONPATH=examples/nas_gfnet`` would)."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    load_plugins(["nas_gfnet"])
    yield mixer_spec("gfnet")
    _forget("nas_gfnet", "gfnet")


def _env(*extra: Path) -> dict[str, str]:
    path = os.pathsep.join([*(str(p) for p in extra), str(ROOT)])
    return {**os.environ, **RAY_ENV, "PYTHONUNBUFFERED": "1", "PYTHONPATH": path}


def _nas(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nas", *args], env=env, capture_output=True, text=True,
                          timeout=timeout)


# -- genomes ----------------------------------------------------------------------------------------------
GENOME = {"plugins": ["nas_gfnet"], "image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "G-P",
          "depths": [1, 1], "dims": [16, 32], "fft_norm": "forward"}


def test_a_plugin_genome_round_trips_with_its_options_and_plugin(gfnet: MixerSpec) -> None:
    genome = load_genome(GENOME)
    stage = genome.stages[0]
    assert stage.options == (("fft_norm", "forward"), ("init_std", 0.02)) and stage.value("fft_norm") == "forward"
    assert genome.stages[1].options == ()  # the shorthand's fft_norm does not apply to pool: dropped
    assert genome.plugins == ("nas_gfnet",) and genome.layout == "G-P"
    doc = genome.to_dict()
    assert doc["stages"][0]["fft_norm"] == "forward" and doc["plugins"] == ["nas_gfnet"]
    for text in (genome_to_yaml(genome), json.dumps(doc)):
        again = parse_genome(load_yaml(text))
        assert again == genome and again.key == genome.key
    # the plugins a genome records are those its stages use, whatever the document named
    assert parse_genome({**GENOME, "layout": "P-P"}).plugins is None
    assert parse_genome({**GENOME, "layout": "P-P"}).key == parse_genome({**GENOME, "layout": "P-P", "plugins": []}).key


def test_plugin_fields_are_typed_like_any_other(gfnet: MixerSpec) -> None:
    with pytest.raises(GenomeError, match=r"stages\[0\]\.fft_norm must be one of ortho, backward, forward; "
                                          r"got 'orto'; did you mean 'ortho'\?"):
        parse_genome({**GENOME, "fft_norm": "orto"})
    with pytest.raises(GenomeError, match=r"stages\[0\]\.init_std must be a number in \(0, 1\], got 0"):
        parse_genome({**GENOME, "init_std": 0})


def test_an_unknown_plugin_mixer_names_the_fix() -> None:
    with pytest.raises(GenomeError, match=r"unknown mixer 'gfnett' at stages\[0\]\.mixer.*plugins: \[its module\]"):
        parse_genome({"image_size": 16, "patch_size": 4, "stages": [{"mixer": "gfnett", "depth": 1, "dim": 8}]})
    with pytest.raises(GenomeError, match=r"genome plugins: plugin module 'nas_no_such_plugin' cannot be imported; "
                                          r"install it .* or add the folder that holds it to PYTHONPATH"):
        parse_genome({**GENOME, "plugins": ["nas_no_such_plugin"]})


def test_declarations_are_checked() -> None:
    with pytest.raises(TypeError, match="letter must be one capital letter other than T"):
        MixerSpec(name="mine", letter="T", module="x:Y")
    with pytest.raises(TypeError, match="kind must be one of int, float, choice, bool"):
        MixerField("size", "str")
    with pytest.raises(GenomeError, match=r"mixer 'mine': layout letter 'P' is taken by 'pool'; free letters: "):
        register_mixer(MixerSpec(name="mine", letter="P", module="x:Y"))
    with pytest.raises(GenomeError, match=r"mixer 'pool' is declared twice"):
        register_mixer(MixerSpec(name="pool", letter="Q", module="x:Y"))
    assert "mine" not in MIXER_REGISTRY


class _Dense(torch.nn.Module):
    """A token mixer with no declared estimate: the size guard counts it on the meta device."""

    def __init__(self, dim: int, *, grid: Any, **_: object) -> None:
        super().__init__()
        self.mix = torch.nn.Linear(grid.tokens, grid.tokens)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, N, C] -> [B, N, C]
        return self.mix(self.norm(x).transpose(1, 2)).transpose(1, 2)


def test_a_mixer_without_an_estimate_is_counted_on_the_meta_device() -> None:
    from nas.cost import count_cost
    from nas.models.footprint import estimate_footprint, estimate_macs

    register_mixer(MixerSpec(name="dense_tokens", letter="Z", module=_Dense))
    try:
        genome = parse_genome({"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "Z-Z",
                               "depths": [2, 1], "dims": [16, 32]})
        report = count_cost(genome)
        assert genome.plugins == (__name__,)  # declared outside plugins: the class's module
        assert abs(estimate_footprint(genome).params - report.params) <= 0.01 * report.params
        assert estimate_macs(genome) == report.flops  # Linear over tokens: counted exactly on meta
    finally:
        unregister_mixer("dense_tokens")


# -- the worked example, end to end ---------------------------------------------------------------------
def test_the_example_plugin_passes_the_contract_table() -> None:
    done = _nas("mixers", "--check", "nas_gfnet:gfnet", "--json", env=_env(EXAMPLE))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    checks = {r["check"] for r in result["rows"]}
    assert result["ok"] and checks == {"shape", "finite", "gradients", "flops", "size guard: params",
                                       "size guard: MACs", "size guard: memory", "export"}
    listed = _nas("mixers", "--plugin", "nas_gfnet", "--json", env=_env(EXAMPLE))
    gf = next(m for m in json.loads(listed.stdout) if m["name"] == "gfnet")
    assert gf["letter"] == "G" and gf["plugin"] == "nas_gfnet" and set(gf["fields"]) == {"mlp_ratio", "fft_norm",
                                                                                          "init_std"}
    missing = _nas("mixers", "--check", "nas_gfnet:gfnet", env=_env())  # not on the path
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1
    assert "plugin module 'nas_gfnet' cannot be imported" in missing.stderr


SPACE = {
    "name": "gf", "plugins": ["nas_gfnet"],
    "fixed": {"image_size": 16, "patch_size": 4, "pool": "mean", "position": "none", "overlap": True},
    "num_stages": 2,
    "stage": {"mixer": [{"choices": ["gfnet"]}, {"choices": ["gfnet", "pool"]}], "depth": 1,
              "dim": {"choices": [8, 16]}, "dim_growth": 2, "fft_norm": {"choices": ["ortho", "forward"],
                                                                           "when": ["gfnet"]}},
}


def test_a_study_with_the_plugin_runs_on_the_cluster_and_exports(tmp_path: Path, ray_cluster: Any) -> None:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    study = {"name": "gf", "plugins": ["nas_gfnet"], "space": "space.yaml", "data": "synthetic",
             "budget": {"epochs": 1, "batch_size": 32, "subset": 64, "val_subset": 64, "lr": 3e-3},
             "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": 2, "seed": 0,
             "max_concurrent": 2, "sampler": "random", "ray_address": ray_cluster.address}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    out = tmp_path / "run"
    env = _env(EXAMPLE)
    done = _nas("study", "run", str(tmp_path / "study.yaml"), "--out", str(out), "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]

    from nas.search.storage import load_optuna_study

    got = load_optuna_study(out, "gf", None)
    assert got.user_attrs["plugins"]["nas_gfnet"].startswith("0.1.0")  # provenance: module and version
    trials = got.get_trials()
    assert len(trials) == 2 and all(t.state.name == "COMPLETE" for t in trials)
    for t in trials:
        genome = t.user_attrs["genome"]
        assert genome["plugins"] == ["nas_gfnet"] and genome["stages"][0]["mixer"] == "gfnet"
        assert "flops_uncounted" not in t.user_attrs
        assert t.user_attrs["versions"]["plugin nas_gfnet"].startswith("0.1.0")

    exported = _nas("export", str(out), "--pick", "max:val_acc", "--out", str(tmp_path / "best.yaml"), "--verify",
                    "--json", env=env)
    assert exported.returncode == 0, exported.stderr
    doc = yaml.safe_load((tmp_path / "best.yaml").read_text())
    assert doc["plugins"] == ["nas_gfnet"]
    built = _nas("cost", str(tmp_path / "best.yaml"), "--json", env=env)
    assert built.returncode == 0, built.stderr
    cost = json.loads(built.stdout)
    best = next(t for t in trials if t.user_attrs["key"] == doc["metadata"]["key"])
    assert (cost["params"], cost["flops"]) == (best.user_attrs["params"], best.user_attrs["flops"])

    confirmed = _nas("study", "confirm", str(out), "--top", "0", "--epochs", "1", "--seeds", "0", "--json", env=env)
    assert confirmed.returncode == 0, confirmed.stderr[-3000:]
    assert (out / "confirm" / "confirm.md").is_file()

    ablation = {"name": "gf_norm", "plugins": ["nas_gfnet"], "base": str(tmp_path / "best.yaml"),
                "axes": [{"field": "stages.0.fft_norm", "values": ["ortho", "backward"]}], "seeds": [0],
                "data": "synthetic", "budget": study["budget"], "ray_address": ray_cluster.address}
    (tmp_path / "ablation.yaml").write_text(yaml.safe_dump(ablation))
    ablated = _nas("ablate", str(tmp_path / "ablation.yaml"), "--out", str(tmp_path / "abl"), "--json", env=env)
    assert ablated.returncode == 0, ablated.stderr[-3000:]
    assert len(json.loads(ablated.stdout)["rows"]) == 2

    refused = _nas("study", "resume", str(out), env=_env())  # the plugin is not importable here
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert "plugin module 'nas_gfnet' cannot be imported" in refused.stderr and "PYTHONPATH" in refused.stderr


def test_plugin_versions_name_the_module(gfnet: MixerSpec) -> None:
    assert plugin_versions(["nas_gfnet"]) == {"nas_gfnet": "0.1.0"}


def test_a_config_names_a_missing_plugin_in_one_line(tmp_path: Path) -> None:
    from nas.search.config import StudyConfig

    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    with pytest.raises(ConfigError, match=r"^study config: plugin module 'nas_missing' cannot be imported; install "):
        StudyConfig.from_dict({"name": "x", "plugins": ["nas_missing"], "space": "space.yaml", "data": "synthetic",
                               "objectives": ["val_acc"]}, base_dir=tmp_path)


def test_installed_packages_declare_mixers_through_the_entry_point_group(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A distribution whose metadata names a module under ``nas.mixers`` is imported on the first lookup of a
    name the registry does not hold (here a dist-info folder on sys.path stands for ``pip install``)."""
    from nas.mixers import plugins

    (tmp_path / "nas_ep_demo.py").write_text(
        "from nas.mixers import MixerSpec, register_mixer\n"
        "register_mixer(MixerSpec(name='ep_demo', letter='E', module='nas.layers.identity:IdentityMixer',\n"
        "                         residual=True, has_mlp=True, norm='group'))\n")
    info = tmp_path / "nas_ep_demo-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nas-ep-demo\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nas.mixers]\nep_demo = nas_ep_demo\n")
    (info / "top_level.txt").write_text("nas_ep_demo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(plugins, "_entry_points_read", [False])
    try:
        genome = parse_genome({"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "E", "depths": [1],
                               "dims": [8]})
        assert genome.stages[0].mixer == "ep_demo" and genome.plugins == ("nas_ep_demo",)
        assert plugin_versions(["nas_ep_demo"]) == {"nas_ep_demo": "nas-ep-demo 1.0"}
    finally:
        _forget("nas_ep_demo", "ep_demo")
