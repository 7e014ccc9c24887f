"""Training: learning, determinism, budgets, divergence, module/data checks, config, CLI."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from nas.data import load_dataset
from nas.errors import ConfigError, DataError, TrainingDiverged
from nas.genome import load_yaml
from nas.train import TrainConfig, param_groups, train, warmup_cosine

torch.set_num_threads(1)
REPORT_KEYS = {"epoch", "train_loss", "train_acc", "val_loss", "val_acc", "img_per_s", "elapsed_s"}
TIMING = {"img_per_s", "elapsed_s", "device", "history"}


def tiny_net(channels: int = 3, classes: int = 10) -> nn.Module:
    """A small conv net with a norm and dropout, so seeding matters in both init and training."""
    return nn.Sequential(
        nn.Conv2d(channels, 16, 4, stride=4), nn.BatchNorm2d(16), nn.GELU(), nn.Dropout(0.1),
        nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(64, classes),
    )


@pytest.fixture(scope="module")
def synthetic():
    return load_dataset("synthetic")


def quick(**changes) -> TrainConfig:
    base = dict(epochs=3, batch_size=64, lr=1e-2, warmup_epochs=0.5, device="cpu")
    return TrainConfig(**{**base, **changes})


def _metrics(result) -> dict:
    return {k: v for k, v in result.to_dict().items() if k not in TIMING}


# -- learning and determinism -----------------------------------------------------------------------
def test_loss_falls_on_a_learnable_set(synthetic) -> None:
    seen: list[dict] = []
    torch.manual_seed(0)
    result = train(tiny_net(), synthetic, quick(epochs=4), seed=0, report=seen.append)
    assert [e["epoch"] for e in seen] == [1, 2, 3, 4] and all(set(e) == REPORT_KEYS for e in seen)
    assert seen[-1]["train_loss"] < seen[0]["train_loss"] - 0.3
    assert result.val_acc > 0.6  # chance is 0.1
    assert result.epochs == 4 and result.steps == 4 * 8 and result.stopped_by == "epochs"
    assert result.img_per_s > 0 and result.history == seen


def test_same_seed_same_metrics_other_seed_other_metrics(synthetic) -> None:
    runs = []
    for seed in (3, 3, 4):
        torch.manual_seed(seed)  # the module is built outside train(): seed its init too
        runs.append(_metrics(train(tiny_net(), synthetic, quick(epochs=2, subset=256), seed=seed)))
    assert runs[0] == runs[1]
    assert runs[0]["train_loss"] != runs[2]["train_loss"]


def test_genome_is_fitted_to_the_data(tmp_path: Path) -> None:
    """A 3-channel 10-class 16x16 genome trains on 1-channel 4-class 12x12 images (resized to 16)."""
    rng = np.random.default_rng(0)
    y = np.arange(64) % 4
    x = (rng.integers(0, 60, (64, 12, 12)) + 60 * y[:, None, None]).astype(np.uint8)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    data = load_dataset(f"npz:{tmp_path / 'd.npz'}")
    genome = {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean", "position": "absolute",
              "layout": "A", "depths": [1], "dims": [16], "heads": 2, "mlp_ratio": 2}
    a = train(genome, data, quick(epochs=2, batch_size=16), seed=0)
    b = train(genome, data, quick(epochs=2, batch_size=16), seed=0)
    assert a.model.genome.in_channels == 1 and a.model.genome.num_classes == 4
    assert _metrics(a) == _metrics(b) and a.steps == 2 * 4


# -- budgets, hooks, saving -------------------------------------------------------------------------
def test_seconds_budget_stops_inside_an_epoch(synthetic) -> None:
    seen: list[dict] = []
    result = train(tiny_net(), synthetic, quick(epochs=None, seconds=1e-4), seed=0, report=seen.append)
    assert result.stopped_by == "seconds" and result.epochs == 0 and result.steps == 1
    assert len(seen) == 1 and seen[0]["epoch"] == 1 and seen[0]["partial"] is True


def test_on_step_and_save(synthetic, tmp_path: Path) -> None:
    steps: list[dict] = []
    path = tmp_path / "out" / "model.pt"
    net = tiny_net()
    result = train(net, synthetic, quick(epochs=1, subset=128, save_path=str(path)), seed=0, on_step=steps.append)
    assert [s["batch"] for s in steps] == [1, 2] and all(np.isfinite(s["loss"]) for s in steps)
    state = torch.load(path)
    fresh = tiny_net()
    fresh.load_state_dict(state)
    assert torch.equal(fresh[0].weight, result.model[0].weight)


def test_weight_average_follows_the_decay(synthetic, tmp_path: Path) -> None:
    """A decay near 1 keeps the initial weights; a tiny one tracks the trained weights step by step."""
    torch.manual_seed(0)
    init = {k: v.clone() for k, v in tiny_net().state_dict().items()}
    runs = {}
    for decay in (1 - 1e-9, 1e-9):
        torch.manual_seed(0)
        path = tmp_path / f"{decay}" / "model.pt"
        result = train(tiny_net(), synthetic, quick(epochs=1, subset=128, ema_decay=decay, save_path=str(path)),
                       seed=0)
        assert (path.parent / "model.ema.pt").exists() and result.history[-1]["ema_val_acc"] == result.ema_val_acc
        runs[decay] = (result, torch.load(path.parent / "model.ema.pt"))
    (slow, slow_ema), (fast, fast_ema) = runs[1 - 1e-9], runs[1e-9]
    trained = fast.model.state_dict()
    assert torch.allclose(slow_ema["0.weight"], init["0.weight"], atol=1e-6)
    assert not torch.allclose(slow_ema["0.weight"], trained["0.weight"], atol=1e-3)
    assert torch.allclose(fast_ema["0.weight"], trained["0.weight"], atol=1e-6)
    assert fast.ema_val_acc == pytest.approx(fast.val_acc, abs=0.02)
    assert slow.ema_val_acc < slow.val_acc  # the untrained weights are near chance
    assert train(tiny_net(), synthetic, quick(epochs=1, subset=128), seed=0).ema_val_acc is None


def test_repeated_augmentation_keeps_the_epoch_length(synthetic) -> None:
    result = train(tiny_net(), synthetic, quick(epochs=1, subset=256, repeated_aug=3), seed=0)
    assert result.steps == 4 and np.isfinite(result.train_loss)


# -- divergence -------------------------------------------------------------------------------------
class GoesBad(nn.Module):
    """Returns NaN logits from its ``bad_at``-th training call on."""

    def __init__(self, bad_at: int) -> None:
        super().__init__()
        self.net, self.calls, self.bad_at = tiny_net(), 0, bad_at

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        if self.training:
            self.calls += 1
            if self.calls >= self.bad_at:
                return out * float("nan")
        return out


def test_divergence_stops_at_the_first_bad_step(synthetic) -> None:
    model = GoesBad(bad_at=11)  # 8 steps per epoch: epoch 2, global step 11
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch 2, step 11: loss is nan \(lr="):
        train(model, synthetic, quick(epochs=3), seed=0)
    assert model.calls == 11  # stopped at once, no further step


def test_huge_learning_rate_diverges(synthetic) -> None:
    with pytest.raises(TrainingDiverged, match=r"training diverged at epoch \d+, step \d+: loss is (nan|inf)"):
        train(tiny_net(), synthetic, quick(epochs=3, lr=1e12, warmup_epochs=0, grad_clip=None), seed=0)


# -- modules that do not fit the data ---------------------------------------------------------------
def test_module_with_wrong_channels_or_classes(synthetic) -> None:
    with pytest.raises(DataError, match=r"the model does not take synthetic images of shape \[3, 32, 32\]"):
        train(tiny_net(channels=1), synthetic, quick(epochs=1), seed=0)
    with pytest.raises(DataError, match=r"the model returns \[7\] outputs per image, but synthetic has 10 classes"):
        train(tiny_net(classes=7), synthetic, quick(epochs=1), seed=0)


# -- config and schedule ----------------------------------------------------------------------------
def test_config_from_dict_checks_keys_types_and_values() -> None:
    cfg = TrainConfig.from_dict({"epochs": 3, "lr": 1, "subset": None, "channels_last": False})
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float) and TrainConfig.from_dict(cfg.to_dict()) == cfg
    # PyYAML reads an exponent without a dot (2e-3) as a string; the project's YAML reader, as YAML 1.2, a number.
    assert TrainConfig.from_dict(load_yaml("lr: 2e-3\nweight_decay: 5E-2")).lr == 0.002
    with pytest.raises(ConfigError, match=r"unknown field 'epoch'; did you mean 'epochs'\?; known: epochs, seconds"):
        TrainConfig.from_dict({"epoch": 3})
    with pytest.raises(ConfigError, match=r"lr must be a number > 0, got 'fast'"):
        TrainConfig.from_dict({"lr": "fast"})
    with pytest.raises(ConfigError, match=r"batch_size must be a whole number >= 1, got True"):
        TrainConfig.from_dict({"batch_size": True})
    with pytest.raises(ConfigError, match=r"batch_size must be a whole number >= 1, got 0"):
        TrainConfig.from_dict({"batch_size": 0})
    with pytest.raises(ConfigError, match=r"give epochs, seconds or both"):
        TrainConfig.from_dict({"epochs": None})
    for field, value, allowed in (("lr", math.inf, "a finite number > 0"), ("weight_decay", math.nan, "a finite number >= 0"),
                                  ("label_smoothing", math.nan, r"a finite number in \[0, 0.999\]"),
                                  ("warmup_epochs", math.inf, "a finite number >= 0"),
                                  ("epochs", 10**30, "a whole number >= 1 and at most 1,000,000"),
                                  ("mixup_alpha", 10**400, "a number >= 0 and at most 1e\\+300")):
        with pytest.raises(ConfigError, match=f"train config: {field} must be {allowed}, got "):
            TrainConfig.from_dict({field: value})
    assert TrainConfig(lr=np.float32(0.5), batch_size=np.int64(8)).batch_size == 8  # numpy scalars are numbers
    with pytest.raises(ConfigError, match=r"amp must be one of auto, bf16, off, got 'bf61'; did you mean 'bf16'"):
        TrainConfig(amp="bf61")
    assert cfg.replace(lr=None, batch_size=32).batch_size == 32


def test_schedule_warms_up_then_decays_to_the_floor() -> None:
    f = [warmup_cosine(s, warmup_steps=4, total_steps=20, min_ratio=0.1) for s in range(21)]
    assert f[:4] == [0.25, 0.5, 0.75, 1.0] and f[4] == 1.0
    assert all(a >= b for a, b in zip(f[4:], f[5:])) and f[20] == pytest.approx(0.1)
    assert warmup_cosine(10, warmup_steps=0, total_steps=None, min_ratio=0.0, time_fraction=0.5) == pytest.approx(0.5)


def test_no_weight_decay_on_norms_biases_and_position_tables() -> None:
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
            self.rel_bias = nn.Parameter(torch.zeros(2, 4, 4))
            self.lin, self.norm = nn.Linear(8, 8), nn.LayerNorm(8)

    decay, no_decay = param_groups(Net(), 0.05)
    assert decay["weight_decay"] == 0.05 and [p.shape for p in decay["params"]] == [(8, 8)]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 5


def test_recipes_by_family() -> None:
    from nas.genome import load_genome
    from nas.train.recipes import family, recommended_config

    names = ("vit_cifar", "deepvit_cifar", "coatnet_cifar", "shiftvit_cifar")
    assert [family(load_genome(n)) for n in names] == ["transformer", "transformer", "hybrid", "shift"]
    vit = load_genome("vit_cifar")
    assert recommended_config(vit).batch_size == 16 and recommended_config(vit).augment is False  # 5 epochs
    assert recommended_config(vit, epochs=30).augment is True
    assert recommended_config(vit, augment=True, lr=None).augment is True


# -- CLI --------------------------------------------------------------------------------------------
def test_cli_json(tmp_path: Path, capsys) -> None:
    from nas.cli.main import main

    genome = tmp_path / "g.yaml"
    genome.write_text("image_size: 16\nstem: patch\npatch_size: 4\npool: mean\nlayout: A\ndepths: [1]\n"
                      "dims: [16]\nheads: 2\n")
    code = main(["train", str(genome), "--data", "synthetic", "--epochs", "1", "--subset", "64",
                 "--batch-size", "32", "--device", "cpu", "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert {"val_acc", "train_loss", "epochs", "img_per_s"} <= set(out) and out["epochs"] == 1
    assert out["data"]["name"] == "synthetic" and out["config"]["subset"] == 64


def test_cli_bad_data_is_a_one_line_error(capsys) -> None:
    from nas.cli.main import main

    assert main(["train", "vit_cifar", "--data", "cifar1O:/nowhere"]) == 2
    assert "error: unknown dataset 'cifar1o'; did you mean 'cifar10'?" in capsys.readouterr().err


# -- explicit bf16 autocast and torch.compile on the CPU ----------------------------------------------
def _linear_output_dtypes(model: nn.Module) -> list[torch.dtype]:
    seen: list[torch.dtype] = []
    model[-1].register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    return seen


def test_auto_precision_is_float32_uncompiled_on_cpu(synthetic) -> None:
    torch.manual_seed(0)
    net = tiny_net()
    dtypes = _linear_output_dtypes(net)
    result = train(net, synthetic, quick(epochs=1), seed=0)
    assert (result.amp, result.compiled) == ("off", False) and set(dtypes) == {torch.float32}


class _ComplexGain(nn.Module):
    """A 4-D parameter read through ``view_as_complex`` (as GFNet's filter is): needs a unit last stride."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(2, 3, 4, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.view_as_complex(self.weight).abs().mean()


def test_auto_layout_is_channels_last_for_real_convolutions_on_cpu(synthetic) -> None:
    """Overlapping convolutions train channels-last on any device (faster on CPU too:
    benchmarks/channels_last.py); a patchify-only network keeps the default layout."""
    torch.manual_seed(0)
    real = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), _ComplexGain(), nn.GELU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))
    result = train(real, synthetic, quick(epochs=1), seed=0)
    assert result.channels_last and real[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not real[0].weight.is_contiguous()
    assert real[2].weight.is_contiguous()  # only convolutions are restrided: view_as_complex still works
    patchify = tiny_net()
    assert not train(patchify, synthetic, quick(epochs=1), seed=0).channels_last
    assert patchify[0].weight.is_contiguous()
    off = train(real, synthetic, quick(epochs=1, channels_last=False), seed=0)
    assert not off.channels_last and math.isfinite(off.val_loss)


def test_explicit_bf16_autocast_runs_and_learns_on_cpu(synthetic) -> None:
    torch.manual_seed(0)
    net = tiny_net()
    dtypes = _linear_output_dtypes(net)
    result = train(net, synthetic, quick(epochs=4, amp="bf16"), seed=0)
    # after the float32 shape probe of a ready module, every training and evaluation forward ran in bf16
    assert result.amp == "bf16" and dtypes[0] == torch.float32 and set(dtypes[1:]) == {torch.bfloat16}
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.3
    assert result.val_acc > 0.6
    assert result.to_dict()["amp"] == "bf16"


def test_explicit_compile_runs_the_compiled_model_and_learns_on_cpu(synthetic) -> None:
    # aot_eager: TorchDynamo captures forward and backward graphs as Inductor would, without a minute
    # of C++ code generation on this CPU; the eager and compiled runs must give the same losses.
    torch.manual_seed(0)
    compiled = train(tiny_net(), synthetic, quick(epochs=3, amp="bf16", compile=True, compile_backend="aot_eager"),
                     seed=0)
    torch.manual_seed(0)
    eager = train(tiny_net(), synthetic, quick(epochs=3, amp="bf16"), seed=0)
    assert compiled.compiled and not eager.compiled and compiled.amp == "bf16"
    losses = [h["train_loss"] for h in compiled.history]
    assert losses[-1] < losses[0] - 0.3 and compiled.val_acc > 0.6
    assert losses == pytest.approx([h["train_loss"] for h in eager.history], rel=1e-3)
    with pytest.raises(ConfigError, match="compile_backend must be one of inductor, aot_eager, eager, cudagraphs"):
        TrainConfig(compile_backend="tvm")
