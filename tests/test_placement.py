"""Trial placement: Ray's GPU assignment reaches each trial, and a GPU torch cannot use means CPU with a note."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import yaml
from optuna.trial import TrialState

from nas.search.config import StudyConfig
from nas.search.placement import trial_placement
from nas.search.runner import run_study
from nas.search.storage import load_optuna_study

# Eight distinct small architectures under the seeded random sampler (no two trials share a genome,
# so none is answered from another's result).
SPACE = {
    "name": "placement",
    "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean", "position": "none"},
    "num_stages": 1,
    "stage": {"mixer": {"choices": ["shift", "conv"]}, "depth": {"int": [1, 4]},
              "dim": {"choices": [12, 16, 24, 32, 40, 48, 56, 64]}, "mlp_ratio": 2},
}


def test_outside_ray_auto_is_cpu_here_without_a_note() -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    p = trial_placement("auto")
    assert (p.device, p.gpu_ids, p.note) == ("cpu", [], None)
    assert "device_note" not in p.record()


def test_explicit_device_is_passed_through() -> None:
    assert trial_placement("cuda:1").device == "cuda:1"  # the trainer reports a missing device itself
    assert trial_placement("cpu").device == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_fake_gpus_quarter_each_eight_trials_at_once_fall_back_to_cpu(tmp_path: Path) -> None:
    import ray

    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    doc = {
        "name": "gpus", "space": "space.yaml", "data": "synthetic", "seed": 0, "sampler": "random",
        # a wall-clock budget long enough that all eight trials are training at the same moment
        "budget": {"epochs": None, "seconds": 25, "batch_size": 32, "subset": 64, "val_subset": 32},
        "objectives": {"val_acc": "maximize", "flops": "minimize"}, "n_trials": 8, "max_concurrent": 8,
        "resources": {"cpu": 0.25, "gpu": 0.25},
    }
    config = StudyConfig.from_dict(doc, base_dir=tmp_path)
    # Two GPUs that do not exist: Ray schedules on declared resources; run_study reuses this Ray.
    ray.init(num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    os.environ["TUNE_DISABLE_STRICT_METRIC_CHECKING"] = "1"
    try:
        run_study(config, tmp_path / "run", quiet=True)
    finally:
        ray.shutdown()
    got = load_optuna_study(tmp_path / "run", config.name, config.storage).get_trials()
    assert len(got) == 8 and all(t.state == TrialState.COMPLETE for t in got), [t.user_attrs.get("error") for t in got]
    attrs = [t.user_attrs for t in got]
    for a in attrs:
        assert len(a["gpu_ids"]) == 1 and a["gpu_ids"][0] in ("0", "1")
        assert a["cuda_visible_devices"] == a["gpu_ids"][0]  # Ray's assignment, as the trial saw it
        assert a["device_note"] == (f"Ray assigned GPU {a['gpu_ids'][0]} but torch {torch.__version__} sees no "
                                    f"CUDA device; ran on CPU")
        assert a["device"].startswith("cpu")
    # four quarters per GPU: both fake GPUs carry trials, four each
    assert sorted(a["gpu_ids"][0] for a in attrs) == ["0"] * 4 + ["1"] * 4
    # eight processes, and one moment at which every trial was running
    assert len({a["pid"] for a in attrs}) == 8
    assert max(a["started_at"] for a in attrs) < min(a["ended_at"] for a in attrs)

