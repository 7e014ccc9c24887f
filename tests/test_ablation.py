"""Ablation configs (axes, paired axes, overrides), aggregation, resume, and one run through Ray Tune."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from nas.ablation.config import AblationConfig, apply_genome_overrides, load_ablation_config
from nas.ablation.runner import CELLS_FILE, append_cell, read_cells, run_ablation
from nas.ablation.table import ablation_table, table_rows, to_markdown, write_table
from nas.errors import ConfigError
from nas.genome import PRESETS

TINY: dict[str, Any] = {"image_size": 16, "num_classes": 4, "patch_size": 4, "layout": "A", "depths": [2],
                        "dims": [32], "heads": 2, "mlp_ratio": 2}


def config(**doc: Any) -> AblationConfig:
    return AblationConfig.from_dict({"name": "t", "base": TINY, "data": "synthetic", "budget": {"epochs": 1},
                                     **doc})


# -- expansion --------------------------------------------------------------------------------------
def test_axes_form_a_grid_with_generated_names() -> None:
    cfg = config(axes=[{"field": "stages.0.mixer", "values": ["attention", "reattention"]},
                       {"field": "stages.0.depth", "values": [1, 3, 5]}])
    assert [v.name for v in cfg.variants] == [
        "mixer=attention, depth=1", "mixer=attention, depth=3", "mixer=attention, depth=5",
        "mixer=reattention, depth=1", "mixer=reattention, depth=3", "mixer=reattention, depth=5"]
    last = cfg.variants[-1].genome["stages"][0]
    assert (last["mixer"], last["depth"], last["reattn_norm"]) == ("reattention", 5, "batch")
    assert cfg.baseline == "mixer=attention, depth=1"  # the first variant unless named
    assert cfg.seeds == (0, 1, 2) and len(cfg.cells()) == 18
    assert [c.seed for c in cfg.cells()[:6]] == [0] * 6  # seed-major: whole seeds of the table first


def test_paired_axes_move_together_and_labels_name_levels() -> None:
    cfg = AblationConfig.from_dict({
        "name": "p", "base": "shiftvit_cifar", "seeds": 1,
        "axes": [{"field": "stages.*.shift_ratio", "values": ["1/24", "1/12"], "labels": ["g24", "g12"]}],
        "paired": [{"fields": ["stages.*.depth", "stages.*.mlp_ratio"], "values": [[[1, 1, 3, 1], 4], [2, 2]]}],
        "baseline": "stages.*.shift_ratio=1/12, stages.*.mlp_ratio=4"})
    assert [v.name for v in cfg.variants] == ["g24, depth=1-1-3-1,mlp_ratio=4", "g24, depth=2,mlp_ratio=2",
                                              "g12, depth=1-1-3-1,mlp_ratio=4", "g12, depth=2,mlp_ratio=2"]
    stages = cfg.variant("g24, depth=2,mlp_ratio=2").genome["stages"]
    assert [s["depth"] for s in stages] == [2, 2, 2, 2] and {s["mlp_ratio"] for s in stages} == {2.0}
    # gamma 1/24, stored as the channels it shifts: floor(dim / 24) of dim
    assert stages[0]["shift_ratio"] == pytest.approx((stages[0]["dim"] // 24) / stages[0]["dim"])
    assert cfg.baseline == "g12, depth=1-1-3-1,mlp_ratio=4"  # '1/12' matched as a number


def test_nested_overrides_layout_and_explicit_variants() -> None:
    base = PRESETS["coatnet_cifar"].genome
    doc = apply_genome_overrides(base, [("stages.*.depth", [1, 1, 1, 2]), ("stages.3.dim", 384), ("layout", "C-T-T-T"),
                                        ("position", "none")])
    assert [s["mixer"] for s in doc["stages"]] == ["conv", "attention", "attention", "attention"]
    assert [s["depth"] for s in doc["stages"]] == [1, 1, 1, 2] and doc["stages"][3]["dim"] == 384
    assert doc["stages"][1]["heads"] == 4  # 128 channels at the base's head width of 32
    assert doc["position"] == "none"
    cfg = AblationConfig.from_dict({"name": "c", "base": "coatnet_cifar", "seeds": [3, 4, 5],
                                    "axes": [{"field": "layout", "values": ["C-C-C-C", "C-C-T-T"]}],
                                    "variants": [{"name": "VIT_REL", "base": {**TINY, "image_size": 32,
                                                                               "position": "relative"}},
                                                 {"name": "no rel", "set": {"position": "none"}}],
                                    "baseline": "C-C-T-T"})
    assert [v.name for v in cfg.variants] == ["C-C-C-C", "C-C-T-T", "VIT_REL", "no rel"]
    assert cfg.variant("VIT_REL").genome["stem"] == "patch" and cfg.collapse  # auto: attention variants exist
    assert cfg.to_dict()["variants"][3] == {"name": "no rel", "set": {"position": "none"}}


@pytest.mark.parametrize(("doc", "message"), [
    ({"axs": []}, "unknown key 'axs' in ablation config; did you mean 'axes'?"),
    ({"axes": [{"field": "stages.7.depth", "values": [1]}]},
     "variant 'depth=1': stages.7.depth: the base has 1 stage(s): stages.0 .. stages.0, or stages.* for all"),
    ({"axes": [{"field": "stages.*.head", "values": [1]}]},
     "variant 'head=1': stages.*.head: unknown stage field 'head'; did you mean 'heads'?; stage fields: mixer,"),
    ({"axes": [{"field": "posiiton", "values": ["none"]}]},
     "unknown genome field 'posiiton'; did you mean 'position'?"),
    ({"axes": [{"field": "stages.0.shift_ratio", "values": ["1/12"]}]},
     "stages.0.shift_ratio does not apply to the mixer of the stage(s) it names (attention); "
     "shift_ratio applies to: shift"),
    ({"axes": [{"field": "stages.0.heads", "values": [3]}]},
     "variant 'heads=3': stages[0].heads 3 does not divide dim 32"),
    ({"axes": [{"field": "stages.0.mixer", "values": ["conv"]}]}, "pool 'cls' needs the last stage to be attention"),
    ({"paired": [{"fields": ["stages.0.depth", "stages.0.dim"], "values": [[1]]}]},
     "paired[0].values[0] must list one value per field (2), got [1]"),
    ({"axes": [{"field": "stages.0.depth", "values": [1, 2]}], "baseline": "depth=7"},
     "baseline 'depth=7' matches no variant; give a variant name ('depth=1', 'depth=2')"),
    ({"axes": [{"field": "stages.0.depth", "values": [1, 1]}]}, "variant names must be unique, 'depth=1' appears 2"),
    ({"variants": []}, "no variants: give axes, paired axes or variants"),
    ({"axes": [{"field": "stages.0.depth", "values": [1, 2]}], "variants": [{"name": "again", "set": {}}]},
     "variants 'depth=2' and 'again' describe the same network"),
    ({"axes": [{"field": "stages.0.depth", "values": [1]}], "budget": {"epoch": 1}}, "unknown field 'epoch'"),
])
def test_bad_configs_name_the_field_and_what_exists(doc: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        config(**doc)
    assert message in str(info.value)


def test_file_and_set_overrides(tmp_path: Path) -> None:
    path = tmp_path / "abl.yaml"
    path.write_text("base: vit_cifar\naxes:\n  - {field: stages.0.depth, values: [2, 4]}\n"
                    "data: mnist5k\nbudget: {epochs: 3}\n")
    cfg = load_ablation_config(path, ["budget.epochs=1", "seeds=[7]", "data=synthetic", "baseline=depth=4"])
    assert (cfg.name, cfg.budget, cfg.seeds, cfg.data, cfg.baseline) == ("abl", {"epochs": 1}, (7,), "synthetic",
                                                                         "depth=4")
    with pytest.raises(ConfigError, match=r"unknown key 'sedes' in ablation config; did you mean 'seeds'\?"):
        load_ablation_config(path, ["sedes=[1]"])


# -- aggregation ------------------------------------------------------------------------------------
def _record(variant: str, seed: int, val: float, train: float, loss: float, **extra: Any) -> dict[str, Any]:
    return {"cell": f"{variant}-s{seed}", "variant": variant, "seed": seed, "status": "complete", "params": 1000,
            "flops": 2_000_000, "flops_unit": "MACs", "val_acc": val, "train_acc": train, "train_loss": loss,
            "val_loss": loss, "img_per_s": 100.0, **extra}


def test_mean_std_over_seeds_gap_and_delta(tmp_path: Path) -> None:
    records = [_record("a", 0, 0.80, 0.90, 1.0), _record("a", 1, 0.90, 0.90, 2.0), _record("a", 2, 0.70, 0.90, 3.0),
               _record("b", 0, 0.95, 0.90, 0.5, collapse_similarity=0.8, similar_blocks=1),
               _record("b", 1, 0.85, 0.90, 0.5, collapse_similarity=0.6, similar_blocks=3),
               {"cell": "b-s2", "variant": "b", "seed": 2, "status": "failed", "error": "TrainingDiverged"}]
    table = ablation_table(records, ["a", "b", "c"], baseline="a").set_index("variant")
    assert table.loc["a", "val_acc_mean"] == pytest.approx(0.80)
    assert table.loc["a", "val_acc_std"] == pytest.approx(0.10)  # sample std (ddof=1) of .8 .9 .7
    assert table.loc["a", "train_loss_std"] == pytest.approx(1.0)
    assert table.loc["a", "gap_mean"] == pytest.approx(0.10)  # train - val, per cell then averaged
    assert table.loc["b", "val_acc_mean"] == pytest.approx(0.90)
    assert table.loc["b", "delta_val_acc"] == pytest.approx(0.10)
    assert (table.loc["b", "n_seeds"], table.loc["b", "n_failed"]) == (2, 1)
    assert table.loc["b", "collapse_similarity_mean"] == pytest.approx(0.7)
    assert table.loc["b", "similar_blocks_mean"] == pytest.approx(2.0)
    assert math.isnan(table.loc["c", "val_acc_mean"]) and table.loc["c", "n_seeds"] == 0
    assert bool(table.loc["a", "baseline"]) and table.loc["a", "delta_val_acc"] == 0
    rows = table_rows(table.reset_index())
    assert rows[2]["val_acc_mean"] is None and rows[0]["params"] == 1000
    md = to_markdown(table.reset_index())
    assert "| a (baseline) " in md and "80.00 ± 10.00" in md and "(1 failed)" in md and "+10.00" in md
    files = write_table(table.reset_index(), tmp_path, title="t")
    assert all(p.is_file() and p.stat().st_size for p in files.values())
    assert r"80.00 $\pm$ 10.00" in files["tex"].read_text()
    plain = ablation_table(records[:3], ["a"], baseline="a")
    assert "collapse_similarity_mean" not in plain  # no attention variant: no collapse columns


def test_delta_has_a_confidence_interval_and_a_verdict(tmp_path: Path) -> None:
    from scipy import stats as sp

    base = [0.80, 0.84, 0.82]
    rows = {"up": [0.85, 0.88, 0.86], "down": [0.74, 0.79, 0.75], "same": [0.81, 0.83, 0.83]}
    records = [_record("base", s, v, 0.9, 1.0) for s, v in enumerate(base)]
    for name, vals in rows.items():
        records += [_record(name, s, v, 0.9, 1.0) for s, v in enumerate(vals)]
    records += [_record("other seeds", s, v, 0.9, 1.0) for s, v in ((7, 0.90), (8, 0.93))]  # no shared seed
    records += [_record("one seed", 0, 0.99, 0.9, 1.0)]
    names = ["base", *rows, "other seeds", "one seed"]
    table = ablation_table(records, names, baseline="base").set_index("variant")
    for name, vals in rows.items():
        ref = sp.ttest_rel(vals, base)
        ci = ref.confidence_interval(0.95)
        assert table.loc[name, "delta_test"] == "paired"
        assert (table.loc[name, "delta_ci_low"], table.loc[name, "delta_ci_high"]) == pytest.approx((ci.low, ci.high))
        assert table.loc[name, "delta_p"] == pytest.approx(ref.pvalue)
    assert [r["verdict"] for r in table_rows(table.reset_index())] == [None, "better", "worse", "too close",
                                                                      "better", None]
    welch = sp.ttest_ind([0.90, 0.93], base, equal_var=False).confidence_interval(0.95)
    assert table.loc["other seeds", "delta_test"] == "welch"
    assert table.loc["other seeds", "delta_ci_low"] == pytest.approx(welch.low)
    md = to_markdown(table.reset_index())
    assert "| verdict " in md and "no verdict (1 seed)" in md and "| better " in md and "| too close " in md
    assert "paired t-test on per-seed differences (scipy.stats.ttest_rel)" in md
    assert "Welch's t-test (scipy.stats.ttest_ind, equal_var=False)" in md
    lo, hi = table.loc["up", "delta_ci_low"] * 100, table.loc["up", "delta_ci_high"] * 100
    assert f"[{lo:+.2f}, {hi:+.2f}]" in md
    single = ablation_table([r for r in records if r["seed"] == 0], names, baseline="base")
    assert set(single["verdict"].dropna()) == set() and "no verdicts" in to_markdown(single)


def test_cells_file_survives_a_torn_line(tmp_path: Path) -> None:
    append_cell(tmp_path, {"cell": "x-s0", "status": "complete"})
    with open(tmp_path / CELLS_FILE, "a") as fh:
        fh.write('{"cell": "y-s0", "sta')  # a writer killed mid-line
    append_cell(tmp_path, {"cell": "z-s0", "status": "complete"})
    assert sorted(read_cells(tmp_path)) == ["x-s0", "z-s0"]


# -- through Ray Tune -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


TINY_RUN = {"seeds": [0, 1], "budget": {"epochs": 1, "subset": 64, "batch_size": 32}, "max_concurrent": 2,
            "axes": [{"field": "stages.0.mixer", "values": ["attention", "reattention"]}]}


def test_tiny_ablation_end_to_end(ray_instance, tmp_path: Path) -> None:
    cfg = config(name="e2e", **TINY_RUN)
    run = run_ablation(cfg, tmp_path, quiet=True)
    assert (run.total, run.skipped, run.ran) == (4, 0, 4)
    assert {(r["variant"], r["seed"]) for r in run.records} == {(v, s) for v in ("mixer=attention",
                                                                                 "mixer=reattention") for s in (0, 1)}
    assert all(r["status"] == "complete" and r["similar_blocks"] in (0, 1) for r in run.records)
    table = ablation_table(run.records, [v.name for v in cfg.variants], cfg.baseline)
    rows = table_rows(table)
    assert [r["n_seeds"] for r in rows] == [2, 2] and rows[0]["params"] > 0
    assert {"val_acc_mean", "val_acc_std", "gap_mean", "collapse_similarity_mean", "flops"} <= set(rows[0])


def test_resume_runs_only_the_missing_cells(ray_instance, tmp_path: Path, capsys) -> None:
    cfg = config(name="resume", **{**TINY_RUN, "axes": [{"field": "stages.0.depth", "values": [1, 2]}]})
    from nas.ablation.runner import plan_cells

    cells = plan_cells(cfg)
    for c in cells[:3]:  # finished before a crash, under other variant names; their (fake) results stand
        append_cell(tmp_path, {"cell": c.key, "variant": f"old {c.variant}", "seed": c.seed, "status": "complete",
                               "val_acc": 0.5, "train_acc": 0.5, "train_loss": 1.0, "params": 1, "flops": 1})
    run = run_ablation(cfg, tmp_path, quiet=True)
    assert (run.skipped, run.ran) == (3, 1)
    assert {r["variant"] for r in run.records} == {"depth=1", "depth=2"}  # renamed variants keep their cells
    stored = read_cells(tmp_path)
    assert [stored[c.key]["val_acc"] for c in cells[:3]] == [0.5, 0.5, 0.5]
    assert stored[cells[3].key]["status"] == "complete" and stored[cells[3].key]["history"]
    # Everything finished: the CLI only rebuilds the table (no Ray start), and --json has the rows.
    from nas.cli.main import main

    yaml_path = tmp_path / "resume.yaml"
    yaml_path.write_text(json.dumps({"base": TINY, "data": "synthetic", "budget": {"epochs": 1}, **TINY_RUN,
                                     "axes": [{"field": "stages.0.depth", "values": [1, 2]}]}))
    capsys.readouterr()
    assert main(["ablate", str(yaml_path), "--out", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["cells"] == {"total": 4, "skipped": 4, "ran": 0, "missing": 0}
    assert [r["variant"] for r in out["rows"]] == ["depth=1", "depth=2"] and out["rows"][0]["val_acc_std"] == 0.0
    with pytest.raises(ConfigError, match="choose another --out"):
        run_ablation(config(name="resume", **{**TINY_RUN, "budget": {"epochs": 2}}), tmp_path, quiet=True)


def test_learning_curves_name_the_slowest_learner_and_its_last_quarter(tmp_path: Path) -> None:
    from scipy.stats import entropy

    from nas.ablation.curves import convergence_note, loss_floor, mean_curves, slowest_learner

    def rec(variant: str, seed: int, losses: list[float]) -> dict[str, Any]:
        return {**_record(variant, seed, 0.9, 0.95, losses[-1]),
                "history": [{"epoch": i + 1, "train_loss": v} for i, v in enumerate(losses)]}

    fast = [2.0, 1.0, 0.7, 0.6, 0.55, 0.52, 0.51, 0.505]
    slow = [2.2, 2.0, 1.8, 1.6, 1.4, 1.2, 1.0, 0.8]
    records = [rec("fast", 0, fast), rec("fast", 1, [v + 0.01 for v in fast]), rec("slow", 0, slow)]
    curves = mean_curves(records, ["fast", "slow", "none"])
    assert set(curves) == {"fast", "slow"} and list(curves["fast"]["n"]) == [2] * 8
    assert curves["fast"]["mean"].iloc[0] == pytest.approx(2.005)
    assert slowest_learner(curves) == "slow"
    note = convergence_note(curves, floor=0.5)
    assert "Slowest-learning variant: slow" in note and "1.200 → 0.800 over the last 2 of 8 epochs (-33.3%)" in note
    assert "loss floor with these smoothed targets is 0.500" in note
    target = [0.9 + 0.01] + [0.01] * 9  # smoothing 0.1 over 10 classes
    assert loss_floor(0.1, 10) == pytest.approx(entropy(target)) and loss_floor(0.0, 10) == 0.0
    table = ablation_table(records, ["fast", "slow"], baseline="fast")
    files = write_table(table, tmp_path, title="t", curves=curves, loss_floor=0.5)
    assert files["curves"].stat().st_size > 10_000 and "Slowest-learning variant: slow" in files["md"].read_text()
