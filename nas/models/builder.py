"""``build_model(genome) -> nn.Module``: a pure function from a genome to a network.

The network follows one path for every genome: stem -> (cls token, absolute positions) -> stages of
blocks -> final norm -> pool -> linear head. Stages after the first (and the first after a conv stem)
halve the grid, either with ShiftViT's patch merging (``downsample: merge``) or inside their first
block with CoAtNet's pooled shortcut (``downsample: pool``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from nas.genome.schema import Genome, Stage
from nas.layers.block import Block
from nas.layers.grid import Grid
from nas.layers.norms import make_norm
from nas.layers.registry import get_spec
from nas.layers.stems import ConvStem, PatchMerging, PatchStem
from nas.models.inputs import InputShapeError, InputTypeError, input_error

__all__ = ["VisionNet", "InputShapeError", "InputTypeError", "build_model"]

def _mixer_options(stage: Stage) -> dict[str, object]:
    """The stage's values of its mixer's own fields (as declared), passed to the mixer module."""
    return get_spec(stage.mixer).options(stage)


def _trunc_normal_conv(m: nn.Conv2d) -> None:
    """ShiftViT (microsoft/SPACH models/shiftvit.py, ``_init_weights``): trunc-normal 0.02, zero bias."""
    nn.init.trunc_normal_(m.weight, std=0.02)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


def _fan_out_conv(m: nn.Conv2d) -> None:
    """CoAtNet as timm's maxxvit.py ``_init_conv`` (EfficientNet's): N(0, sqrt(2 / fan_out)) with
    fan_out = k_h * k_w * out_channels / groups, zero bias."""
    fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
    nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
    if m.bias is not None:
        nn.init.zeros_(m.bias)


# Convolution init per ``genome.init``. ``vit`` is absent: timm's and DeiT's ViT leave the patch
# projection at PyTorch's default, as nas does without ``init``.
CONV_INITS = {"shiftvit": _trunc_normal_conv, "coatnet": _fan_out_conv}


def init_position_table_(table: Tensor, unit_scale: bool) -> None:
    """A position table: N(0, 1) ahead of attention (``unit_scale``), truncated N(0, 0.02) otherwise (see
    :meth:`VisionNet._init_weights` for why). The supernet initialises its tables with the same rule."""
    if unit_scale:
        nn.init.normal_(table, std=1.0)
    else:
        nn.init.trunc_normal_(table, std=0.02)


def init_linear_(m: nn.Linear) -> None:
    """ViT/DeiT's linear layers: truncated N(0, 0.02) weights, zero biases."""
    nn.init.trunc_normal_(m.weight, std=0.02)
    if m.bias is not None:
        nn.init.zeros_(m.bias)


class VisionNet(nn.Module):
    """The network a genome describes; same methods for every family (timm's contract)."""

    def __init__(self, genome: Genome) -> None:
        super().__init__()
        self.genome = genome
        self.input_shape = torch.Size((genome.in_channels, genome.image_size, genome.image_size))  # [C, H, W]
        prefix = 1 if genome.pool == "cls" else 0
        first = genome.stages[0]
        first_norm = get_spec(first.mixer).norm
        if genome.stem == "patch":
            stem_dim = first.dim
            self.stem: nn.Module = PatchStem(
                genome.in_channels, stem_dim, int(genome.patch_size), first_norm if genome.patch_norm else None,
                overlap=bool(genome.overlap),
            )
            side = genome.image_size // int(genome.patch_size)
        else:
            stem_dim = int(genome.stem_dim)
            self.stem = ConvStem(genome.in_channels, stem_dim, int(genome.stem_stride))
            side = genome.image_size // int(genome.stem_stride)
        grid = Grid(side, side, prefix)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, stem_dim)) if prefix else None
        self.pos_embed = nn.Parameter(torch.zeros(1, grid.tokens, stem_dim)) if genome.position == "absolute" else None

        # On the CPU so that a build under ``torch.device("meta")`` (parameter counting) still gets floats.
        rates = torch.linspace(0, genome.drop_path, genome.depth, device="cpu").tolist()
        stages: list[nn.Module] = []
        in_dim, block_index = stem_dim, 0
        for i, stage in enumerate(genome.stages):
            halves = i > 0 or genome.stem == "conv"
            layers: list[nn.Module] = []
            stride = 1
            if halves and genome.downsample == "merge":
                layers.append(PatchMerging(in_dim, stage.dim, grid, get_spec(stage.mixer).norm, bool(genome.overlap)))
                grid, in_dim = grid.halved(), stage.dim
            elif halves:
                stride = 2
            for _ in range(stage.depth):
                block = Block(
                    stage.mixer, stage.dim, in_dim=in_dim, grid=grid, stride=stride, mlp_ratio=stage.mlp_ratio,
                    drop_path=rates[block_index], layer_scale=genome.layer_scale, position=genome.position,
                    qkv_bias=genome.qkv_bias,
                    **_mixer_options(stage),
                )
                layers.append(block)
                grid, in_dim, stride = block.grid, stage.dim, 1
                block_index += 1
            stages.append(nn.Sequential(*layers))
        self.stages = nn.ModuleList(stages)
        self.grid = grid
        self.norm = make_norm(get_spec(genome.stages[-1].mixer).norm, in_dim)
        # CoAtNet/MaxViT head: a pre-logits Linear + tanh after pooling, then the classifier.
        self.pre_logits: nn.Module = (
            nn.Sequential(nn.Linear(in_dim, genome.head_hidden), nn.Tanh()) if genome.head_hidden else nn.Identity()
        )
        self.head = nn.Linear(genome.head_hidden or in_dim, genome.num_classes)
        self.num_features = in_dim
        self._init_weights()

    def _init_weights(self) -> None:
        # Ahead of an attention stage the position table starts at unit scale, N(0, 1), as in the seed
        # code (vit-pytorch's ``torch.randn``), not at timm's 0.02: patch tokens leave the stem with a
        # scale of about 0.5, so a 0.02 table is lost in the first pre-norm, a digit's identical blank
        # patches cannot be told apart, and a short run spends its first epochs learning where tokens
        # are. On mnist5k over 5 epochs (seed 0), vit_cifar reached 0.796 with 0.02 and 0.934 with
        # N(0, 1), deepvit_cifar 0.829 and 0.960 (benchmarks/train_presets.py). Convolution and shift
        # see positions through their neighbourhoods and zero padding; ahead of them a unit-scale table
        # is only noise on the pixels (quickstart trials with a conv first stage lost 2 to 12 points with
        # it), so there it keeps 0.02.
        # Paper-scale genomes (``init`` set) follow their official code instead: a 0.02 table.
        if self.pos_embed is not None:
            init_position_table_(self.pos_embed, get_spec(self.genome.stages[0].mixer).attention and not self.genome.init)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear_(m)
            elif isinstance(m, nn.Conv2d) and self.genome.init in CONV_INITS:
                CONV_INITS[self.genome.init](m)
            elif isinstance(m, nn.LayerNorm) and self.genome.norm_eps is not None:
                m.eps = self.genome.norm_eps  # read in forward: setting it after construction is enough

    def forward_features(self, x: Tensor) -> Tensor:  # [B, C, H, W] -> [B, N, C_last]
        w = self.head.weight  # a few comparisons of Python values: nothing beside the stem's convolution
        if not isinstance(x, Tensor) or x.shape[1:] != self.input_shape or x.dtype != w.dtype or x.device != w.device:
            error = input_error(self, x, w)  # advice for each case: numpy, uint8, NHWC, no batch axis...
            if error is not None:
                raise error
        x = self.stem(x)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for stage in self.stages:
            x = stage(x)
        return self.norm(x)

    def forward_head(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, classes]
        pooled = x[:, 0] if self.cls_token is not None else x.mean(dim=1)
        return self.head(self.pre_logits(pooled))

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_head(self.forward_features(x))


def build_model(genome: Genome) -> VisionNet:
    """Build the network for ``genome`` (pure: same genome and seed -> same module and weights).

    Raises :class:`nas.errors.GenomeError` when the network is too large to build on this machine
    (see :mod:`nas.models.footprint`).
    """
    from nas.models.footprint import check_fits

    check_fits(genome)  # a network no device holds is refused before a single module exists
    return VisionNet(genome)
