"""On-device RandomResizedCrop and RandAugment (nas.train.augment, nas.train.randaugment)."""
from __future__ import annotations

import argparse

import pytest
import torch

from nas.errors import ConfigError
from nas.train import TrainConfig
from nas.train.augment import PaperAugment, crop_boxes, random_resized_crop, resized_crop
from nas.train.randaugment import OPS, RandAugmentSpec, parse_randaugment, rand_augment

_MAGNITUDE_OPS = ("Rotate", "Solarize", "SolarizeAdd", "Color", "Contrast", "Brightness", "Sharpness",
                  "ShearX", "ShearY", "TranslateX", "TranslateY")  # identity at magnitude 0 in timm's set


def _images(b: int = 6, c: int = 3, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(b, c, size, size, generator=torch.Generator().manual_seed(seed))


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _apply(x: torch.Tensor, op: str, m: float = 9.0, seed: int = 0, fill: torch.Tensor | None = None) -> torch.Tensor:
    """``op`` applied once to every image at magnitude ``m`` without noise (the sign is drawn per image)."""
    return rand_augment(x, RandAugmentSpec(m=m, n=1, mstd=0.0, prob=1.1), _gen(seed), fill=fill, ops=(op,))


# -- RandomResizedCrop ---------------------------------------------------------------------------------
def test_crop_keeps_shape_dtype_and_device() -> None:
    x = _images().double()
    out = random_resized_crop(x, _gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert random_resized_crop(x, _gen(), size=(8, 12)).shape == (6, 3, 8, 12)


def test_full_scale_square_ratio_is_the_identity() -> None:
    x = _images()
    out = random_resized_crop(x, _gen(), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.allclose(out, x, atol=1e-5)


def test_a_crop_lands_on_the_expected_pixels() -> None:
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).view(2, 3, 8, 8)
    boxes = torch.tensor([[2.0, 3.0, 4.0, 4.0], [0.0, 1.0, 6.0, 3.0]])  # top, left, height, width
    out = resized_crop(x, boxes, (4, 4))
    assert torch.allclose(out[0], x[0, :, 2:6, 3:7], atol=1e-4)
    # a 6x3 box shrunk to 3 rows and kept at 3 columns: rows 2 apart, averaged in pairs by bilinear
    out = resized_crop(x, boxes, (3, 3))
    expected = (x[1, :, 0:6:2, 1:4] + x[1, :, 1:6:2, 1:4]) / 2
    assert torch.allclose(out[1], expected, atol=1e-4)


def test_boxes_follow_torchvisions_rules() -> None:
    boxes = crop_boxes(4000, 32, 48, (0.08, 1.0), (3 / 4, 4 / 3), _gen(1))
    top, left, h, w = boxes.unbind(1)
    assert (h >= 1).all() and (w >= 1).all() and (top + h <= 32).all() and (left + w <= 48).all()
    area = h * w / (32 * 48)
    assert area.min() < 0.15 and area.max() > 0.8  # the whole scale range is reached
    # an impossible request (every try too large) falls back to the central crop of the largest ratio
    fallback = crop_boxes(3, 10, 40, (1.0, 1.0), (1.0, 1.0), _gen())
    assert fallback.tolist() == [[0.0, 15.0, 10.0, 10.0]] * 3


# -- RandAugment -----------------------------------------------------------------------------------------
def test_randaugment_keeps_shape_dtype_range() -> None:
    x = _images(8)
    out = rand_augment(x, RandAugmentSpec(m=9, n=2, mstd=0.5), _gen())
    assert out.shape == x.shape and out.dtype == x.dtype and out.device == x.device
    assert out.min() >= 0 and out.max() <= 1 and not torch.equal(out, x)


def test_magnitude_zero_is_the_identity_for_magnitude_ops() -> None:
    x = _images(16)
    out = rand_augment(x, RandAugmentSpec(m=0, n=3, prob=1.1), _gen(), ops=_MAGNITUDE_OPS)
    assert torch.allclose(out, x, atol=1e-5)


def test_seeded_determinism() -> None:
    x = _images(8)
    spec = RandAugmentSpec(m=9, n=2, mstd=0.5)
    assert torch.equal(rand_augment(x, spec, _gen(3)), rand_augment(x, spec, _gen(3)))
    assert not torch.equal(rand_augment(x, spec, _gen(3)), rand_augment(x, spec, _gen(4)))


def test_unselected_images_are_untouched() -> None:
    x = _images(32)
    out = rand_augment(x, RandAugmentSpec(m=9, n=1, prob=0.5), _gen(), ops=("Brightness", "Rotate"))
    same = (out == x).flatten(1).all(1)
    assert 5 < int(same.sum()) < 27  # about half the images drew "not applied"


def test_brightness_contrast_color_sharpness_directions() -> None:
    x = 0.25 + 0.5 * _images(64)  # room to move both ways without clipping
    for op in ("Brightness", "Contrast", "Color", "Sharpness"):
        out = _apply(x, op, seed=5)
        if op == "Brightness":
            up = out.mean((1, 2, 3)) > x.mean((1, 2, 3))
            down = out.mean((1, 2, 3)) < x.mean((1, 2, 3))
        elif op == "Contrast":
            up, down = out.std((1, 2, 3)) > x.std((1, 2, 3)), out.std((1, 2, 3)) < x.std((1, 2, 3))
        elif op == "Color":  # saturation: spread across channels
            up, down = out.std(1).mean((1, 2)) > x.std(1).mean((1, 2)), out.std(1).mean((1, 2)) < x.std(1).mean((1, 2))
        else:  # sharpness: high-frequency energy
            def hf(t: torch.Tensor) -> torch.Tensor:
                return (t[..., 1:, :] - t[..., :-1, :]).abs().mean((1, 2, 3))
            up, down = hf(out) > hf(x), hf(out) < hf(x)
        assert (up | down).all(), op  # every image moved one way or the other...
        assert up.any() and down.any(), op  # ...and both signs occur


def test_solarize_inverts_values_above_threshold() -> None:
    x = torch.linspace(0, 1, 256).view(1, 1, 16, 16).repeat(2, 3, 1, 1)
    out = _apply(x, "Solarize", m=5)  # threshold 256 - 128 = 128
    high = x * 255 >= 127.5
    assert torch.allclose(out[high], 1 - x[high]) and torch.equal(out[~high], x[~high])


def test_posterize_invert_autocontrast_equalize() -> None:
    x = 0.2 + 0.5 * _images(4)
    out = _apply(x, "Posterize", m=5)  # 4 - 2 = 2 bits kept
    assert (torch.round(out * 255) % 64 == 0).all() and not torch.allclose(out, x, atol=0.05)
    assert torch.allclose(_apply(x, "Invert"), 1 - x)
    stretched = _apply(x, "AutoContrast")
    assert torch.allclose(stretched.amin((2, 3)), torch.zeros(4, 3)) and torch.allclose(stretched.amax((2, 3)), torch.ones(4, 3))
    big = 0.2 + 0.5 * _images(2, size=32)  # PIL leaves images with fewer than ~2 pixels per level alone
    eq = _apply(big, "Equalize")
    hist = torch.histc(eq[0, 0], bins=4, min=0, max=1)
    assert hist.min() > 0.15 * hist.sum()  # a flat histogram after equalization
    order = big[0, 0].flatten().argsort()
    assert (eq[0, 0].flatten()[order].diff() >= 0).all()  # monotone in the input


def test_geometric_ops_move_content() -> None:
    x = torch.zeros(1, 1, 16, 16)
    x[..., 7:9, 2:4] = 1.0  # a bright block left of the centre
    moved = rand_augment(x, RandAugmentSpec(m=10, n=1, prob=1.1), _gen(0), ops=("TranslateX",), fill=torch.zeros(1))
    cols = moved[0, 0].sum(0).nonzero().flatten().float().mean()
    assert abs(abs(cols - 2.5) - 7.2) < 0.6  # 0.45 x 16 pixels either way (the mass may leave the image)
    rotated = _apply(x, "Rotate", m=10, fill=torch.zeros(1))
    assert torch.isclose(rotated.sum(), x.sum(), rtol=0.1) and not torch.allclose(rotated, x)
    border = rand_augment(torch.zeros(1, 3, 8, 8), RandAugmentSpec(m=10, n=1, prob=1.1), _gen(), ops=("TranslateY",),
                          fill=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.allclose(border[0, :, :, 0].amax(1), torch.tensor([0.1, 0.2, 0.3]))  # uncovered rows take fill


@pytest.mark.parametrize("text, spec", [("m9-mstd0.5-n2", RandAugmentSpec(9, 2, 0.5)),
                                        ("rand-m9-mstd0.5-inc1", RandAugmentSpec(9, 2, 0.5)),
                                        ("m15-n2", RandAugmentSpec(15, 2, 0.0))])
def test_parse(text: str, spec: RandAugmentSpec) -> None:
    assert parse_randaugment(text) == spec


@pytest.mark.parametrize("bad", ["m9-x3", "m40", "n0", "m9-m8", "n1.5"])
def test_parse_errors_name_the_field(bad: str) -> None:
    with pytest.raises(ConfigError, match="randaugment"):
        TrainConfig(randaugment=bad)


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="rrc_scale_min"):
        TrainConfig(rrc_scale_min=0.0)
    with pytest.raises(ConfigError, match="rrc_max_ratio"):
        TrainConfig(rrc_max_ratio=0.5)
    assert PaperAugment.from_config(TrainConfig(), (0.5,), (0.5,), device="cpu", seed=0) is None


def test_paper_augment_on_normalised_batches() -> None:
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    cfg = TrainConfig(rrc_scale_min=0.08, randaugment="m9-mstd0.5-n2")
    x = ((_images(8) - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1))
    x = x.contiguous(memory_format=torch.channels_last)
    a, b = (PaperAugment.from_config(cfg, mean, std, device="cpu", seed=7) for _ in range(2))
    out = a(x)
    assert out.shape == x.shape and out.dtype == x.dtype and out.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(out, b(x)) and not torch.allclose(out, x)
    lo = (0 - torch.tensor(mean)) / torch.tensor(std)
    assert (out.amin((0, 2, 3)) >= lo - 1e-4).all()  # still the image of [0, 1] pixels


def test_paper_recipe_shows_the_fields() -> None:
    from nas.cli.train import _config
    from nas.genome import load_genome

    args = argparse.Namespace(spec="deit_tiny", recipe="paper", config=None, epochs=None, seconds=None,
                              batch_size=None, lr=None, subset=None, device=None, save=None)
    cfg = _config(args, load_genome("deit_tiny")).to_dict()
    assert cfg["rrc_scale_min"] == 0.08 and cfg["randaugment"] == "m9-mstd0.5-n2"
    assert set(OPS) >= {"Rotate", "Equalize", "Invert"}


def test_training_applies_it_only_when_set() -> None:
    from nas.data import load_dataset
    from nas.train import train

    data = load_dataset("synthetic")
    torch.set_num_threads(1)

    def first_batch(**fields: object) -> tuple[torch.Tensor, float]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Conv2d(data.channels, 4, 4, stride=4), torch.nn.Flatten(), torch.nn.LazyLinear(data.num_classes))
        seen: list[torch.Tensor] = []
        net[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].detach().clone()) if net.training else None)
        cfg = TrainConfig(epochs=1, batch_size=32, subset=32, val_subset=32, device="cpu", **fields)
        loss = train(net, data, cfg, seed=0).train_loss
        return next(t for t in seen if len(t) == 32), loss

    plain, plain_loss = first_batch()
    again, again_loss = first_batch()
    augmented, aug_loss = first_batch(rrc_scale_min=0.08, randaugment="m9-mstd0.5-n2")
    repeat, repeat_loss = first_batch(rrc_scale_min=0.08, randaugment="m9-mstd0.5-n2")
    assert torch.equal(plain, again) and torch.equal(augmented, repeat) and aug_loss == repeat_loss
    assert augmented.shape == plain.shape and not torch.allclose(augmented, plain)
