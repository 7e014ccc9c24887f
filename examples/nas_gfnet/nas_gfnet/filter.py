"""GFNet's global filter layer (Rao et al., "Global Filter Networks for Image Classification", NeurIPS 2021).

``y = IFFT2(FFT2(Norm(x)) * K)``: a learned complex filter ``K`` of shape ``[H, W//2 + 1, C]`` multiplies
the 2-D Fourier transform of every channel, i.e. a depthwise convolution whose kernel spans the whole
image, at ``O(HW log HW)`` instead of attention's ``O((HW)^2)``. As in raoyongming/GFNet
(``GlobalFilter``), the filter starts at ``N(0, 0.02^2)`` and the transforms use ``norm="ortho"``.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from nas.layers.grid import Grid, split_prefix


class GlobalFilter(nn.Module):
    """The nas mixer contract: ``(dim, *, in_dim, grid, stride, ...)``, ``[B, N, C] -> [B, N, C]``; its own pre-norm."""

    def __init__(self, dim: int, *, grid: Grid, fft_norm: str = "ortho", init_std: float = 0.02, **_: object) -> None:
        super().__init__()
        self.grid = grid
        self.fft_norm = fft_norm
        self.norm = nn.LayerNorm(dim)
        # [H, W//2 + 1, C, (real, imaginary)]: rfft2 keeps half the columns of a real signal's spectrum
        self.weight = nn.Parameter(torch.randn(grid.h, grid.w // 2 + 1, dim, 2) * init_std)

    def forward(self, x: Tensor) -> Tensor:  # [B, P + H*W, C] -> [B, P + H*W, C]
        x = self.norm(x)
        prefix, spatial = split_prefix(x, self.grid)
        b, _, c = spatial.shape
        fmap = spatial.reshape(b, self.grid.h, self.grid.w, c).float()  # [B, H, W, C]
        freq = torch.fft.rfft2(fmap, dim=(1, 2), norm=self.fft_norm)  # [B, H, W//2 + 1, C], complex
        freq = freq * torch.view_as_complex(self.weight)
        y = torch.fft.irfft2(freq, s=(self.grid.h, self.grid.w), dim=(1, 2), norm=self.fft_norm)
        y = y.reshape(b, -1, c).to(x.dtype)  # [B, H*W, C]
        if self.grid.prefix:  # the cls token takes no part in the filter: zero update
            y = torch.cat([torch.zeros_like(prefix), y], dim=1)
        return y
