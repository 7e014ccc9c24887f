"""Datasets: every format read back from files written here, the mnist5k split, fitting, the loader."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import (
    DeviceLoader,
    augment_batch,
    channel_stats,
    fit_images,
    load_dataset,
    parse_data_spec,
    stratified_split,
)
from nas.errors import DataError

RNG = np.random.default_rng(0)


# -- specs ------------------------------------------------------------------------------------------
def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(DataError, match=r"unknown dataset 'mnist5'; did you mean 'mnist5k'\?; known: mnist5k, "
                                        r"cifar10"):
        parse_data_spec("mnist5")


def test_path_rules() -> None:
    with pytest.raises(DataError, match=r"dataset npz needs a path, as npz:PATH; expected at PATH: an .npz file"):
        parse_data_spec("npz")
    assert parse_data_spec("cifar10").path is None  # fetched by name (tests/test_fetch.py)
    with pytest.raises(DataError, match="dataset mnist5k takes no path"):
        parse_data_spec("mnist5k:/tmp/x")
    spec = parse_data_spec("npz:/data/set.npz")
    assert spec.name == "npz" and spec.path == Path("/data/set.npz")


# -- mnist5k and synthetic --------------------------------------------------------------------------
def test_mnist5k_split_is_stratified_and_seeded() -> None:
    a = load_dataset("mnist5k", seed=0)
    assert a.x_train.shape == (4000, 1, 28, 28) and a.x_val.shape == (1000, 1, 28, 28)
    assert a.x_train.dtype == torch.uint8 and a.y_train.dtype == torch.int64
    assert a.num_classes == 10 and a.channels == 1 and a.image_size == 28 and a.flip is False
    assert torch.bincount(a.y_val, minlength=10).tolist() == [100] * 10  # 20% of every class
    assert torch.bincount(a.y_train, minlength=10).tolist() == [400] * 10
    assert 0.1 < a.mean[0] < 0.16 and 0.25 < a.std[0] < 0.35  # MNIST: ~0.13 / ~0.31
    b = load_dataset("mnist5k", seed=0)
    assert torch.equal(a.x_val, b.x_val) and torch.equal(a.y_train, b.y_train)
    c = load_dataset("mnist5k", seed=1)
    assert not torch.equal(a.y_val, c.y_val)
    assert torch.bincount(c.y_val, minlength=10).tolist() == [100] * 10
    assert a.y_train[:50].unique().numel() > 5  # shuffled, not sorted by class


def test_synthetic_is_small_fixed_and_class_dependent() -> None:
    a, b = load_dataset("synthetic"), load_dataset("synthetic", seed=3)
    assert a.x_train.shape == (512, 3, 32, 32) and a.x_val.shape == (128, 3, 32, 32) and a.num_classes == 10
    assert torch.equal(a.x_train, b.x_train)
    means = torch.stack([a.x_train[a.y_train == k].float().mean(0) for k in range(10)])  # [K, C, H, W]
    assert (means[0] - means[1]).abs().mean() > 20  # classes differ well beyond the noise


def test_stratified_split_keeps_every_class_on_both_sides() -> None:
    y = np.repeat(np.arange(3), [10, 5, 2])
    tr, va = stratified_split(y, 0.2, seed=0)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(17))
    assert set(y[va]) == {0, 1, 2} and set(y[tr]) == {0, 1, 2}
    with pytest.raises(DataError, match=r"val_fraction must be in \(0, 1\), got 1.5"):
        stratified_split(y, 1.5, seed=0)


# -- CIFAR ------------------------------------------------------------------------------------------
def _write_batch(path: Path, n: int, label_key: bytes, classes: int) -> tuple[np.ndarray, list[int]]:
    data = RNG.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    labels = RNG.integers(0, classes, size=n).tolist()
    doc = {b"batch_label": b"x", label_key: labels, b"data": data}
    if label_key == b"fine_labels":
        doc[b"coarse_labels"] = [k // 5 for k in labels]
    path.write_bytes(pickle.dumps(doc))
    return data, labels


def test_cifar10_batches(tmp_path: Path) -> None:
    root = tmp_path / "cifar-10-batches-py"
    root.mkdir()
    parts = [_write_batch(root / f"data_batch_{i}", 4, b"labels", 10) for i in range(1, 6)]
    test = _write_batch(root / "test_batch", 3, b"labels", 10)
    ds = load_dataset(f"cifar10:{tmp_path}")  # the parent of the extracted folder works too
    assert ds.x_train.shape == (20, 3, 32, 32) and ds.x_val.shape == (3, 3, 32, 32)
    assert ds.num_classes == 10 and ds.flip is True
    assert np.array_equal(ds.x_train[4].numpy(), parts[1][0][0].reshape(3, 32, 32))  # row-major RGB planes
    assert ds.y_train.tolist() == sum((p[1] for p in parts), [])
    assert ds.y_val.tolist() == test[1]


def test_cifar100_train_test(tmp_path: Path) -> None:
    _, y_tr = _write_batch(tmp_path / "train", 6, b"fine_labels", 100)
    x_te, y_te = _write_batch(tmp_path / "test", 2, b"fine_labels", 100)
    ds = load_dataset(f"cifar100:{tmp_path}")
    assert ds.num_classes == 100 and ds.x_train.shape == (6, 3, 32, 32)
    assert ds.y_train.tolist() == y_tr and ds.y_val.tolist() == y_te  # fine labels, not coarse
    assert np.array_equal(ds.x_val.numpy().reshape(2, -1), x_te)


def test_cifar_missing_and_corrupt_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"cifar10: no such directory: .*nowhere; expected a directory with "
                                        r"data_batch_1 \.\. data_batch_5 and test_batch"):
        load_dataset(f"cifar10:{tmp_path / 'nowhere'}")
    for i in (1, 2):
        _write_batch(tmp_path / f"data_batch_{i}", 2, b"labels", 10)
    with pytest.raises(DataError, match=r"cifar10: missing file: .*data_batch_3; expected"):
        load_dataset(f"cifar10:{tmp_path}")
    (tmp_path / "train").write_bytes(b"not a pickle at all")
    with pytest.raises(DataError, match=r"cifar100: cannot read .*train as a CIFAR python batch"):
        load_dataset(f"cifar100:{tmp_path}")
    (tmp_path / "train").write_bytes(pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"fine_labels": [0, 1]}))
    with pytest.raises(DataError, match=r"expected uint8 \[N, 3072\]"):
        load_dataset(f"cifar100:{tmp_path}")


def test_cifar_pickles_cannot_run_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):  # noqa: D105 - a pickle that would call os.system
            import os

            return (os.system, ("true",))

    (tmp_path / "train").write_bytes(pickle.dumps({b"data": Evil(), b"fine_labels": []}))
    with pytest.raises(DataError, match="refusing to load"):
        load_dataset(f"cifar100:{tmp_path}")


# -- image folders ----------------------------------------------------------------------------------
def _png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def test_imagefolder_rgb_resized_with_class_names(tmp_path: Path) -> None:
    for k, cls in enumerate(("cat", "dog")):
        for i in range(5):
            side = 8 if i % 2 else 12  # mixed sizes: all end up at image_size
            _png(tmp_path / cls / f"{i}.png", np.full((side, side, 3), 40 + 100 * k, np.uint8))
    ds = load_dataset(f"imagefolder:{tmp_path}", image_size=16)
    assert ds.class_names == ("cat", "dog") and ds.num_classes == 2 and ds.channels == 3
    assert ds.x_train.shape[1:] == (3, 16, 16) and len(ds.x_train) + len(ds.x_val) == 10
    assert len(ds.x_val) == 2 and sorted(ds.y_val.tolist()) == [0, 1]  # stratified
    for x, y in zip(ds.x_train, ds.y_train):
        assert int(x.float().mean().round()) == 40 + 100 * int(y)  # label follows the folder


def test_imagefolder_grey_and_train_val_dirs(tmp_path: Path) -> None:
    for split, n in (("train", 3), ("val", 2)):
        for cls in ("a", "b", "c"):
            for i in range(n):
                _png(tmp_path / split / cls / f"{i}.png", RNG.integers(0, 256, (10, 10), dtype=np.uint8))
    ds = load_dataset(f"imagefolder:{tmp_path}", image_size=10)
    assert ds.channels == 1 and ds.x_train.shape == (9, 1, 10, 10) and ds.x_val.shape == (6, 1, 10, 10)
    assert ds.class_names == ("a", "b", "c")


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"imagefolder: no class folders with images: .*; expected a directory "
                                        r"with one sub-folder of images per class"):
        load_dataset(f"imagefolder:{tmp_path}")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DataError, match=r"imagefolder: cannot read image .*broken\.png"):
        load_dataset(f"imagefolder:{tmp_path}")


# -- npz --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_npz_layouts(tmp_path: Path, layout: str) -> None:
    x = RNG.integers(0, 256, size=(20, 3, 8, 8), dtype=np.uint8)  # NCHW reference
    y = np.arange(20) % 4
    stored = x.transpose(0, 2, 3, 1) if layout == "NHWC" else x
    np.savez(tmp_path / "d.npz", x=stored, y=y)
    ds = load_dataset(f"npz:{tmp_path / 'd.npz'}", val_fraction=0.2)
    assert ds.x_train.shape == (16, 3, 8, 8) and ds.x_val.shape == (4, 3, 8, 8) and ds.num_classes == 4
    every = torch.cat([ds.x_train, ds.x_val]).numpy()
    labels = torch.cat([ds.y_train, ds.y_val]).numpy()
    for img, lab in zip(every, labels):  # each image is one of the originals, with its own label
        match = [i for i in range(20) if np.array_equal(x[i], img)]
        assert len(match) == 1 and y[match[0]] == lab


def test_npz_grey_with_explicit_val(tmp_path: Path) -> None:
    np.savez(tmp_path / "g.npz", x=np.zeros((6, 12, 12), np.uint8), y=np.arange(6) % 2,
             x_val=np.zeros((2, 12, 12, 1), np.uint8), y_val=np.array([0, 1]))
    ds = load_dataset(f"npz:{tmp_path / 'g.npz'}")
    assert ds.x_train.shape == (6, 1, 12, 12) and ds.x_val.shape == (2, 1, 12, 12) and ds.channels == 1


def test_npz_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"npz: no such file: .*absent\.npz; expected an \.npz file with arrays x"):
        load_dataset(f"npz:{tmp_path / 'absent.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"nope")
    with pytest.raises(DataError, match=r"npz: cannot read .*junk\.npz"):
        load_dataset(f"npz:{tmp_path / 'junk.npz'}")
    cases = {
        "float": (dict(x=np.zeros((4, 8, 8, 3), np.float32), y=np.zeros(4, int)),
                  r"array x is float32, expected uint8"),
        "nolabels": (dict(x=np.zeros((4, 8, 8, 3), np.uint8)), r"lacks array\(s\) \['y'\]"),
        "channels": (dict(x=np.zeros((4, 8, 8, 5), np.uint8), y=np.zeros(4, int)), r"no channel axis of size 1 or 3"),
        "count": (dict(x=np.zeros((4, 8, 8, 3), np.uint8), y=np.zeros(3, int)), r"expected 4 integer labels"),
        "square": (dict(x=np.zeros((4, 8, 6, 3), np.uint8), y=np.zeros(4, int)), r"8x6 images, expected square"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **arrays)
        with pytest.raises(DataError, match=message):
            load_dataset(f"npz:{tmp_path / f'{name}.npz'}")


# -- fitting, stats, loader -------------------------------------------------------------------------
def test_fit_images_pads_digits_and_resizes_the_rest() -> None:
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    padded = fit_images(x, 32)
    assert padded.shape == (3, 1, 32, 32) and torch.equal(padded[:, :, 2:30, 2:30], x)
    assert padded[:, :, :2].sum() == 0 and padded[:, :, :, 30:].sum() == 0
    assert fit_images(x, 16).shape == (3, 1, 16, 16) and fit_images(x, 64).shape == (3, 1, 64, 64)
    flat = torch.full((2, 3, 20, 20), 77, dtype=torch.uint8)
    assert torch.all(fit_images(flat, 32) == 77)  # resizing keeps a flat image flat
    assert fit_images(x, 28) is x


def test_channel_stats_match_numpy() -> None:
    x = torch.randint(0, 256, (50, 3, 6, 6), dtype=torch.uint8)
    mean, std = channel_stats(x)
    ref = x.numpy().astype(np.float64) / 255
    assert np.allclose(mean, ref.mean(axis=(0, 2, 3))) and np.allclose(std, ref.std(axis=(0, 2, 3)))


def test_augment_crops_are_windows_of_the_padded_image() -> None:
    x = torch.randint(1, 256, (6, 2, 8, 8), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, pad=2, flip=False, generator=gen)
    assert out.shape == x.shape and out.dtype == torch.uint8
    xp = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(6):
        windows = [xp[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_only_where_allowed() -> None:
    x = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    assert torch.equal(augment_batch(x, pad=0, flip=False, generator=gen), x)  # digits: never mirrored
    out = augment_batch(x, pad=0, flip=True, generator=gen)
    mirrored = [torch.equal(o, xi.flip(-1)) for o, xi in zip(out, x)]
    same = [torch.equal(o, xi) for o, xi in zip(out, x)]
    assert all(m or s for m, s in zip(mirrored, same)) and 10 < sum(mirrored) < 54


def test_mnist_loader_never_flips_digits() -> None:
    ds = load_dataset("mnist5k")
    loader = DeviceLoader(ds.x_train[:256], ds.y_train[:256], batch_size=64, mean=ds.mean, std=ds.std,
                          shuffle=False, augment=True, flip=ds.flip, pad=0)
    plain = DeviceLoader(ds.x_train[:256], ds.y_train[:256], batch_size=64, mean=ds.mean, std=ds.std)
    for (a, _), (b, _) in zip(loader, plain):
        assert torch.equal(a, b)


def test_loader_permutes_normalizes_and_is_seeded() -> None:
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 4, 4).contiguous()
    y = torch.arange(10)
    kw = dict(batch_size=4, mean=(0.0,), std=(1 / 255,), shuffle=True)
    loader = DeviceLoader(x, y, seed=1, **kw)
    assert len(loader) == 3
    batches = list(loader)
    labels = torch.cat([b[1] for b in batches])
    assert sorted(labels.tolist()) == list(range(10)) and labels.tolist() != list(range(10))
    for xb, yb in batches:  # x * 1/(255 * std) + 0 == the raw value; images stay with their labels
        assert xb.dtype == torch.float32 and torch.equal(xb[:, 0, 0, 0], yb.float())
    again = torch.cat([b[1] for b in DeviceLoader(x, y, seed=1, **kw)])
    assert torch.equal(labels, again)
    assert len(DeviceLoader(x[:9], y[:9], **kw)) == 2  # a lone trailing image is dropped in training
    assert len(DeviceLoader(x[:9], y[:9], batch_size=4, mean=(0.0,), std=(1.0,))) == 3  # but never in eval


def test_repeated_augmentation_draws_each_image_repeats_times_in_a_row() -> None:
    x = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 4, 4).contiguous()
    y = torch.arange(12)
    loader = DeviceLoader(x, y, batch_size=6, mean=(0.0,), std=(1 / 255,), shuffle=True, repeats=3, seed=0)
    epochs = [torch.cat([b[1] for b in loader]) for _ in range(2)]
    for labels in epochs:
        assert len(labels) == 12  # an epoch keeps its length ...
        runs = labels.view(4, 3)  # ... and holds 4 distinct images, 3 copies each, side by side
        assert torch.equal(runs, runs[:, :1].expand(4, 3)) and len(set(runs[:, 0].tolist())) == 4
    assert set(epochs[0].tolist()) != set(epochs[1].tolist())  # other images the next epoch
    with pytest.raises(DataError, match="shuffled"):
        DeviceLoader(x, y, batch_size=6, mean=(0.0,), std=(1.0,), repeats=3)


def test_npz_labels_must_number_the_classes(tmp_path: Path) -> None:
    x = np.zeros((12, 8, 8), np.uint8)
    cases = {
        "stray": (np.array([0, 1, 2] * 3 + [99, 1, 2]), r"labels 99 are outside 0\.\.3 \(there are 4 distinct"),
        "huge": (np.array([0, 1] * 5 + [2_000_000_000, 1]), r"labels 2000000000 are outside 0\.\.2"),
        "negative": (np.array([0, 1] * 5 + [-3, -1]), r"negative labels \[-3, -1\]"),
        "one": (np.zeros(12, int), r"every image has label 0; a classifier needs at least 2 classes"),
    }
    for name, (y, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", x=x, y=y)
        with pytest.raises(DataError, match=rf"npz: .*{name}\.npz: .*{message}"):
            load_dataset(f"npz:{tmp_path / f'{name}.npz'}")
    np.savez(tmp_path / "empty.npz", x=np.zeros((0, 8, 8), np.uint8), y=np.zeros(0, int))
    with pytest.raises(DataError, match=r"empty\.npz: array y holds no labels .* the dataset is empty"):
        load_dataset(f"npz:{tmp_path / 'empty.npz'}")
    # a declared class count allows classes that have no image yet, and bounds the labels
    np.savez(tmp_path / "declared.npz", x=x, y=np.arange(12) % 3, num_classes=np.array(5))
    assert load_dataset(f"npz:{tmp_path / 'declared.npz'}").num_classes == 5
    np.savez(tmp_path / "over.npz", x=x, y=np.arange(12) % 3, num_classes=np.array(2))
    with pytest.raises(DataError, match=r"labels 2 are outside 0\.\.1 \(num_classes is 2\)"):
        load_dataset(f"npz:{tmp_path / 'over.npz'}")


def test_imagefolder_with_one_class_names_the_dataset(tmp_path: Path) -> None:
    for i in range(3):
        _png(tmp_path / "only" / f"{i}.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(DataError, match=rf"imagefolder: {tmp_path} has one class folder \(only\)"):
        load_dataset(f"imagefolder:{tmp_path}", image_size=8)
