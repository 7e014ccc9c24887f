"""The fixed batch every proxy scores on: a seeded draw of training images, normalised as in training."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nas.errors import DataError

__all__ = ["ProxyBatch", "proxy_batch"]


@dataclass(frozen=True, eq=False)  # tensors: identity, not elementwise, comparison
class ProxyBatch:
    """Images ``x`` float ``[B, C, H, W]`` (normalised with the training split's mean and std) and
    labels ``y`` int64 ``[B]``, with the number of classes the network must output."""

    x: Any  # torch.Tensor [B, C, H, W] float32
    y: Any  # torch.Tensor [B] int64
    num_classes: int

    @property
    def size(self) -> int:
        return int(self.x.shape[0])

    @property
    def channels(self) -> int:
        return int(self.x.shape[1])

    @property
    def image_size(self) -> int:
        return int(self.x.shape[-1])


def proxy_batch(data: Any, size: int, *, seed: int = 0, image_size: int | None = None) -> ProxyBatch:
    """``size`` training images of ``data`` (an :class:`~nas.data.ImageDataset`) picked by a seeded
    permutation, brought to ``image_size`` (default: the dataset's) and normalised exactly as the
    training loader does, so that a proxy sees what the first training step will see.

    The draw uses its own generator: the caller's random state is left alone.
    """
    import torch

    from nas.data import fit_images

    if isinstance(size, bool) or not isinstance(size, int) or size < 2:
        raise DataError(f"proxy batch size must be a whole number >= 2 (NASWOT compares images pairwise), "
                        f"got {size!r}")
    n = len(data)
    if size > n:
        raise DataError(f"proxy batch size {size} exceeds the {n} training images of {data.name}")
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))[:size]
    x = fit_images(data.x_train[pick], int(image_size or data.image_size)).float()  # [B, C, H, W]
    mean = torch.tensor(list(data.mean), dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor(list(data.std), dtype=torch.float32).view(1, -1, 1, 1)
    x = (x / 255.0 - mean) / std
    return ProxyBatch(x=x, y=data.y_train[pick].clone(), num_classes=int(data.num_classes))
