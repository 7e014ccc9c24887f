"""How much memory a genome's network needs, estimated from the genome alone, before anything is built.

A genome is a handful of integers, and a few of them (``dim: 1e9``, ``depth: 1000000``,
``image_size: 1e6``) describe networks no machine holds: building one overflows torch's storage
arithmetic, exhausts RAM, or creates a million modules for minutes. :func:`check_fits` refuses them
at once, with one line naming the stage or field that makes the network large and the estimate.

The estimate is closed-form arithmetic over the stages (never per block, never a tensor), so it
costs microseconds for any genome:

- parameters: the dominant weights of each block, as :mod:`nas.layers` builds them: each mixer's
  declared estimate (:attr:`nas.mixers.MixerSpec.estimate`: attention ``4·D²``, MBConv ``2·E·D + 9·E``;
  a mixer that declares none is built and counted on the meta device), the block's MLP ``2·τ·D²``,
  merging ``4·D_in·D``, stems, position table, head; norms and biases are counted as ``O(D)`` terms.
  It matches the built count within a few percent.
- activations saved for the backward pass, per image: a pre-norm transformer block keeps about
  ``8·N·D + 2·N·τD`` floats plus ``2·H·N²`` for the attention maps (re-attention twice that),
  MBConv about ``6·N·E + 2·N·D`` (Korthikanti et al. 2022, "Reducing Activation Recomputation in
  Large Transformer Models", Sec. 4.1, count the same terms). Inference holds the largest block's
  activations at one time; training holds every block's.
- training adds the gradients and AdamW's two moments: 16 bytes per parameter in float32.

The limit is the device's memory (RAM for the CPU, the GPU's total memory for CUDA) unless the
environment variable ``NAS_MAX_MEMORY_GB`` sets it (for the CPU: the RAM available when the check
runs, ``MemAvailable`` of ``/proc/meminfo``; half of it, because building initialises the weights
through temporaries and ``nas cost`` traces the graph on top of them; for CUDA 90% of the total, the
rest being the CUDA context and allocator slack) (it reaches Ray's workers, which inherit the
driver's environment). ``MAX_BLOCKS`` bounds the number of blocks whatever the memory: deeper
networks take minutes only to build, and the deepest published vision transformers have 48.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from nas.errors import GenomeError
from nas.fields import env_number
from nas.genome.schema import Genome, Stage
from nas.mixers import BlockShape, MixerEstimate, MixerSpec, mixer_spec

__all__ = ["Footprint", "estimate_footprint", "estimate_macs", "memory_limit", "check_fits", "excess", "MAX_BLOCKS",
           "LIMIT_ENV"]

LIMIT_ENV = "NAS_MAX_MEMORY_GB"
MAX_LIMIT_GB = 1_000_000  # a petabyte: a larger limit is a typo, and no limit at all is the device's
MAX_BLOCKS = 1024
FLOAT_BYTES = 4
TRAIN_BYTES_PER_PARAM = 16  # weight, gradient and AdamW's two moments, float32


@dataclass(frozen=True)
class Footprint:
    """Estimated parameters and activation floats (per image) of one genome's network."""

    params: int
    act_total: int  # floats per image saved for the backward pass, all blocks together
    act_peak: int  # floats per image of the largest single part (what inference holds at once)
    largest: str  # the part that holds the most memory, in the genome's own field names

    def bytes(self, batch_size: int = 1, training: bool = False) -> int:
        """Bytes needed to run (``training``: to train with AdamW) on batches of ``batch_size``."""
        if training:
            return self.params * TRAIN_BYTES_PER_PARAM + batch_size * self.act_total * FLOAT_BYTES
        return self.params * FLOAT_BYTES + batch_size * self.act_peak * FLOAT_BYTES


@dataclass(frozen=True)
class _Part:
    label: str
    params: int
    act: int  # activation floats per image of one block
    blocks: int
    macs: int  # all blocks together


def _field_label(stage: Stage, spec: MixerSpec) -> str:
    """``depth 2, dim 64, mlp_ratio 4``: the stage's size fields, in the genome's own names."""
    shown = [f"{f.name} {stage.value(f.name):g}" for f in spec.all_fields
             if f.kind == "float" and stage.value(f.name) is not None]
    return ", ".join([f"depth {stage.depth}", f"dim {stage.dim}", *shown])


def _block(genome: Genome, stage: Stage, spec: MixerSpec, side: int, prefix: int, in_dim: int,
           stride: int) -> tuple[int, int, int]:
    """(params, activation floats, MACs) of one block as the builder makes it (:mod:`nas.layers.block`)."""
    d = stage.dim
    params = act = macs = 0
    out_side = max(1, side // stride)
    n_out = out_side * out_side + prefix
    if (stride != 1 or in_dim != d) and in_dim != d:  # the block's Proj(Pool(x)): a Linear in_dim -> dim
        params += in_dim * d + d
        macs += n_out * in_dim * d
    if stride != 1 and not spec.supports_stride:  # the block pools and projects in front of the mixer
        shape = BlockShape(out_side, out_side, prefix, d, d, 1, genome.position, genome.qkv_bias, spec.options(stage))
    else:
        shape = BlockShape(side, side, prefix, in_dim, d, stride, genome.position, genome.qkv_bias, spec.options(stage))
    mixer = estimate_mixer(spec, shape)
    params, act, macs = params + mixer.params, act + mixer.activations, macs + mixer.macs
    if genome.layer_scale:
        params += d * (int(spec.residual) + int(spec.has_mlp))
    if spec.has_mlp:
        hidden = max(1, round(d * float(stage.mlp_ratio or 4.0)))
        params += 2 * d * hidden + hidden + 3 * d
        act += 4 * n_out * d + 2 * n_out * hidden
        macs += 2 * n_out * d * hidden
    return params, act, macs


def estimate_mixer(spec: MixerSpec, shape: BlockShape) -> MixerEstimate:
    """The declaration's estimate, else a count of the module built and run on the meta device."""
    if spec.estimate is not None:
        return spec.estimate(shape)
    from nas.models.meta import meta_estimate

    return meta_estimate(spec, shape)


def _parts(genome: Genome) -> list[_Part]:
    """The network's parts in the builder's order: stem, per stage (patch merging, blocks), head."""
    from nas.cost import analytic as cf

    parts: list[_Part] = []
    size, channels = genome.image_size, genome.in_channels
    prefix = 1 if genome.pool == "cls" else 0
    if genome.stem == "patch":
        p = int(genome.patch_size or 1)
        k = 2 * p - 1 if genome.overlap else p
        side, width = size // p, genome.stages[0].dim
        stem_params = channels * k * k * width + 3 * width
        stem_act = channels * size * size + 2 * side * side * width
        stem_macs = side * side * channels * k * k * width
    else:
        stride = int(genome.stem_stride or 1)
        side, width = size // stride, int(genome.stem_dim or genome.stages[0].dim)
        stem_params = 9 * channels * width + 9 * width * width + 4 * width
        stem_act = channels * size * size + 4 * side * side * width
        stem_macs = side * side * 9 * (channels + width) * width
    tokens = side * side + prefix
    if genome.position == "absolute":
        stem_params += tokens * width
    parts.append(_Part(f"the stem at image_size {size}", stem_params, stem_act, 1, stem_macs))
    in_dim = width
    for i, stage in enumerate(genome.stages):
        spec = mixer_spec(stage.mixer)
        halves = i > 0 or genome.stem == "conv"
        d, stride = stage.dim, 1
        if halves and genome.downsample == "merge":
            side = max(1, side // 2)
            window = 9 if genome.overlap else 4
            parts.append(_Part(f"stages[{i}] patch merging (dim {d})", window * in_dim * d + 2 * in_dim,
                               2 * side * side * (in_dim + d), 1, side * side * window * in_dim * d))
            in_dim = d
        elif halves:
            stride = 2
        first = _block(genome, stage, spec, side, prefix, in_dim, stride)
        side = max(1, side // stride)
        rest = _block(genome, stage, spec, side, prefix, d, 1) if stage.depth > 1 else (0, 0, 0)
        params = first[0] + (stage.depth - 1) * rest[0]
        act = max(first[1], rest[1])
        macs = first[2] + (stage.depth - 1) * rest[2]
        label = f"stages[{i}] ({_field_label(stage, spec)})"
        n = side * side + prefix
        if act * stage.depth * FLOAT_BYTES > params * TRAIN_BYTES_PER_PARAM:  # the tokens make it large
            label = f"{label[:-1]} on {n:,} tokens (image_size {size}))"
        parts.append(_Part(label, params, act, stage.depth, macs))
        in_dim = d
    hidden = genome.head_hidden
    head = (in_dim * hidden + hidden * genome.num_classes) if hidden else in_dim * genome.num_classes
    parts.append(_Part(f"the head (num_classes {genome.num_classes})", head + 2 * in_dim, 0, 1,
                       cf.head_macs(in_dim, genome.num_classes, hidden)))
    return parts


def estimate_footprint(genome: Genome) -> Footprint:
    """Closed-form parameter and activation estimate of ``genome`` (see the module docstring)."""
    parts = _parts(genome)
    params = sum(p.params for p in parts)
    act_total = sum(p.act * p.blocks for p in parts)
    act_peak = max(p.act for p in parts)
    # The part that weighs most in a training run names the field to change.
    largest = max(parts, key=lambda p: p.params * TRAIN_BYTES_PER_PARAM + p.act * p.blocks * FLOAT_BYTES).label
    return Footprint(params=params, act_total=act_total, act_peak=act_peak, largest=largest)


def estimate_macs(genome: Genome) -> int:
    """MACs per image from the same walk over the network (each mixer's declared estimate, the block's MLP
    and projections, stems, merging and head), for genomes too large to build and trace."""
    return int(sum(p.macs for p in _parts(genome)))


def excess(genome: Genome, *, batch_size: int = 1, training: bool = False, device: str | None = None) -> float:
    """How far ``genome`` is over the limits, relative: 0 when it fits, else ``need / limit - 1`` (or the
    blocks over :data:`MAX_BLOCKS`, relatively). A sampler ranks too-large trials by it."""
    if genome.depth > MAX_BLOCKS:
        return genome.depth / MAX_BLOCKS - 1
    need = estimate_footprint(genome).bytes(batch_size, training)
    limit, _ = memory_limit(device)
    return max(0.0, need / limit - 1)


def _device_bytes(device: str | None) -> tuple[int, str]:
    """Total memory of ``device`` (``None``/``cpu``: RAM; ``cuda[:N]``: that GPU) and its name."""
    if device and str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = torch.device(device).index or 0
            total = int(torch.cuda.get_device_properties(index).total_memory)
            return int(total * 0.9), f"90% of the GPU memory of {device}"
    try:  # what the kernel can still hand out, not the installed total: other processes hold the rest
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // 2, "half the available RAM"
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")) // 2, "half the RAM"
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 32 << 30, "half the RAM (assumed 64 GB)"


def memory_limit(device: str | None = None) -> tuple[int, str]:
    """The byte limit a network must fit in, and where it comes from (``NAS_MAX_MEMORY_GB`` or the device)."""
    raw = os.environ.get(LIMIT_ENV, "").strip()
    if raw:
        gb = env_number(LIMIT_ENV, raw, minimum=0, maximum=MAX_LIMIT_GB, unit="gigabytes", error=GenomeError)
        return int(gb * 1e9), f"{LIMIT_ENV}={raw}"
    total, name = _device_bytes(device)
    return total, f"{name} of this machine"


def _gb(n: float) -> str:
    return f"{n / 1e9:,.3g} GB" if n < 1e15 else f"{n / 1e9:.2e} GB"


def check_fits(genome: Genome, *, batch_size: int = 1, training: bool = False, device: str | None = None) -> Footprint:
    """Raise :class:`GenomeError` when ``genome`` cannot be built or run on ``device``; return its estimate.

    Without ``training`` the check is for building the network and running one image through it (what
    ``nas validate``, ``nas build`` and ``nas cost`` do); with it, for training on ``batch_size`` images.
    """
    if genome.depth > MAX_BLOCKS:
        deepest = max(range(len(genome.stages)), key=lambda i: genome.stages[i].depth)
        raise GenomeError(
            f"too large: stages[{deepest}].depth {genome.stages[deepest].depth} makes {genome.depth:,} blocks in all; "
            f"at most {MAX_BLOCKS} are allowed"
        )
    fp = estimate_footprint(genome)
    need = fp.bytes(batch_size, training)
    limit, source = memory_limit(device)
    if need > limit:
        what = (f"training at batch_size {batch_size:,}" if training else
                "one image" if batch_size == 1 else f"a batch of {batch_size:,} images")
        raise GenomeError(
            f"too large for this device: ~{_gb(need)} for {what} ({fp.params:,} params, mostly {fp.largest}); "
            f"the limit is {_gb(limit)} ({source}); make it smaller or set {LIMIT_ENV}"
        )
    return fp
