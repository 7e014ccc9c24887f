"""Token mixers: one contract for every registered mixer, and each mixer against hand-computed values."""
from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor, nn

from nas.errors import GenomeError
from nas.layers import Block, Grid, get_mixer
from nas.mixers import BUILTIN_MIXERS, mixer_names, mixer_spec
from nas.layers.attention import Attention, RelativePositionBias
from nas.layers.mlp import DropPath
from nas.layers.reattention import ReAttention
from nas.layers.shift import Shift
from nas.models import record_attention

# Options a stage of each mixer would pass; a mixer registered later runs with its defaults.
MIXER_OPTIONS: dict[str, dict[str, Any]] = {
    "attention": {"heads": 2, "position": "relative"},
    "reattention": {"heads": 2, "reattn_norm": "batch"},
    "shift": {"shift_ratio": 0.25},
    "conv": {"expansion": 2.0, "se_ratio": 0.25},
}
# Parameters whose gradient a following BatchNorm cancels analytically (a per-channel constant is
# removed with the batch mean): MBConv's pre-norm bias feeds a bias-free 1x1 conv and then BatchNorm;
# DeepViT's head-mixing bias is followed by BatchNorm over heads (as in the official code).
CANCELLED_BY_BATCHNORM: dict[str, set[str]] = {"conv": {"mixer.norm.bias"}, "reattention": {"mixer.theta_bias"}}

GRIDS = [Grid(4, 4, 0), Grid(4, 4, 1)]  # with and without a cls token in front


def _block(name: str, grid: Grid, *, dim: int = 32, in_dim: int = 32, stride: int = 1, seed: int = 0) -> Block:
    torch.manual_seed(seed)
    return Block(name, dim, in_dim=in_dim, grid=grid, stride=stride, mlp_ratio=2.0, **MIXER_OPTIONS.get(name, {}))


def _loss(out: Tensor) -> Tensor:
    """A fixed random projection of the output, so no parameter escapes the loss by symmetry."""
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return (out * weights).sum()


# -- the contract, over the registry ------------------------------------------------------------------
MIXERS = tuple(s.name for s in BUILTIN_MIXERS)


def test_registry_holds_the_genome_mixers() -> None:
    assert set(mixer_names()) >= {"attention", "reattention", "shift", "conv", "pool", "identity"}
    for name in MIXERS:
        spec = mixer_spec(name)
        assert isinstance(spec.residual, bool) and isinstance(spec.has_mlp, bool)
        assert spec.norm in ("layer", "group", "batch") and isinstance(spec.supports_stride, bool)
        assert get_mixer(name) is spec.cls
    with pytest.raises(GenomeError, match=r"unknown mixer 'atention'; did you mean 'attention'\?"):
        get_mixer("atention")


@pytest.mark.parametrize("grid", GRIDS, ids=["no-prefix", "cls"])
@pytest.mark.parametrize("name", sorted(MIXERS))
def test_block_contract(name: str, grid: Grid) -> None:
    block = _block(name, grid).train()
    x = torch.randn(2, grid.tokens, 32, requires_grad=True)
    out = block(x)
    assert out.shape == x.shape  # [B, N, C] kept
    assert block.grid == grid
    assert torch.isfinite(out).all()
    _loss(out).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    cancelled = CANCELLED_BY_BATCHNORM.get(name, set())
    for pname, p in block.named_parameters():
        assert p.grad is not None, f"{name}: {pname} got no gradient"
        assert torch.isfinite(p.grad).all(), f"{name}: {pname} has a non-finite gradient"
        if pname not in cancelled:
            assert p.grad.abs().max() > 0, f"{name}: {pname} has an all-zero gradient"


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_block_contract_when_halving_and_widening(name: str) -> None:
    """CoAtNet's first block of a stage: grid 4x4 -> 2x2, width 16 -> 32, cls token kept in front."""
    grid = Grid(4, 4, 1)
    block = _block(name, grid, in_dim=16, dim=32, stride=2)
    out = block(torch.randn(2, grid.tokens, 16))
    assert out.shape == (2, 1 + 2 * 2, 32)
    assert block.grid == Grid(2, 2, 1)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(MIXERS))
def test_block_is_deterministic_under_a_seed(name: str) -> None:
    x = torch.randn(2, 17, 32, generator=torch.Generator().manual_seed(3))
    a, b = _block(name, Grid(4, 4, 1), seed=7), _block(name, Grid(4, 4, 1), seed=7)
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert na == nb and torch.equal(pa, pb)
    assert torch.equal(a(x), b(x))
    assert not torch.equal(a(x), _block(name, Grid(4, 4, 1), seed=8)(x))  # the seed is what makes them equal


# -- shift: exactly the intended channels move ---------------------------------------------------------
PLANE = [[1, 2, 3], [4, 5, 6], [7, 8, 9]]
MOVED = {  # the 3x3 plane after a one-pixel move; the vacated border is zero
    "left": [[2, 3, 0], [5, 6, 0], [8, 9, 0]],
    "right": [[0, 1, 2], [0, 4, 5], [0, 7, 8]],
    "up": [[4, 5, 6], [7, 8, 9], [0, 0, 0]],
    "down": [[0, 0, 0], [1, 2, 3], [4, 5, 6]],
}


def test_shift_moves_exactly_the_intended_channels() -> None:
    """C=6, gamma=1/6: g=1 channel per direction; channels 0..3 move left/right/up/down, 4 and 5 stay."""
    channels = 6
    planes = torch.tensor([[[v + 10 * c for v in row] for row in PLANE] for c in range(channels)], dtype=torch.float)
    cls = torch.full((1, 1, channels), -1.0)
    x = torch.cat([cls, planes.permute(1, 2, 0).reshape(1, 9, channels)], dim=1)  # [1, 1 + 3*3, 6]
    shift = Shift(channels, in_dim=channels, grid=Grid(3, 3, 1), shift_ratio=1 / 6)
    out = shift(x)
    assert shift.g == 1 and sum(p.numel() for p in shift.parameters()) == 0
    assert torch.equal(out[:, :1], cls)  # the cls token does not move
    got = out[0, 1:].reshape(3, 3, channels).permute(2, 0, 1)  # [C, H, W]
    for c, direction in enumerate(("left", "right", "up", "down")):
        expected = torch.tensor(MOVED[direction], dtype=torch.float)
        assert torch.equal(got[c], torch.where(expected > 0, expected + 10 * c, expected)), direction
    assert torch.equal(got[4:], planes[4:])


def test_shift_groups_follow_the_ratio() -> None:
    """gamma=1/4 of 8 channels: two channels per direction and none left in place."""
    x = torch.arange(2 * 4 * 8, dtype=torch.float).reshape(1, 8, 8) + 1  # [1, 2*4 tokens, 8 channels]
    out = Shift(8, grid=Grid(2, 4), shift_ratio=0.25)(x).reshape(2, 4, 8)
    x = x.reshape(2, 4, 8)
    assert torch.equal(out[:, :3, 0:2], x[:, 1:, 0:2]) and (out[:, 3, 0:2] == 0).all()  # left
    assert torch.equal(out[:, 1:, 2:4], x[:, :3, 2:4]) and (out[:, 0, 2:4] == 0).all()  # right
    assert torch.equal(out[0, :, 4:6], x[1, :, 4:6]) and (out[1, :, 4:6] == 0).all()  # up
    assert torch.equal(out[1, :, 6:8], x[0, :, 6:8]) and (out[0, :, 6:8] == 0).all()  # down


# -- attention and re-attention ------------------------------------------------------------------------
def _attention_pair(position: str, grid: Grid = Grid(4, 4, 1), heads: int = 4) -> tuple[Attention, ReAttention]:
    torch.manual_seed(0)
    attn = Attention(32, in_dim=32, grid=grid, heads=heads, position=position)
    re = ReAttention(32, in_dim=32, grid=grid, heads=heads, position=position, reattn_norm="none")
    missing, unexpected = re.load_state_dict(attn.state_dict(), strict=False)
    assert missing == ["theta"] and unexpected == []  # everything but the head-mixing matrix is shared
    with torch.no_grad():
        re.theta.copy_(torch.eye(heads))
    return attn, re


@pytest.mark.parametrize("position", ["absolute", "relative"])
def test_reattention_with_identity_mixing_and_no_norm_is_attention(position: str) -> None:
    attn, re = _attention_pair(position)
    if position == "relative":
        with torch.no_grad():
            attn.rel.rel_bias.normal_()  # a visible bias, shared by both
            re.rel.rel_bias.copy_(attn.rel.rel_bias)
    x = torch.randn(2, 17, 32)
    torch.testing.assert_close(re(x), attn(x), atol=1e-5, rtol=1e-5)


def test_reattention_mixes_heads_by_theta() -> None:
    """Theta a permutation (Theta[h, g] = 1 for g = perm[h]): re-attention map g is attention map h."""
    attn, re = _attention_pair("absolute")
    perm = [2, 0, 3, 1]
    with torch.no_grad():
        re.theta.zero_()
        for h, g in enumerate(perm):
            re.theta[h, g] = 1.0
    x = torch.randn(2, 17, 32)
    with record_attention(attn) as plain, record_attention(re) as mixed:
        attn(x), re(x)
    for h, g in enumerate(perm):
        torch.testing.assert_close(mixed[0][:, g], plain[0][:, h])


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_reattention_head_norms(norm: str) -> None:
    re = ReAttention(32, in_dim=32, grid=Grid(4, 4, 1), heads=4, reattn_norm=norm).train()
    out = re(torch.randn(2, 17, 32))
    assert out.shape == (2, 17, 32) and torch.isfinite(out).all()
    assert isinstance(re.head_norm, nn.BatchNorm2d if norm == "batch" else nn.LayerNorm)
    assert (re.theta_bias is not None) == (norm == "batch")  # the paper's 1x1 conv has a bias


@pytest.mark.parametrize("position", ["absolute", "relative"])
def test_fused_attention_equals_explicit(position: str) -> None:
    """The fused kernel and the explicit softmax (used while recording) compute the same function."""
    attn, _ = _attention_pair(position)
    x = torch.randn(2, 17, 32)
    fused = attn(x)
    with record_attention(attn):
        explicit = attn(x)
    torch.testing.assert_close(fused, explicit, atol=1e-5, rtol=1e-5)


def test_record_attention_gives_row_stochastic_maps() -> None:
    attn, _ = _attention_pair("relative")
    with record_attention(attn) as maps:
        attn(torch.randn(3, 17, 32))
    assert len(maps) == 1 and maps[0].shape == (3, 4, 17, 17)  # [B, H, N, N]
    torch.testing.assert_close(maps[0].sum(-1), torch.ones(3, 4, 17))
    assert (maps[0] >= 0).all()
    assert attn.record is False and attn.last_attn is None  # restored on exit


def test_relative_position_bias_is_indexed_by_offset() -> None:
    """2x2 grid: (2*2-1)^2 = 9 offsets; index = (dy+1)*3 + (dx+1) of (position i - position j)."""
    rel = RelativePositionBias(heads=2, grid=Grid(2, 2, 1))
    assert rel.rel_bias.shape == (9, 2)
    assert rel.index.tolist() == [[4, 3, 1, 0], [5, 4, 2, 1], [7, 6, 4, 3], [8, 7, 5, 4]]
    bias = rel()
    assert bias.shape == (2, 5, 5)  # [heads, N, N] with the cls token in front
    assert (bias[:, 0] == 0).all() and (bias[:, :, 0] == 0).all()  # the cls token gets no bias
    assert torch.equal(bias[1, 1:, 1:], rel.rel_bias[:, 1][rel.index])


# -- the rest of the block ----------------------------------------------------------------------------
def test_mbconv_leaves_the_cls_token_alone() -> None:
    block = _block("conv", Grid(4, 4, 1)).eval()
    x = torch.randn(2, 17, 32)
    assert torch.equal(block.mixer(x)[:, 0], torch.zeros(2, 32))  # zero update to the cls token
    assert torch.equal(block(x)[:, 0], x[:, 0])


def test_drop_path_drops_whole_samples() -> None:
    drop = DropPath(0.5)
    x = torch.ones(64, 3, 4)
    torch.manual_seed(0)
    out = drop.train()(x)
    per_sample = out.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}  # dropped, or kept and scaled by 1 / (1 - p)
    assert (per_sample == per_sample[:, :1]).all()  # one decision per sample
    assert torch.equal(drop.eval()(x), x)


# -- the mixer contract, through the code `nas mixers --check` runs ----------------------------------------
@pytest.mark.parametrize("name", mixer_names())
def test_every_declared_mixer_passes_the_contract(name: str) -> None:
    from nas.models.contract import check_mixer

    rows = check_mixer(name)
    assert {r.check for r in rows} == {"shape", "finite", "gradients", "flops", "size guard: params",
                                       "size guard: MACs", "size guard: memory", "export"}
    assert [f"{r.check} [{r.case}]: {r.detail}" for r in rows if not r.ok] == []


class _Leaky(nn.Module):
    """A broken mixer: an unused parameter, an FFT that no FLOP handle counts."""

    def __init__(self, dim: int, *, grid: Grid, **_: object) -> None:
        super().__init__()
        self.grid = grid
        self.unused = nn.Parameter(torch.ones(dim))
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:  # [B, N, C] -> [B, N, C]
        return torch.fft.fft(x, dim=1).real * self.scale


def test_the_contract_names_what_is_wrong_with_a_mixer() -> None:
    from nas.mixers import MixerSpec, register_mixer, unregister_mixer
    from nas.models.contract import check_mixer

    register_mixer(MixerSpec(name="leaky", letter="L", module=_Leaky))
    try:
        rows = {r.check: r for r in check_mixer("leaky") if not r.ok}
    finally:
        unregister_mixer("leaky")
    assert set(rows) == {"gradients", "flops"}
    assert "no gradient: mixer.unused" in rows["gradients"].detail
    assert "no handle counts: aten::fft_fft" in rows["flops"].detail  # never a silent zero


# -- pooling (PoolFormer) -------------------------------------------------------------------------------
def test_pool_is_the_neighbourhood_mean_minus_the_centre() -> None:
    """3x3 grid, one channel, values 1..9: each output is the mean over the in-image 3x3 neighbours
    (count_include_pad=False: a corner averages 4 values, an edge 6, the centre 9) minus the value."""
    from nas.layers.pool import pool_mixing

    x = torch.arange(1, 10, dtype=torch.float).reshape(1, 1, 3, 3)
    expected = torch.tensor([[(1 + 2 + 4 + 5) / 4 - 1, (1 + 2 + 3 + 4 + 5 + 6) / 6 - 2, (2 + 3 + 5 + 6) / 4 - 3],
                             [(1 + 2 + 4 + 5 + 7 + 8) / 6 - 4, 45 / 9 - 5, (2 + 3 + 5 + 6 + 8 + 9) / 6 - 6],
                             [(4 + 5 + 7 + 8) / 4 - 7, (4 + 5 + 6 + 7 + 8 + 9) / 6 - 8, (5 + 6 + 8 + 9) / 4 - 9]])
    torch.testing.assert_close(pool_mixing(x)[0, 0], expected)


def test_pool_mixer_normalises_then_pools_and_leaves_the_cls_token_alone() -> None:
    from nas.layers.pool import Pool, pool_mixing

    pool = Pool(8, grid=Grid(3, 3, 1))
    x = torch.randn(2, 10, 8)
    out = pool(x)
    assert torch.equal(out[:, 0], torch.zeros(2, 8)) and sum(p.numel() for p in pool.parameters()) == 16
    normed = torch.nn.functional.group_norm(x.transpose(1, 2), 1).transpose(1, 2)  # GroupNorm(1) over every token
    fmap = normed[:, 1:].reshape(2, 3, 3, 8).permute(0, 3, 1, 2)
    torch.testing.assert_close(out[:, 1:], pool_mixing(fmap).flatten(2).transpose(1, 2))


def test_pool_equals_timms_poolformer_mixer() -> None:
    """Optional reference: timm's ``metaformer.Pooling`` on the same map (timm needs torchvision)."""
    metaformer = pytest.importorskip("timm.models.metaformer")
    from nas.layers.pool import pool_mixing

    x = torch.randn(2, 8, 7, 7)
    torch.testing.assert_close(pool_mixing(x), metaformer.Pooling(pool_size=3)(x))
