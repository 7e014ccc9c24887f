"""Mixup, CutMix and random erasing: what they do to a batch and its targets, and that training runs with them."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from nas.data import load_dataset
from nas.errors import ConfigError
from nas.train import TrainConfig, train
from nas.train.mixing import BatchMixer, random_erase


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.stack([torch.full((3, 8, 8), float(i)) for i in range(4)])  # image i is constant i
    return x, torch.tensor([0, 1, 2, 3])


def test_mixup_blends_each_image_with_its_partner_and_the_labels_alike() -> None:
    x, y = _batch()
    mixed, targets = BatchMixer(4, mixup_alpha=0.8)(x, y, torch.Generator().manual_seed(0))
    lam = float(targets[0, 0])  # image 0 keeps weight lam, its partner (image 3) 1 - lam
    assert 0 < lam < 1 and targets[0, 3] == pytest.approx(1 - lam)
    assert torch.allclose(mixed[0], torch.full((3, 8, 8), 3 * (1 - lam)))
    assert torch.allclose(targets.sum(1), torch.ones(4))


def test_cutmix_pastes_a_box_and_weights_labels_by_its_area() -> None:
    x, y = _batch()
    mixed, targets = BatchMixer(4, cutmix_alpha=1.0)(x, y, torch.Generator().manual_seed(3))
    pasted = float((mixed[0, 0] == 3).float().mean())  # fraction of image 0 taken from image 3
    assert set(mixed[0].unique().tolist()) <= {0.0, 3.0}
    assert targets[0, 3] == pytest.approx(pasted) and targets[0, 0] == pytest.approx(1 - pasted)


def test_random_erasing_fills_boxes_with_noise_at_the_asked_rate() -> None:
    x = torch.zeros(400, 3, 16, 16)
    out = random_erase(x, 0.25, torch.Generator().manual_seed(0))
    erased = (out != 0).flatten(1).any(1)
    assert 0.17 < float(erased.float().mean()) < 0.33 and torch.equal(x, torch.zeros_like(x))
    area = (out[erased, 0] != 0).flatten(1).float().mean(1)
    assert float(area.min()) >= 0.01 and float(area.max()) <= 0.4  # boxes of 2%-33% of the image
    assert random_erase(x, 0.0, torch.Generator()) is x


def test_training_with_the_imagenet_regularisers_learns() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.BatchNorm2d(16), nn.GELU(), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(64, 10))
    config = TrainConfig(epochs=3, batch_size=64, lr=1e-2, warmup_epochs=0.5, device="cpu", mixup_alpha=0.8,
                         cutmix_alpha=1.0, random_erasing=0.25)
    result = train(net, load_dataset("synthetic"), config, seed=0)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"] - 0.3 and result.val_acc > 0.6
    with pytest.raises(ConfigError, match=r"random_erasing must be a number in \[0, 1\]"):
        TrainConfig(random_erasing=1.5)
    with pytest.raises(ConfigError, match="mixup_alpha must be a number >= 0"):
        TrainConfig(mixup_alpha=-1)
