"""DeepViT's attention-collapse metric on hand-built maps, and on a real network's recorded maps."""
from __future__ import annotations

import math

import pytest
import torch

from nas.models.diagnostics import collapse_metrics, collapse_report, column_similarity, measure_collapse
from nas.data import make_synthetic
from nas.models import build_model


def _maps(matrix: torch.Tensor, batch: int = 2, heads: int = 3) -> torch.Tensor:
    """A [N, N] attention matrix repeated to [B, H, N, N]."""
    return matrix.expand(batch, heads, *matrix.shape).clone()


IDENTITY = torch.eye(4)  # every query attends to itself: column t is e_t
SHIFTED = torch.roll(torch.eye(4), 1, dims=1)  # a permutation: column t is e_(t-1), orthogonal to e_t
UNIFORM = torch.full((4, 4), 0.25)


def test_identical_maps_have_similarity_one() -> None:
    a = _maps(torch.softmax(torch.randn(4, 4), dim=-1))
    assert column_similarity(a, a.clone()) == pytest.approx(1.0)


def test_orthogonal_columns_have_similarity_zero() -> None:
    assert column_similarity(_maps(IDENTITY), _maps(SHIFTED)) == pytest.approx(0.0)


def test_partial_similarity_is_the_mean_column_cosine() -> None:
    # cos(e_t, [1/4]*4) = (1/4) / (1 * 1/2) = 1/2 for every head and column
    assert column_similarity(_maps(IDENTITY), _maps(UNIFORM)) == pytest.approx(0.5)
    # half the heads identical (1), half orthogonal (0): the mean over heads is 1/2
    a = _maps(IDENTITY, heads=2)
    b = torch.stack([IDENTITY, SHIFTED])[None]  # [1, 2, 4, 4]
    assert column_similarity(a[:1], b) == pytest.approx(0.5)


def test_zero_column_counts_as_dissimilar() -> None:
    a = _maps(IDENTITY)
    b = a.clone()
    b[..., :, 0] = 0.0  # column 0 empty: 3 of 4 columns still identical
    assert column_similarity(a, b) == pytest.approx(0.75)


def test_shapes_must_match() -> None:
    with pytest.raises(ValueError, match=r"must both be \[B, H, N, N\] of one shape"):
        column_similarity(_maps(IDENTITY), _maps(torch.eye(5)))


def test_similar_blocks_count_consecutive_pairs_above_threshold() -> None:
    maps = [_maps(IDENTITY), _maps(IDENTITY), _maps(SHIFTED), _maps(SHIFTED), _maps(UNIFORM)]
    report = collapse_report(maps)
    assert report.similarities[0] is None
    assert report.similarities[1:] == pytest.approx((1.0, 0.0, 1.0, 0.5))
    assert report.similar_blocks == 2
    assert report.mean_similarity == pytest.approx(2.5 / 4)
    out = report.to_dict()
    assert out["similar_blocks"] == 2 and out["block_similarity"][0] is None


def test_pyramid_blocks_of_other_shapes_are_not_compared() -> None:
    maps = [_maps(IDENTITY), _maps(torch.eye(2)), _maps(torch.eye(2)), _maps(torch.eye(2), heads=1)]
    report = collapse_report(maps)
    assert report.similarities == (None, None, pytest.approx(1.0), None)
    assert report.similar_blocks == 1
    assert collapse_report([]).mean_similarity is None


def test_measured_on_a_network_one_value_per_attention_block(tiny_genome) -> None:
    genome = tiny_genome(layout="R", depths=3)
    torch.manual_seed(0)
    model = build_model(genome).train()
    report = measure_collapse(model, torch.randn(4, 3, 16, 16))
    assert len(report.similarities) == 3
    assert all(-1.0 <= s <= 1.0 + 1e-9 for s in report.similarities[1:])
    assert model.training  # the mode is restored


def test_metrics_from_validation_images_and_none_without_attention(tiny_genome) -> None:
    data = make_synthetic(n_train=8, n_val=8, size=16, num_classes=4)
    model = build_model(tiny_genome(layout="A-A", depths=1, dims=[16, 32], pool="mean", patch_size=2))
    out = collapse_metrics(model, data, image_size=16, n=4)
    assert set(out) == {"collapse_similarity", "similar_blocks", "block_similarity"}
    assert out["block_similarity"] == [None, None]  # 8x8 then 4x4 tokens: nothing comparable
    assert out["collapse_similarity"] is None and out["similar_blocks"] == 0
    shift = build_model(tiny_genome(layout="S", pool="mean", heads=None, position="none"))
    assert collapse_metrics(shift, data, image_size=16) == {}
    assert not math.isnan(collapse_metrics(build_model(tiny_genome(depths=2)), data, 16)["collapse_similarity"])
