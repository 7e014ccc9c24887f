"""The supernet: every network of a fixed-skeleton space in one module, sharing (entangled) weights.

Layout (``S`` stages, the largest stage count of the space; a genome with ``n <= S`` stages uses the
first ``n``)::

    stem                      patch projection at stage 0's largest width (+ norms per kind, patch_norm)
    pos_embeds[mixer]         one position table per stage-0 mixer, each initialised as build_model does
    merges[i-1][norm kind]    stage i's patch merging, one per norm kind its mixers use
    blocks[i][j][mixer]       block j of stage i for each candidate mixer, at its largest sizes
    norms[n][kind], heads[n]  final norm and classifier per stage count n

A path is *values, never state*: :meth:`Supernet.path_state` maps a genome to the state dict of the
plain network ``build_model(genome)`` builds, every entry a slice of the supernet's tensors
(:mod:`nas.supernet.slicing`), and :meth:`Supernet.forward` runs that very network's code on those
slices (``torch.func.functional_call`` on a parameter-less ``meta`` build of it). Nothing in the
supernet is configured for a genome, so there is no forward pass here that could drift from the
plain model's: a subnet's logits *are* the plain model's logits on the sliced weights.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call

from nas.errors import ConfigError
from nas.genome import Genome
from nas.layers.block import Block
from nas.layers.grid import Grid
from nas.layers.norms import make_norm
from nas.layers.registry import get_spec
from nas.layers.stems import PatchMerging, PatchStem
from nas.mixers.spec import MLP_RATIO
from nas.supernet.entangled import entangled
from nas.supernet.slicing import take

__all__ = ["Skeleton", "Supernet", "skeleton_of", "norm_kind"]

_SKELETON_CACHE = 512  # meta builds kept per process (a few kB each)


def norm_kind(mixer: str) -> str:
    """The norm a mixer's stage uses around it (its declaration's ``norm``)."""
    return str(get_spec(mixer).norm)


@dataclass(frozen=True)
class Skeleton:
    """The largest network of a space: per stage the candidate mixers, the deepest depth, the widest
    width and, per mixer, the largest value of each option; plus the top-level fields (fixed)."""

    top: dict[str, Any]  # resolved top-level genome fields (stem, patch size, pool, ..., classes)
    counts: tuple[int, ...]  # stage counts the space can produce
    mixers: tuple[tuple[str, ...], ...]  # per stage
    depth: tuple[int, ...]  # per stage, the largest
    dim: tuple[int, ...]  # per stage, the largest
    options: tuple[dict[str, dict[str, Any]], ...]  # per stage: mixer -> largest option values

    @property
    def stages(self) -> int:
        return len(self.depth)


def _values(p: Any) -> list[Any]:
    return p.values() or [p.low, p.high]


def skeleton_of(space: Any, fixed: dict[str, Any] | None = None) -> Skeleton:
    """The largest network of ``space``; refuses (one line) what weight sharing cannot hold.

    Refused: searched top-level fields (``global:``), a conv stem, ``downsample: pool``, relative
    position bias (the supernet is one fixed skeleton of patch stem, merges and blocks) and, per mixer,
    searched options that change structure (:data:`nas.supernet.entangled.ENTANGLED`'s ``fixed``).
    """
    import random

    from nas.supernet.sampling import draw

    label = f"one-shot study: search space {space.label}"
    if space.globals:
        raise ConfigError(f"{label}: searches top-level fields ({', '.join(space.globals)}); a supernet needs them "
                          f"fixed (move them under fixed:)")
    probe = draw(space, random.Random(0), fixed or {})
    top = {k: v for k, v in probe.to_dict().items() if k != "stages"}
    for name, want in (("stem", "patch"), ("downsample", "merge")):
        if top.get(name) != want:
            raise ConfigError(f"{label}: {name} {top.get(name)!r} is not supported by the supernet; use {name}: {want}")
    if top.get("position") == "relative":
        raise ConfigError(f"{label}: position 'relative' is not supported by the supernet; use absolute or none")
    if space.num_stages is not None:
        counts = sorted(int(v) for v in _values(space.num_stages))
    else:
        counts = sorted({len(str(v).replace("-", "")) for v in _values(space.layout)})
    stages = space.max_stages
    dims: list[set[int]] = []
    for i in range(stages):
        if "dim_growth" in space.stage and i > 0:
            dims.append({d * int(g) for d in dims[-1] for g in _values(space.stage["dim_growth"][i])})
        else:
            dims.append({int(v) for v in _values(space.stage["dim"][i])})
    mixers, options = [], []
    for i in range(stages):
        at = tuple(sorted(space.mixers_at(i)))
        per: dict[str, dict[str, Any]] = {}
        for mixer in at:
            entry, spec = entangled(mixer), get_spec(mixer)
            fields = list(spec.fields) + ([MLP_RATIO] if spec.has_mlp else [])
            opts: dict[str, Any] = {}
            for f in fields:
                if f.name not in space.stage:  # the declaration's default: constant, or grows with the width
                    opts[f.name] = f.default(max(dims[i])) if callable(f.default) else f.default
                    continue
                values = _values(space.stage[f.name][i])
                if f.name in entry.fixed:
                    if len(set(map(repr, values))) > 1:
                        raise ConfigError(f"{label}: stage.{f.name} is searched ({values}); a {mixer} block's "
                                          f"structure depends on it, so a one-shot space must fix it")
                    opts[f.name] = values[0]
                else:
                    opts[f.name] = max(values)
            per[mixer] = opts
        mixers.append(at)
        options.append(per)
    depth = tuple(max(int(v) for v in _values(space.stage["depth"][i])) for i in range(stages))
    return Skeleton(top=top, counts=tuple(counts), mixers=tuple(mixers), depth=depth,
                    dim=tuple(max(d) for d in dims), options=tuple(options))


def _stage_options(opts: dict[str, Any]) -> dict[str, Any]:
    """The largest block's module options (its declared fields; the MLP ratio goes to the block)."""
    return {k: v for k, v in opts.items() if k != "mlp_ratio" and v is not None}


class Supernet(nn.Module):
    """See the module docstring. ``forward(x, genome)`` runs the genome's path."""

    def __init__(self, skeleton: Skeleton) -> None:
        super().__init__()
        self.skeleton = sk = skeleton
        top = sk.top
        prefix = 1 if top["pool"] == "cls" else 0
        side = top["image_size"] // top["patch_size"]
        kinds0 = sorted({norm_kind(m) for m in sk.mixers[0]})
        self.stem = PatchStem(top["in_channels"], sk.dim[0], top["patch_size"], None, overlap=bool(top.get("overlap")))
        self.stem_norms = nn.ModuleDict({k: make_norm(k, sk.dim[0]) for k in kinds0}) if top.get("patch_norm") else None
        grid = Grid(side, side, prefix)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, sk.dim[0])) if prefix else None
        self.pos_embeds = nn.ParameterDict(
            {m: nn.Parameter(torch.zeros(1, grid.tokens, sk.dim[0])) for m in sk.mixers[0]}
        ) if top["position"] == "absolute" else None
        merges, blocks = [], []
        for i in range(sk.stages):
            if i > 0:
                kinds = sorted({norm_kind(m) for m in sk.mixers[i]})
                merges.append(nn.ModuleDict({k: PatchMerging(sk.dim[i - 1], sk.dim[i], grid, k, bool(top.get("overlap")))
                                             for k in kinds}))
                grid = grid.halved()
            stage = []
            for _ in range(sk.depth[i]):
                stage.append(nn.ModuleDict({
                    m: Block(m, sk.dim[i], in_dim=sk.dim[i], grid=grid, mlp_ratio=sk.options[i][m].get("mlp_ratio"),
                             layer_scale=top.get("layer_scale"), position=top["position"], qkv_bias=top["qkv_bias"],
                             **_stage_options(sk.options[i][m]))
                    for m in sk.mixers[i]}))
            blocks.append(nn.ModuleList(stage))
        self.merges = nn.ModuleList(merges)
        self.blocks = nn.ModuleList(blocks)
        self.norms = nn.ModuleDict({str(n): nn.ModuleDict({k: make_norm(k, sk.dim[n - 1]) for k in
                                                           sorted({norm_kind(m) for m in sk.mixers[n - 1]})})
                                    for n in sk.counts})
        hidden = top.get("head_hidden")
        self.pre_logits = nn.ModuleDict({str(n): nn.Sequential(nn.Linear(sk.dim[n - 1], hidden), nn.Tanh())
                                         for n in sk.counts}) if hidden else None
        self.heads = nn.ModuleDict({str(n): nn.Linear(hidden or sk.dim[n - 1], top["num_classes"]) for n in sk.counts})
        self._skeletons: OrderedDict[str, nn.Module] = OrderedDict()
        self._init_weights()

    def _init_weights(self) -> None:
        """As :class:`nas.models.builder.VisionNet` initialises the plain networks (position tables by
        the first mixer: unit scale ahead of attention, 0.02 ahead of convolution and shift)."""
        from nas.models.builder import init_linear_, init_position_table_

        if self.pos_embeds is not None:
            for mixer, table in self.pos_embeds.items():
                init_position_table_(table, get_spec(mixer).attention)
        if self.cls_token is not None:
            nn.init.trunc_normal_(self.cls_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                init_linear_(m)

    # -- paths ---------------------------------------------------------------------------------------
    def _source(self, key: str, genome: Genome) -> tuple[str, int]:
        """The supernet tensor that holds entry ``key`` of ``build_model(genome).state_dict()``, and the
        number of stacked parts on its first axis."""
        parts = key.split(".")
        rest = ".".join(parts[1:])
        n = len(genome.stages)
        if parts[0] == "stem" and parts[1] == "norm":
            return f"stem_norms.{norm_kind(genome.stages[0].mixer)}.{'.'.join(parts[2:])}", 1
        if parts[0] == "pos_embed":
            return f"pos_embeds.{genome.stages[0].mixer}", 1
        if parts[0] == "stages":
            i, j, inner = int(parts[1]), int(parts[2]), ".".join(parts[3:])
            stage = genome.stages[i]
            if i > 0:  # with merge downsampling, layer 0 of a later stage is its patch merging
                if j == 0:
                    return f"merges.{i - 1}.{norm_kind(stage.mixer)}.{inner}", 1
                j -= 1
            return f"blocks.{i}.{j}.{stage.mixer}.{inner}", entangled(stage.mixer).parts.get(inner, 1)
        if parts[0] == "norm":
            return f"norms.{n}.{norm_kind(genome.stages[-1].mixer)}.{rest}", 1
        if parts[0] in ("pre_logits", "head"):
            return f"{'heads' if parts[0] == 'head' else 'pre_logits'}.{n}.{rest}", 1
        return key, 1  # stem.proj.*, cls_token

    def skeleton_net(self, genome: Genome) -> nn.Module:
        """``VisionNet(genome)`` built on the ``meta`` device: the plain network's code, no storage."""
        from nas.models.builder import VisionNet

        net = self._skeletons.get(genome.key)
        if net is None:
            with torch.device("meta"), torch.random.fork_rng(devices=[]):
                net = VisionNet(genome)
            self._skeletons[genome.key] = net
            while len(self._skeletons) > _SKELETON_CACHE:
                self._skeletons.popitem(last=False)
        else:
            self._skeletons.move_to_end(genome.key)
        return net

    def path_state(self, genome: Genome) -> dict[str, Tensor]:
        """The state dict of ``build_model(genome)``, every entry sliced from this supernet."""
        if len(genome.stages) not in self.skeleton.counts:
            raise ConfigError(f"the supernet holds {', '.join(map(str, self.skeleton.counts))}-stage networks, "
                              f"not {len(genome.stages)} stages")
        own = dict(self.named_parameters())
        own.update(self.named_buffers())
        out: dict[str, Tensor] = {}
        for key, ref in self.skeleton_net(genome).state_dict(keep_vars=True).items():
            source, parts = self._source(key, genome)
            if source not in own:
                raise ConfigError(f"genome {genome.key}: {key} has no place in the supernet ({source}); "
                                  f"the genome is not from the supernet's space")
            out[key] = take(own[source], ref.shape, parts=parts, name=source)
        return out

    def forward(self, x: Tensor, genome: Genome) -> Tensor:  # [B, C, H, W] -> [B, classes]
        net = self.skeleton_net(genome)
        net.train(self.training)
        return functional_call(net, self.path_state(genome), (x,), strict=True)

    def extra_repr(self) -> str:
        sk = self.skeleton
        return (f"stages={sk.stages}, counts={list(sk.counts)}, depth={list(sk.depth)}, dim={list(sk.dim)}, "
                f"mixers={[list(m) for m in sk.mixers]}, params={sum(p.numel() for p in self.parameters()):,}")


def num_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


