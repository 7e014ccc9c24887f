"""Measured cost: latency, throughput and peak memory of inference or of one training step.

FLOPs are not time: ShiftViT's shift has zero FLOPs yet copies every activation, and attention's
softmax and memory traffic go uncounted. Latency is the honest price of data movement and an
objective in its own right.

Timing is the median of ``repeats`` runs after ``warmup`` runs. On CUDA each run is bracketed by CUDA
events (the GPU's own clock, no host synchronisation inside the run); on CPU each run is timed with
the host clock under ``torch.utils.benchmark``'s thread-count guard, and the runs are summarised by
its :class:`~torch.utils.benchmark.Measurement` (median, IQR). Peak memory is what running the network
takes: its weights, the input, the activations and, for a training step, gradients and AdamW's state.
On CUDA it is the device's max allocated bytes (the weights are on the device when the count starts).
On CPU torch keeps no allocator statistics, and the growth of the resident set over the timed runs
alone misses the weights and the activations that reuse pages freed while the network was built (an
86M-parameter ViT-B read 9.4 MiB that way). So the count starts *before* the network is built: the
growth of the process's peak resident set (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``
where allowed; this also resets the peak-RSS mark that ``ru_maxrss`` reports) from before the build to
the end of the runs; a network passed in ready-built adds its weights' and buffers' sizes. A process
that has freed a lot before (a test run, a notebook) hands those pages out again without growing, so
the CPU figure is never below the bytes torch holds for the run, counted from the tensors: weights,
buffers, the input, the activations saved for the backward pass, gradients and AdamW's state.
"""
from __future__ import annotations

import copy
import resource
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.errors import NasError
from nas.fields import INT32_MAX, integer
from nas.genome.schema import Genome
from nas.runtime import device_name, pick_device

MAX_RUNS = 10**6  # warm-up or timed runs of one measurement
MAX_THREADS = 1024  # torch CPU threads

__all__ = ["LatencyReport", "measure_latency"]


@dataclass(frozen=True)
class LatencyReport:
    """Median latency of one call (a batch), its spread, throughput and peak memory.

    ``mode`` is ``inference`` (eval, no autograd) or ``train_step`` (forward, cross-entropy,
    backward, AdamW step).
    """

    latency_ms: float  # median wall time of one batch, ms
    latency_iqr_ms: float  # interquartile range of the runs, ms
    img_per_s: float  # batch_size / median latency
    peak_mem_mb: float  # MiB to run it: CUDA max allocated, or CPU peak RSS growth from before the build
    batch_size: int
    image_size: int
    mode: str
    device: str  # cpu | cuda[:N]
    device_name: str
    warmup: int
    repeats: int
    memory_source: str  # what peak_mem_mb measures

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


class _CpuPeak:
    """Growth of the peak resident set over a region: ``VmHWM`` reset via ``clear_refs`` (Linux >= 4.0)."""

    def __enter__(self) -> "_CpuPeak":
        self.base = _rss_kib("VmRSS")
        self.reset = False
        try:
            Path("/proc/self/clear_refs").write_text("5")
            self.reset = True
        except OSError:
            pass
        self.maxrss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return self

    def __exit__(self, *exc: object) -> None:
        peak = _rss_kib("VmHWM") if self.reset else None
        if peak is not None and self.base is not None:
            self.mb, self.source = max(0, peak - self.base) / 1024, "cpu peak RSS growth (VmHWM)"
        else:  # ru_maxrss is the lifetime peak: growth shows only above an earlier peak
            grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - self.maxrss0
            grown_bytes = grown if sys.platform == "darwin" else grown * 1024  # bytes on macOS, KiB on Linux
            self.mb, self.source = max(0, grown_bytes) / 2**20, "cpu ru_maxrss growth"


def _resolve(
    subject: nn.Module | Genome | str | Path | Mapping[str, Any], image_size: int | None
) -> tuple[nn.Module, int, int]:
    if isinstance(subject, nn.Module):
        genome = getattr(subject, "genome", None)
        size = image_size or (genome.image_size if genome is not None else None)
        if size is None:
            raise NasError("measuring a plain module needs image_size (its input resolution)")
        return subject, size, genome.in_channels if genome is not None else 3
    from nas.genome import load_genome
    from nas.models import build_model

    genome = load_genome(subject, image_size=image_size)
    return build_model(genome), genome.image_size, genome.in_channels


def measure_latency(
    subject: nn.Module | Genome | str | Path | Mapping[str, Any],
    *,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    train_step: bool = False,
    warmup: int = 3,
    repeats: int = 10,
    image_size: int | None = None,
    threads: int | None = None,
) -> LatencyReport:
    """Time ``subject`` (a network, or a genome/preset/file that is built first) on ``device``.

    A network passed in is left as it was: the training step runs on a copy (its BatchNorm
    statistics and weights would otherwise change) and the train/eval flag is restored. ``threads``
    sets torch's CPU thread count for the measurement (default: as it is); CPU latency depends on it
    strongly, more so on a shared machine, so it is part of the report's ``device_name``.
    """
    batch_size = integer("batch_size", batch_size, minimum=1, cap=INT32_MAX)
    repeats = integer("repeats", repeats, minimum=1, cap=MAX_RUNS)
    warmup = integer("warmup", warmup, minimum=0, cap=MAX_RUNS)
    threads = None if threads is None else integer("threads", threads, minimum=1, cap=MAX_THREADS)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(subject, batch_size, device, train_step, warmup, repeats, image_size)
    finally:
        torch.set_num_threads(previous)


def _measure(
    subject: nn.Module | Genome | str | Path | Mapping[str, Any],
    batch_size: int,
    device: str | torch.device | None,
    train_step: bool,
    warmup: int,
    repeats: int,
    image_size: int | None,
) -> LatencyReport:
    dev = device if isinstance(device, torch.device) else pick_device(device)
    given = isinstance(subject, nn.Module)
    cpu_peak = _CpuPeak().__enter__() if dev.type == "cpu" else None  # counts the build too (module docstring)
    model, size, channels = _resolve(subject, image_size)
    genome = getattr(model, "genome", None)
    if isinstance(genome, Genome):  # the batch's activations must fit too, before the input is allocated
        from nas.models.footprint import check_fits

        check_fits(genome, batch_size=batch_size, training=train_step, device=str(dev))
    held = _module_bytes(model) if given else 0  # already resident: not in the growth
    was_training = model.training
    if train_step and given:
        model = copy.deepcopy(model)
    original_device = next(model.parameters(), torch.empty(0)).device
    model.to(dev)
    num_classes = getattr(getattr(model, "head", None), "out_features", None)

    x = torch.randn(batch_size, channels, size, size, device=dev)
    step = _train_step(model, x, num_classes) if train_step else _inference(model, x)
    try:
        times, mem_mb, source = _time(step, dev, warmup, repeats, cpu_peak)
        if held and cpu_peak is not None:
            mem_mb, source = mem_mb + held / 2**20, source + " + the given network's weights"
        if cpu_peak is not None:
            counted = _held_bytes(model, x, step) / 2**20
            if counted > mem_mb:
                mem_mb, source = counted, "cpu bytes of the tensors held (weights, input, saved activations, grads, AdamW)"
    except torch.OutOfMemoryError as exc:
        raise NasError(f"out of memory measuring batch {batch_size} at {size}px on {dev}: {exc}") from None
    finally:
        if given and not train_step:
            model.to(original_device)
            model.train(was_training)

    from torch.utils.benchmark import Measurement
    from torch.utils.benchmark.utils.common import TaskSpec

    summary = Measurement(
        number_per_run=1,
        raw_times=times,
        task_spec=TaskSpec(stmt="train_step" if train_step else "forward", setup="", num_threads=torch.get_num_threads()),
    )
    median_ms = summary.median * 1e3
    return LatencyReport(
        latency_ms=median_ms,
        latency_iqr_ms=summary.iqr * 1e3,
        img_per_s=batch_size / summary.median,
        peak_mem_mb=mem_mb,
        batch_size=batch_size,
        image_size=size,
        mode="train_step" if train_step else "inference",
        device=str(dev),
        device_name=device_name(dev),
        warmup=warmup,
        repeats=repeats,
        memory_source=source,
    )


def _inference(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    model.eval()

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return run


def _train_step(model: nn.Module, x: torch.Tensor, num_classes: int | None) -> Callable[[], None]:
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    labels = torch.randint(0, num_classes or 2, (x.shape[0],), device=x.device)

    def run() -> None:
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        loss = F.cross_entropy(out, labels) if num_classes else out.float().mean()
        loss.backward()
        optimizer.step()

    run.optimizer = optimizer  # type: ignore[attr-defined]  (its state is part of the memory a step holds)
    return run


def _module_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def _held_bytes(model: nn.Module, x: torch.Tensor, step: Callable[[], None]) -> int:
    """Bytes of the tensors a run holds at its peak: weights, buffers, input, and for a training step the
    activations saved for backward (counted in one more step, each storage once), gradients and AdamW state."""
    total = _module_bytes(model) + x.numel() * x.element_size()
    optimizer = getattr(step, "optimizer", None)
    if optimizer is None:
        return total
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        if ptr not in params:
            saved[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        step()
    total += sum(saved.values())
    total += sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)
    total += sum(v.numel() * v.element_size() for state in optimizer.state.values() for v in state.values()
                 if isinstance(v, torch.Tensor))
    return total


def _time(step: Callable[[], None], dev: torch.device, warmup: int, repeats: int,
          cpu_peak: "_CpuPeak | None" = None) -> tuple[list[float], float, str]:
    """Seconds per run (``repeats`` of them after ``warmup``), peak memory in MiB and what it measures.

    ``cpu_peak``: a CPU count already started (before the build); it is closed here after the runs.
    """
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        for _ in range(warmup):
            step()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
        for start, end in events:
            start.record()
            step()
            end.record()
        torch.cuda.synchronize(dev)
        times = [start.elapsed_time(end) / 1e3 for start, end in events]
        peak = torch.cuda.max_memory_allocated(dev) / 2**20  # weights, input, activations (and grads, AdamW)
        return times, peak, "cuda max allocated"
    from torch.utils.benchmark.utils.common import set_torch_threads

    mem = cpu_peak if cpu_peak is not None else _CpuPeak().__enter__()
    try:
        with set_torch_threads(torch.get_num_threads()):
            for _ in range(warmup):
                step()
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
    finally:
        mem.__exit__(None, None, None)
    return times, mem.mb, mem.source
