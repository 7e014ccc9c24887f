"""The mixer contract: what every token mixer must do for nas to use it, checked on the real modules.

``nas mixers --check module:Name`` prints these rows for a user's mixer, and tests/test_mixers.py runs
the same code over every declared mixer, so a plugin is held to exactly the built-ins' standard:

- shape: for every grid and stride the builder can give a block (square grids from 1x1 to 7x7, with
  and without a cls token in front; the first block of a stage halving the grid and widening), the
  block's output is ``[B, prefix + (h/s)·(w/s), dim]``;
- finite: outputs and gradients are finite numbers;
- gradients: every parameter gets a non-zero gradient (in eval mode, so that a BatchNorm's batch
  statistics cannot cancel a bias's gradient exactly);
- FLOPs: fvcore counts the network with no op left unknown (an op with arithmetic and no handle
  would count zero);
- size guard: its estimate of parameters, MACs and training memory against the built network, the
  traced count and the tensors autograd really saves;
- export: a genome using the mixer builds, is written out as a genome file, is read back and rebuilt
  with the same key, parameters and FLOPs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from nas.mixers import MixerSpec, mixer_spec

__all__ = ["CheckRow", "check_mixer", "contract_genome", "BLOCK_CASES", "resolve_mixer"]

# (side, prefix, in_dim, dim, stride): what Block(...) receives inside the builder's networks.
BLOCK_CASES: tuple[tuple[int, int, int, int, int], ...] = (
    (4, 0, 16, 16, 1), (4, 1, 16, 16, 1),  # a stage's later blocks, with and without the cls token
    (7, 0, 16, 16, 1), (7, 1, 16, 16, 1),  # odd grids: 224 / 32 = 7
    (2, 0, 16, 16, 1), (1, 1, 16, 16, 1),  # the last stages of a 32x32 pyramid
    (4, 0, 8, 16, 2), (4, 1, 8, 16, 2),  # downsample: pool, first block of a stage halves and widens
    (4, 1, 8, 16, 1),  # widening without halving (a conv stem's first stage)
)
TOLERANCE = {"params": 0.10, "macs": 0.10}
MEMORY_RANGE = (0.5, 4.0)  # estimated / measured training memory the guard may be off by (it errs high)


@dataclass(frozen=True)
class CheckRow:
    """One line of the contract table."""

    check: str
    case: str
    ok: bool
    detail: str


def resolve_mixer(target: str) -> MixerSpec:
    """``module:Name`` (a mixer name, a spec variable or a module class) or a declared mixer's name."""
    from nas.errors import NasError
    from nas.mixers import MIXER_REGISTRY, MixerSpec, load_plugins

    module, sep, name = target.partition(":")
    if not sep:
        return mixer_spec(target)
    load_plugins([module], where="--check")
    import importlib

    mod = importlib.import_module(module)
    obj = getattr(mod, name, None)
    if isinstance(obj, MixerSpec):
        return mixer_spec(obj.name)
    if name in MIXER_REGISTRY:
        return MIXER_REGISTRY[name]
    if isinstance(obj, type):
        found = [s for s in MIXER_REGISTRY.values()
                 if s.module is obj or s.module_path.endswith(f":{obj.__qualname__}")]
        if found:
            return found[0]
        raise NasError(f"--check {target}: class {name} is not declared as a mixer; register it with "
                       f"nas.mixers.register_mixer(MixerSpec(name=..., letter=..., module={name}))")
    declared = sorted(s.name for s in MIXER_REGISTRY.values() if s.plugin == module)
    raise NasError(f"--check {target}: {module} has no mixer, MixerSpec or class named {name!r}; "
                   f"it declares: {', '.join(declared) or 'no mixer'}")


def _loss(out: Any) -> Any:
    import torch

    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    return (out * weights).sum()


def _options(spec: MixerSpec, dim: int) -> dict[str, Any]:
    """The spec's fields at their defaults for a stage of width ``dim``, parsed as a genome would be."""
    return {f.name: f.parse(f"{spec.name}.{f.name}", None, dim) for f in spec.fields}


def _block_rows(spec: MixerSpec) -> list[CheckRow]:
    import torch

    from nas.layers.block import Block
    from nas.layers.grid import Grid

    rows: list[CheckRow] = []
    for side, prefix, in_dim, dim, stride in BLOCK_CASES:
        case = f"grid {side}x{side}{' +cls' if prefix else ''}, {in_dim}->{dim}, stride {stride}"
        grid = Grid(side, side, prefix)
        try:
            torch.manual_seed(0)
            block = Block(spec.name, dim, in_dim=in_dim, grid=grid, stride=stride, mlp_ratio=2.0,
                          position="relative", qkv_bias=True, **_options(spec, dim)).train()
            x = torch.randn(2, grid.tokens, in_dim, requires_grad=True)
            out = block(x)
        except Exception as exc:  # noqa: BLE001 - the user's module failed: that is the finding
            rows.append(CheckRow("shape", case, False, f"{type(exc).__name__}: {exc}"[:200]))
            continue
        expect = (2, prefix + (side // stride) ** 2, dim)
        wrong = "" if tuple(out.shape) == expect else f", expected {list(expect)}"
        rows.append(CheckRow("shape", case, tuple(out.shape) == expect, f"{list(out.shape)}{wrong}"))
        if tuple(out.shape) != expect:
            continue
        _loss(out).backward()
        bad = [n for n, p in block.named_parameters() if p.grad is not None and not torch.isfinite(p.grad).all()]
        finite_out = bool(torch.isfinite(out).all())
        finite = finite_out and not bad and x.grad is not None and bool(torch.isfinite(x.grad).all())
        what = "outputs" if not finite_out else "gradients: " + (", ".join(bad) or "the input")
        rows.append(CheckRow("finite", case, finite, "outputs and gradients finite" if finite else f"non-finite {what}"))
        if prefix and side == 4 and stride == 1:
            rows.append(_gradient_row(block, grid, in_dim, case))
    return rows


def _gradient_row(block: Any, grid: Any, in_dim: int, case: str) -> CheckRow:
    import torch

    block.zero_grad()
    block.eval()  # BatchNorm on running statistics: no bias gradient is cancelled by the batch mean
    x = torch.randn(2, grid.tokens, in_dim, requires_grad=True)
    _loss(block(x)).backward()
    missing = [n for n, p in block.named_parameters() if p.grad is None]
    zero = [n for n, p in block.named_parameters() if p.grad is not None and not bool(p.grad.abs().max() > 0)]
    n = sum(1 for _ in block.parameters())
    ok = not missing and not zero and x.grad is not None and bool(x.grad.abs().sum() > 0)
    detail = f"all {n} parameters and the input" if ok else "; ".join(
        part for part in (f"no gradient: {', '.join(missing)}" if missing else "",
                          f"zero gradient: {', '.join(zero)}" if zero else "",
                          "no gradient to the input" if x.grad is None or not bool(x.grad.abs().sum() > 0) else "")
        if part)
    return CheckRow("gradients", case, ok, detail)


def contract_genome(spec: MixerSpec) -> dict[str, Any]:
    """A small 32x32 pyramid with the mixer in both stages: what the cost, size-guard and export rows use."""
    doc: dict[str, Any] = {"image_size": 32, "num_classes": 10, "patch_size": 4, "pool": "mean",
                           "stages": [{"mixer": spec.name, "depth": 2, "dim": 32}, {"mixer": spec.name, "depth": 1,
                                                                                   "dim": 64}]}
    if spec.plugin:
        doc["plugins"] = [spec.plugin]
    return doc


def _saved_bytes(model: Any, x: Any) -> int:
    """Bytes of the tensors autograd saves for backward in one training step (each storage once)."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: Any) -> Any:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            try:
                storage = t.untyped_storage()
                seen[storage.data_ptr()] = storage.nbytes()
            except (RuntimeError, NotImplementedError):
                seen[id(t)] = t.numel() * t.element_size()
        return t

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        model(x).sum()
    return sum(n for ptr, n in seen.items() if ptr not in params)


def _ratio(a: float, b: float) -> float:
    return a / b if b else (1.0 if a == b else math.inf)


def _network_rows(spec: MixerSpec) -> list[CheckRow]:
    import torch

    from nas.cost import count_cost
    from nas.genome import load_genome
    from nas.genome.io import genome_to_yaml, load_yaml
    from nas.models import build_model
    from nas.models.footprint import FLOAT_BYTES, estimate_footprint, estimate_macs

    rows: list[CheckRow] = []
    genome = load_genome(contract_genome(spec))
    case = f"{genome.layout}, dims 32/64, 32x32"
    try:
        report = count_cost(genome)
    except Exception as exc:  # noqa: BLE001
        return [CheckRow("flops", case, False, f"cannot trace: {type(exc).__name__}: {exc}"[:200])]
    unknown = report.uncounted_arithmetic
    rows.append(CheckRow("flops", case, not unknown, f"{report.flops:,} MACs, no unknown op" if not unknown else
                         f"{report.flops:,} MACs, but no handle counts: {', '.join(unknown)} (add flop_handles)"))
    fp = estimate_footprint(genome)
    r = _ratio(fp.params, report.params)
    rows.append(CheckRow("size guard: params", case, abs(r - 1) <= TOLERANCE["params"],
                         f"estimate {fp.params:,} / built {report.params:,} = {r:.3f}"))
    macs = estimate_macs(genome)
    r = _ratio(macs, report.flops)
    rows.append(CheckRow("size guard: MACs", case, abs(r - 1) <= TOLERANCE["macs"],
                         f"estimate {macs:,} / traced {report.flops:,} = {r:.3f}"))
    torch.manual_seed(0)
    model = build_model(genome).train()
    batch = 4
    measured = _saved_bytes(model, torch.randn(batch, genome.in_channels, genome.image_size, genome.image_size))
    estimated = batch * fp.act_total * FLOAT_BYTES
    r = _ratio(estimated, measured)
    rows.append(CheckRow("size guard: memory", case, MEMORY_RANGE[0] <= r <= MEMORY_RANGE[1],
                         f"estimate {estimated / 2**20:.2f} MiB / saved for backward {measured / 2**20:.2f} MiB "
                         f"= {r:.2f} (allowed {MEMORY_RANGE[0]:g}-{MEMORY_RANGE[1]:g}, batch {batch})"))
    text = genome_to_yaml(genome, {"source": "nas mixers --check"})
    again = load_genome(load_yaml(text))
    rebuilt = count_cost(again)
    same = (again.key, rebuilt.params, rebuilt.flops) == (genome.key, report.params, report.flops)
    rows.append(CheckRow("export", case, same, f"key {again.key}, {rebuilt.params:,} params, {rebuilt.flops:,} MACs"
                         + ("" if same else f"; before export: key {genome.key}, {report.params:,}, {report.flops:,}")))
    return rows


def check_mixer(spec: MixerSpec | str) -> list[CheckRow]:
    """Every row of the contract for ``spec`` (a spec or a declared mixer's name)."""
    spec = mixer_spec(spec) if isinstance(spec, str) else spec
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return _block_rows(spec) + _network_rows(spec)
    finally:
        torch.set_num_threads(threads)
