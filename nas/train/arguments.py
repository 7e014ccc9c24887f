"""The arguments of :func:`nas.train.train` as a notebook user passes them, checked in one place.

A user types ``train(genome, "npz:x.npz", {"epochs": 1})`` or ``train(genome, Path("x.npz"))``; those
are accepted (a mapping becomes a :class:`TrainConfig`, a ``.npz`` path an ``npz:`` spec). Anything
else is a :class:`~nas.errors.NasError` naming the argument, what it got and what is allowed, instead
of an ``AttributeError`` from deep inside the loop.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import ConfigError, DataError
from nas.fields import SEED_MAX, integer, show

__all__ = ["train_config", "train_seed", "data_spec"]


def train_config(config: Any) -> Any:
    """``None`` (the defaults), a :class:`TrainConfig`, or a mapping of its fields."""
    from nas.train.config import TrainConfig

    if config is None:
        return TrainConfig()
    if isinstance(config, TrainConfig):
        return config
    if isinstance(config, Mapping):
        return TrainConfig.from_dict(dict(config))
    raise ConfigError(f"train(config): config must be a TrainConfig, a mapping of its fields such as "
                      f"{{'epochs': 1}}, or None, got {type(config).__name__} {show(config)}")


def train_seed(seed: Any) -> int:
    """A whole number in ``[0, 2^32 - 1]`` (numpy's and torch's generators take no other)."""
    return integer("train(seed): seed", seed, minimum=0, maximum=SEED_MAX, text=True, error=ConfigError)


def data_spec(data: Any) -> Any:
    """An :class:`ImageDataset` as it is, else the spec :func:`nas.data.load_dataset` reads.

    A ``str`` is a ``NAME[:PATH]`` spec; a ``Path`` (or a ``str`` naming an existing ``.npz`` file) is
    read by its suffix: ``.npz`` files are ``npz:PATH``; a folder must say which reader it is for.
    """
    from nas.data.dataset import ImageDataset
    from nas.data.registry import DataSpec

    if isinstance(data, (ImageDataset, DataSpec)):
        return data
    if isinstance(data, (str, os.PathLike)):
        path = Path(data)
        if isinstance(data, str) and ":" in data:
            return data
        if path.suffix.lower() == ".npz":
            return f"npz:{path}"
        if isinstance(data, str) and not path.exists():
            return data  # a dataset name ('mnist5k', 'synthetic'); unknown names are refused by load_dataset
        if path.is_dir():
            raise DataError(f"train(data): {path} is a folder; say which reader it is for, e.g. "
                            f"'imagefolder:{path}' or 'cifar10:{path}'")
        raise DataError(f"train(data): {path} is not an .npz file; give a spec such as 'npz:FILE', "
                        f"'imagefolder:DIR' or 'mnist5k'")
    raise DataError(f"train(data): data must be an ImageDataset or a data spec (str, Path or DataSpec, e.g. "
                    f"'mnist5k' or 'npz:x.npz'), got {type(data).__name__} {show(data)}")
