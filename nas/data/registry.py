"""``NAME[:PATH]`` dataset specs: parsing, the registry of known names, and :func:`load_dataset`.

``cifar10``, ``cifar100`` and ``fashion_mnist`` without a PATH are fetched into the cache by
:mod:`nas.data.fetch`; with one they are read from there, as every other format is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from nas.data.dataset import ImageDataset
from nas.data.fetch import SOURCES, fetch
from nas.data.readers import (LAYOUTS, make_synthetic, read_cifar, read_fashion_mnist, read_imagefolder,
                              read_mnist5k, read_npz)
from nas.errors import DataError, closest

__all__ = ["DataSpec", "DATASETS", "parse_data_spec", "load_dataset"]

# Known names and whether a PATH may follow the colon. The names in nas.data.fetch.SOURCES (cifar10,
# cifar100, fashion_mnist) are fetched into the cache when no PATH is given; the others need theirs.
DATASETS: dict[str, bool] = {
    "mnist5k": False,
    "cifar10": True,
    "cifar100": True,
    "fashion_mnist": True,
    "imagefolder": True,
    "npz": True,
    "synthetic": False,
}

# Size imagefolder images are resized to when the caller does not say (the 32x32 presets' size).
DEFAULT_FOLDER_SIZE = 32


@dataclass(frozen=True)
class DataSpec:
    """A parsed ``NAME[:PATH]``."""

    name: str
    path: Path | None = None

    def __str__(self) -> str:
        return self.name if self.path is None else f"{self.name}:{self.path}"


def parse_data_spec(spec: str) -> DataSpec:
    """Split ``NAME[:PATH]`` and check the name and whether a path belongs to it."""
    text = str(spec).strip()
    name, sep, path = text.partition(":")
    name = name.strip().lower()
    known = ", ".join(DATASETS)
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}{closest(name, DATASETS)}; known: {known} "
                        f"(as NAME or NAME:PATH)")
    needs_path = DATASETS[name]
    if needs_path and not path and name not in SOURCES:
        raise DataError(f"dataset {name} needs a path, as {name}:PATH; expected at PATH: {LAYOUTS[name]}")
    if not needs_path and sep:
        raise DataError(f"dataset {name} takes no path (got {text!r}); it is {LAYOUTS[name]}")
    return DataSpec(name, Path(path).expanduser() if path else None)


def load_dataset(spec: str | DataSpec, *, seed: int = 0, val_fraction: float = 0.2,
                 image_size: int | None = None) -> ImageDataset:
    """Read a dataset from its ``NAME[:PATH]`` spec.

    ``seed`` drives the train/val split where the source has none (mnist5k, imagefolder, npz) so a
    study can hold the split fixed; ``image_size`` only matters for image folders, whose files have
    arbitrary sizes and are resized once on reading (other sets keep their native size and are fitted
    to a genome by :func:`nas.data.fit_images` when training).
    """
    ds = spec if isinstance(spec, DataSpec) else parse_data_spec(spec)
    if ds.name == "mnist5k":
        return read_mnist5k(seed=seed, val_fraction=val_fraction)
    if ds.name == "synthetic":
        return make_synthetic()
    path = ds.path if ds.path is not None else fetch(ds.name)  # parse_data_spec lets only SOURCES go without
    if ds.name in ("cifar10", "cifar100"):
        return read_cifar(path, hundred=ds.name == "cifar100")
    if ds.name == "fashion_mnist":
        return read_fashion_mnist(path)
    if ds.name == "imagefolder":
        return read_imagefolder(path, image_size=image_size or DEFAULT_FOLDER_SIZE, seed=seed,
                                val_fraction=val_fraction)
    return read_npz(path, seed=seed, val_fraction=val_fraction)
