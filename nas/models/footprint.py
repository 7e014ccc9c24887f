"""How much memory a genome's network needs, estimated from the genome alone, before anything is built.

A genome is a handful of integers, and a few of them (``dim: 1e9``, ``depth: 1000000``,
``image_size: 1e6``) describe networks no machine holds: building one overflows torch's storage
arithmetic, exhausts RAM, or creates a million modules for minutes. :func:`check_fits` refuses them
at once, with one line naming the stage or field that makes the network large and the estimate.

The estimate is closed-form arithmetic over the stages (never per block, never a tensor), so it
costs microseconds for any genome:

- parameters: the dominant weights of each block, as :mod:`nas.layers` builds them (attention
  ``4·D² + 2·τ·D²``, MBConv ``2·E·D + 9·E``, merging ``4·D_in·D``, stems, position table, head);
  norms and biases are counted as ``O(D)`` terms. It matches the built count within a few percent.
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
from nas.genome.schema import ATTENTION_MIXERS, Genome

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


def _stage_parts(genome: Genome) -> list[tuple[str, int, int, int]]:
    """Per part: (label, params, activation floats per image of one block, blocks)."""
    parts: list[tuple[str, int, int, int]] = []
    size, channels = genome.image_size, genome.in_channels
    prefix = 1 if genome.pool == "cls" else 0
    if genome.stem == "patch":
        p = int(genome.patch_size or 1)
        side, width = size // p, genome.stages[0].dim
        stem_params = channels * p * p * width + 3 * width
        stem_act = channels * size * size + 2 * side * side * width
    else:
        stride = int(genome.stem_stride or 1)
        side, width = size // stride, int(genome.stem_dim or genome.stages[0].dim)
        stem_params = 9 * channels * width + 9 * width * width + 4 * width
        stem_act = channels * size * size + 4 * side * side * width
    tokens = side * side + prefix
    if genome.position == "absolute":
        stem_params += tokens * width
    parts.append((f"the stem at image_size {size}", stem_params, stem_act, 1))
    in_dim = width
    for i, stage in enumerate(genome.stages):
        halves = i > 0 or genome.stem == "conv"
        d = stage.dim
        label = f"stages[{i}] (depth {stage.depth}, dim {d}"
        if halves:
            side = max(1, side // 2)
            if genome.downsample == "merge":
                parts.append((f"stages[{i}] patch merging (dim {d})", 4 * in_dim * d, 2 * side * side * (in_dim + d), 1))
                in_dim = d
        n = side * side + prefix
        if stage.mixer == "conv":
            mid = max(1, round(d * float(stage.expansion or 4.0)))
            label += f", expansion {stage.expansion:g})"
            first = in_dim * mid + 9 * mid + mid * d + 2 * mid * max(1, int(in_dim * float(stage.se_ratio or 0)))
            rest = d * mid + 9 * mid + mid * d + 2 * mid * max(1, int(d * float(stage.se_ratio or 0)))
            params = first + (in_dim * d if in_dim != d else 0) + (stage.depth - 1) * rest
            act = 6 * n * mid + 2 * n * d
        else:
            hidden = max(1, round(d * float(stage.mlp_ratio or 4.0)))
            label += f", mlp_ratio {stage.mlp_ratio:g})"
            block = 2 * d * hidden + 6 * d
            act = 4 * n * d + 2 * n * hidden
            if stage.mixer in ATTENTION_MIXERS:
                heads = int(stage.heads or 1)
                block += 4 * d * d + heads * heads
                if genome.position == "relative":
                    block += (2 * side - 1) ** 2 * heads
                act += 4 * n * d + 2 * heads * n * n * (2 if stage.mixer == "reattention" else 1)
            params = stage.depth * block + (in_dim * d if in_dim != d else 0)
        if act * stage.depth * FLOAT_BYTES > params * TRAIN_BYTES_PER_PARAM:  # the tokens make it large
            label += f" on {n:,} tokens (image_size {size})"
        parts.append((label, params, act, stage.depth))
        in_dim = d
    hidden = genome.head_hidden
    head = (in_dim * hidden + hidden * genome.num_classes) if hidden else in_dim * genome.num_classes
    parts.append((f"the head (num_classes {genome.num_classes})", head + 2 * in_dim, 0, 1))
    return parts


def estimate_footprint(genome: Genome) -> Footprint:
    """Closed-form parameter and activation estimate of ``genome`` (see the module docstring)."""
    parts = _stage_parts(genome)
    params = sum(p for _, p, _, _ in parts)
    act_total = sum(a * blocks for _, _, a, blocks in parts)
    act_peak = max(a for _, _, a, _ in parts)
    # The part that weighs most in a training run names the field to change.
    largest = max(parts, key=lambda part: part[1] * TRAIN_BYTES_PER_PARAM + part[2] * part[3] * FLOAT_BYTES)[0]
    return Footprint(params=params, act_total=act_total, act_peak=act_peak, largest=largest)


def estimate_macs(genome: Genome) -> int:
    """Closed-form MACs per image from :mod:`nas.cost.analytic` (the formulas the traced count is tested
    against), for genomes too large to build and trace; patch merging is counted as its 2x2 conv."""
    from nas.cost import analytic as cf

    prefix = 1 if genome.pool == "cls" else 0
    if genome.stem == "patch":
        p = int(genome.patch_size or 1)
        side, in_dim = genome.image_size // p, genome.stages[0].dim
        total = cf.patch_embed_macs(genome.image_size, p, genome.in_channels, in_dim)
    else:
        stride = int(genome.stem_stride or 1)
        side, in_dim = genome.image_size // stride, int(genome.stem_dim or genome.stages[0].dim)
        total = side * side * 9 * (genome.in_channels + in_dim) * in_dim
    for i, stage in enumerate(genome.stages):
        d = stage.dim
        halves = i > 0 or genome.stem == "conv"
        if stage.mixer == "conv":
            exp, se = float(stage.expansion or 4.0), float(stage.se_ratio or 0.0)
            stride = 2 if halves and genome.downsample == "pool" else 1
            if halves and genome.downsample == "merge":
                side = max(1, side // 2)
                total += side * side * 4 * in_dim * d
                in_dim = d
            total += cf.mbconv_macs(side, in_dim, d, expansion=exp, se_ratio=se, stride=stride)
            side = max(1, side // stride)
            total += (stage.depth - 1) * cf.mbconv_macs(side, d, d, expansion=exp, se_ratio=se)
        else:
            if halves:
                side = max(1, side // 2)
                total += side * side * 4 * in_dim * d
            n, tau = side * side + prefix, float(stage.mlp_ratio or 4.0)
            if stage.mixer == "shift":
                block = cf.mlp_macs(n, d, tau)
            else:
                block = cf.attention_block_macs(n, d, tau, int(stage.heads or 1), stage.mixer == "reattention")
            total += stage.depth * block
        in_dim = d
    return int(total + cf.head_macs(in_dim, genome.num_classes, genome.head_hidden))


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
