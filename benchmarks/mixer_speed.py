"""Training throughput of the 32x32 presets, and what the fused attention kernel is worth.

For each 32x32 preset this prints forward+backward images/s (cross-entropy loss, batch 64, train
mode) on the CPU and, when present, on CUDA. Presets with plain attention are timed twice in one
run: on the default path (``F.scaled_dot_product_attention``) and with attention written as explicit
matmuls + softmax (the path :func:`nas.models.record_attention` switches on to keep the maps). The
two modes alternate iteration by iteration, so drifting clocks or a busy machine hit both alike, and
the median of each is reported. Re-attention mixes the heads' maps between the softmax and ``A.V``,
so it has no fused form and is always explicit.

    python benchmarks/mixer_speed.py [--batch-size 64] [--warmup 5] [--iters 10] [--device cpu]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from nas.genome import load_genome
from nas.layers.attention import Attention
from nas.models import attention_mixers, build_model, record_attention
from nas.runtime import device_name

CIFAR_PRESETS = ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_modes(
    model: nn.Module,
    modes: dict[str, Callable[[], AbstractContextManager]],
    device: torch.device,
    batch: int,
    warmup: int,
    iters: int,
) -> dict[str, float]:
    """Median images/s of one forward+backward step under each mode, the modes interleaved."""
    x = torch.randn(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)

    def step() -> None:
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    seconds: dict[str, list[float]] = {name: [] for name in modes}
    for i in range(warmup + iters):
        for name, mode in modes.items():
            with mode():
                _sync(device)
                start = time.perf_counter()
                step()
                _sync(device)
                if i >= warmup:
                    seconds[name].append(time.perf_counter() - start)
    return {name: batch / statistics.median(s) for name, s in seconds.items()}


def benchmark(name: str, device: torch.device, batch: int, warmup: int, iters: int) -> dict[str, object]:
    torch.manual_seed(0)
    model = build_model(load_genome(name)).to(device).train()
    fusable = any(type(m) is Attention for m in attention_mixers(model))  # re-attention is never fused
    modes: dict[str, Callable[[], AbstractContextManager]] = {"default": nullcontext}
    if fusable:
        modes["explicit"] = lambda: record_attention(model)
    rates = time_modes(model, modes, device, batch, warmup, iters)
    biased = any(type(m) is Attention and m.rel is not None for m in attention_mixers(model))
    if fusable and biased and device.type == "cpu":
        note = "relative-bias attention: explicit on CPU (faster there), fused on CUDA"
    elif fusable:
        note = "attention: fused by default"
    elif attention_mixers(model):
        note = "re-attention: always explicit"
    else:
        note = "no attention"
    return {"preset": name, "params": sum(p.numel() for p in model.parameters()), **rates, "note": note}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per mode first")
    parser.add_argument("--iters", type=int, default=10, help="timed steps per mode (median reported)")
    parser.add_argument("--device", action="append", choices=("cpu", "cuda"),
                        help="repeatable; default: cpu, and cuda when available")
    parser.add_argument("--presets", nargs="+", default=list(CIFAR_PRESETS))
    args = parser.parse_args(argv)
    devices = args.device or ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]

    print(f"torch {torch.__version__}; forward+backward, batch {args.batch_size}, 32x32 inputs, "
          f"{args.warmup} warm-up + {args.iters} timed steps per mode, median")
    header = (f"{'preset':<15} {'params':>7} {'img/s':>9} {'img/s explicit attn':>20} {'fused/explicit':>15}  "
              "(img/s: the default path)")
    for dev in devices:
        device = torch.device(dev)
        print(f"\n{device_name(device)}")
        print(header)
        print("-" * len(header))
        for name in args.presets:
            r = benchmark(name, device, args.batch_size, args.warmup, args.iters)
            explicit, ratio = (f"{r['explicit']:20.1f}", f"{r['default'] / r['explicit']:14.2f}x") if "explicit" in r \
                else (f"{'-':>20}", f"{'-':>15}")
            print(f"{name:<15} {r['params'] / 1e6:6.2f}M {r['default']:9.1f} {explicit} {ratio}  {r['note']}")


if __name__ == "__main__":
    main()
