"""The supernet: extraction equals the plain build (parameters and logits, per mixer), slicing stays
inside the largest tensors, batch-norm recalibration, and refusals of what weight sharing cannot hold."""
from __future__ import annotations

import random
from typing import Any

import pytest
import torch

from nas.errors import ConfigError
from nas.models import build_model
from nas.search.space import load_space
from nas.supernet.entangled import ENTANGLED
from nas.supernet.extract import extract, has_batchnorm, recalibrate_bn
from nas.supernet.model import Supernet, skeleton_of
from nas.supernet.sampling import ExtremeTrial, draw
from nas.supernet.slicing import SliceError, take

FIXED = {"in_channels": 1, "num_classes": 3}


def space_of(mixers: list[str], **stage: Any) -> Any:
    """Two-stage (or one-stage) networks of 16x16 images over ``mixers``: widths, heads, ratios searched."""
    doc = {"name": "t", "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean"},
           "num_stages": {"choices": [1, 2]},
           "stage": {"mixer": {"choices": mixers}, "depth": {"int": [1, 2]}, "dim": {"choices": [16, 32]},
                     "dim_growth": {"choices": [1, 2]}, "heads": {"choices": [1, 2, 4]},
                     "mlp_ratio": {"choices": [1, 2]}, "expansion": {"choices": [1, 2]},
                     "shift_ratio": {"choices": [0.125, 0.25]}, **stage}}
    return load_space(doc)


def genomes(space: Any, n: int) -> list[Any]:
    from nas.genome import parse_genome

    rng = random.Random(0)
    extremes = [parse_genome(space.suggest(ExtremeTrial(rng, largest)), **FIXED) for largest in (True, False)]
    return extremes + [draw(space, rng, FIXED) for _ in range(n)]


@pytest.mark.parametrize("mixer", sorted(ENTANGLED))
def test_extraction_equals_the_built_model_and_the_supernet_path(mixer: str) -> None:
    space = space_of([mixer])
    torch.manual_seed(0)
    supernet = Supernet(skeleton_of(space, FIXED)).eval()
    with torch.no_grad():  # non-trivial norms and statistics, so a wrong slice would show
        for name, t in supernet.state_dict().items():
            if t.is_floating_point() and name.endswith(("norm.weight", "running_var", "running_mean", ".bias")):
                t.uniform_(0.5, 1.5)
    x = torch.randn(3, 1, 16, 16)
    for genome in genomes(space, 6):
        model = extract(supernet, genome)
        assert type(model) is type(build_model(genome))
        assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in build_model(genome).parameters())
        with torch.no_grad():
            assert torch.equal(supernet(x, genome), model(x)), genome.to_dict()


def test_every_mixer_shares_one_supernet_and_the_paths_differ() -> None:
    space = space_of(sorted(ENTANGLED))
    torch.manual_seed(0)
    supernet = Supernet(skeleton_of(space, FIXED)).eval()
    x = torch.randn(2, 1, 16, 16)
    seen = {}
    for genome in genomes(space, 12):
        with torch.no_grad():
            out = supernet(x, genome)
            assert torch.equal(out, extract(supernet, genome)(x))
        seen[genome.layout] = out
    assert len(seen) >= 4


def test_slicing_refuses_a_larger_tensor_than_the_supernet_holds() -> None:
    t = torch.zeros(6, 4)
    with pytest.raises(SliceError, match=r"w: the subnet needs \[7, 4\] but the supernet holds only \[6, 4\]"):
        take(t, (7, 4), name="w")
    with pytest.raises(SliceError, match="split into 3 equal parts"):
        take(t, (4, 4), parts=3, name="qkv")
    q, k, v = torch.arange(12.0).reshape(3, 4).unbind(0)
    stacked = torch.arange(12.0).reshape(12, 1)  # rows [q0..q3 | k0..k3 | v0..v3]
    assert take(stacked, (6, 1), parts=3).flatten().tolist() == [0, 1, 4, 5, 8, 9]  # q[:2], k[:2], v[:2]


def test_a_subnet_reads_nothing_outside_its_slices() -> None:
    """Poison every element of the supernet a small path does not own with NaN: its logits are unchanged."""
    space = space_of(sorted(ENTANGLED))
    torch.manual_seed(1)
    supernet = Supernet(skeleton_of(space, FIXED)).eval()
    x = torch.randn(2, 1, 16, 16)
    for genome in genomes(space, 8)[1:]:  # all but the largest path
        with torch.no_grad():
            before = supernet(x, genome)
        poisoned = Supernet(supernet.skeleton).eval()
        poisoned.load_state_dict(supernet.state_dict())
        own = {**dict(poisoned.named_parameters()), **dict(poisoned.named_buffers())}
        keep = {}
        for key, ref in poisoned.skeleton_net(genome).state_dict(keep_vars=True).items():
            source, parts = poisoned._source(key, genome)
            keep[(source, key)] = (take(own[source], ref.shape, parts=parts).detach().clone(), ref.shape, parts)
        with torch.no_grad():
            for t in own.values():
                if t.is_floating_point():
                    t.fill_(float("nan"))
            for (source, _), (values, shape, parts) in keep.items():
                target = own[source]
                if target.ndim == 0:
                    target.copy_(values)
                elif parts > 1:
                    step, each = target.shape[0] // parts, shape[0] // parts
                    for i in range(parts):
                        index = (slice(i * step, i * step + each),) + tuple(slice(0, s) for s in shape[1:])
                        target[index] = values[i * each:(i + 1) * each]
                else:
                    target[tuple(slice(0, s) for s in shape)] = values
            after = poisoned(x, genome)
        assert torch.isfinite(after).all() and torch.equal(before, after), genome.layout


def test_batchnorm_recalibration_estimates_the_subnet_statistics() -> None:
    space = space_of(["conv"])
    torch.manual_seed(0)
    supernet = Supernet(skeleton_of(space, FIXED)).eval()
    genome = genomes(space, 0)[1]  # the smallest conv network
    model = extract(supernet, genome)
    assert has_batchnorm(model)
    first = model.stages[0][0].mixer.norm  # BatchNorm2d over the stage's input channels
    seen: list[torch.Tensor] = []
    hook = first.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    batches = [torch.randn(4, 1, 16, 16) * 3 + 1 for _ in range(3)]
    recalibrate_bn(model, batches)
    hook.remove()
    inputs = torch.cat(seen)  # [12, C, H, W]
    assert not model.training
    assert torch.allclose(first.running_mean, inputs.mean(dim=(0, 2, 3)), atol=1e-5)
    # the plain average of each batch's (unbiased) variance, as BatchNorm with momentum None accumulates it
    per_batch = torch.stack([b.var(dim=(0, 2, 3), unbiased=True) for b in seen]).mean(0)
    assert torch.allclose(first.running_var, per_batch, rtol=1e-4)
    assert first.momentum == 0.1  # restored after the cumulative average
    assert not torch.equal(first.running_mean, supernet.blocks[0][0]["conv"].mixer.norm.running_mean[:16])


@pytest.mark.parametrize("drop_path", [0.0, 0.3])
def test_recalibration_stops_after_the_last_batch_norm_with_the_full_passes_statistics(drop_path: float) -> None:
    """A conv stage then an attention stage: calibration need not run the attention stage, and the
    statistics equal those of complete forward passes of the network that is scored (drop-path off)."""
    from nas.genome import parse_genome

    space = space_of(["conv", "attention"])
    space = space.with_fixed(drop_path=drop_path)
    torch.manual_seed(0)
    supernet = Supernet(skeleton_of(space, FIXED)).eval()
    genome = next(g for g in genomes(space, 40) if [s.mixer for s in g.stages] == ["conv", "attention"])
    batches = [torch.randn(4, 1, 16, 16) for _ in range(3)]
    early, full = extract(supernet, genome), extract(supernet, parse_genome(genome.to_dict()))
    calls: list[int] = []
    hook = early.stages[1].register_forward_hook(lambda m, i, o: calls.append(1))
    recalibrate_bn(early, batches)
    hook.remove()
    assert calls == []  # the attention stage after the last batch norm never ran
    norms = [m for m in full.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    for m in norms:
        m.train()  # the rest stays in eval mode: no drop-path while the statistics are gathered
    with torch.no_grad():
        for xb in batches:
            full(xb)
    full.eval()
    assert not early.training and torch.equal(early(batches[0]), full(batches[0]))
    assert all(m.momentum == 0.1 for m in early.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert not early.stages[0][0].mixer.norm._forward_hooks  # the stopping hooks are removed


@pytest.mark.parametrize("change, message", [
    ({"fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean"},
      "global": {"qkv_bias": {"choices": [True, False]}}}, "searches top-level fields (qkv_bias)"),
    ({"fixed": {"image_size": 16, "stem": "conv", "stem_dim": 8, "stem_stride": 1, "pool": "mean"}},
     "stem 'conv' is not supported by the supernet; use stem: patch"),
    ({"fixed": {"image_size": 16, "patch_size": 4, "pool": "mean", "position": "relative"}},
     "position 'relative' is not supported"),
])
def test_spaces_weight_sharing_cannot_hold_are_refused_in_one_line(change: dict[str, Any], message: str) -> None:
    doc = {"name": "t", "fixed": {"image_size": 16, "stem": "patch", "patch_size": 4, "pool": "mean"},
           "num_stages": 1, "stage": {"mixer": {"choices": ["attention", "conv"]}, "depth": 1, "dim": 8, "heads": 2}}
    doc.update(change)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")) as err:
        skeleton_of(load_space(doc), FIXED)
    assert "\n" not in str(err.value)


def test_structural_options_must_be_fixed() -> None:
    space = space_of(["reattention"], reattn_norm={"choices": ["batch", "layer"]})
    with pytest.raises(ConfigError, match=r"stage.reattn_norm is searched .* a one-shot space must fix it"):
        skeleton_of(space, FIXED)
