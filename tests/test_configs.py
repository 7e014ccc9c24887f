"""Shipped configs by name: `nas study run quickstart`, `nas ablate coatnet_layouts`, `space: vit_family`."""
from __future__ import annotations

from pathlib import Path

import pytest

from nas.ablation.config import load_ablation_config
from nas.configs import CONFIG_DIR, resolve_config, shipped
from nas.errors import ConfigError
from nas.search.config import StudyConfig, load_study_config

ROOT = Path(__file__).resolve().parents[1]


def test_the_shipped_configs_are_package_data() -> None:
    assert CONFIG_DIR == ROOT / "nas" / "configs"
    assert {"vit_family", "coatnet", "deepvit", "shiftvit"} <= set(shipped("space"))
    assert "quickstart" in shipped("study")
    assert {"coatnet_layouts", "deepvit_depth", "shiftvit_ratio"} <= set(shipped("ablation"))
    assert all(p.parent == CONFIG_DIR / "ablations" for p in shipped("ablation").values())


def test_a_study_by_name_and_its_space_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no quickstart.yaml here: the name is the shipped one
    cfg = load_study_config("quickstart", ["n_trials=2"])
    assert cfg.name == "quickstart" and cfg.n_trials == 2
    assert cfg.space == str(CONFIG_DIR / "search_spaces" / "vit_family.yaml")
    assert load_study_config("quickstart.yaml").to_dict() == load_study_config(shipped("study")["quickstart"]).to_dict()
    own = StudyConfig.from_dict({"name": "own", "space": "deepvit", "data": "synthetic", "objectives": ["val_acc"]},
                                base_dir=tmp_path)
    assert own.space == str(CONFIG_DIR / "search_spaces" / "deepvit.yaml")


def test_a_file_of_that_name_wins_over_the_shipped_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "quickstart.yaml").write_text("space: coatnet\ndata: synthetic\nobjectives: [val_acc]\n")
    cfg = load_study_config("quickstart.yaml")
    assert cfg.space.endswith("coatnet.yaml") and cfg.data == "synthetic"
    assert resolve_config("study", "quickstart.yaml") == Path("quickstart.yaml")


def test_an_ablation_by_name() -> None:
    cfg = load_ablation_config("coatnet_layouts", ["seeds=[0]"])
    assert cfg.name == "coatnet_layouts" and cfg.seeds == (0,)


def test_unknown_names_list_the_shipped_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^study config not found: quikstart; shipped: (.*, )?quickstart(, .*)?; "
                                          r"did you mean 'quickstart'\?$"):
        load_study_config("quikstart")
    with pytest.raises(ConfigError, match=r"^ablation config 'coatnet_layout': no such file, and no shipped ablation "
                                          r"config of that name; shipped: coatnet_layouts, .*did you mean "
                                          r"'coatnet_layouts'\?$"):
        load_ablation_config("coatnet_layout")
    with pytest.raises(ConfigError, match=r"^ablation config nowhere/x.yaml: file not found$"):
        load_ablation_config("nowhere/x.yaml")
    with pytest.raises(ConfigError, match=r"^s: space: search-space file 'vit_famly' not found \(looked at .*\) and "
                                          r"no shipped space of that name; shipped: coatnet, deepvit, metaformer, shiftvit, "
                                          r"vit_family"):
        StudyConfig.from_dict({"name": "s", "space": "vit_famly", "data": "synthetic", "objectives": ["val_acc"]},
                              base_dir=tmp_path, label="s")
