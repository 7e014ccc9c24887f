"""The GPU path, measured: training throughput by precision and compilation, MFU, and trial packing.

Two parts, one run (meant to take under 5 minutes on one GPU):

1. Training-step throughput (forward, cross-entropy, backward, fused AdamW step; img/s after a
   warm-up, CUDA-event timed) at batch 256 for the four 32x32 presets and deit_small at 224, in
   float32, bf16 autocast, bf16 + torch.compile, and bf16 + torch.compile with CUDA graphs
   (``mode="reduce-overhead"``) for the 32x32 presets, whose small kernels leave the GPU waiting on
   kernel launches; deit_small@224 is compute-bound, where graphs gain nothing. MFU of deit_small@224
   training = 3 x (2 x forward MACs per image) x img/s / the card's dense bf16 peak (the backward pass
   costs twice the forward; MACs from fvcore, the README's table).
2. Trials per hour of a quickstart-like study (the joint ViT-family space, 3 epochs per trial, on
   the synthetic 32x32 set, Ray Tune + Optuna, no constraint so every trial trains) with
   ``resources.gpu`` 1, 0.5, 0.25 and 0.125 per trial (1, 2, 4 and 8 trials sharing each GPU).

The bf16 peak is looked up from the device name in ``PEAK_BF16_TFLOPS`` (dense, no sparsity, from
the vendors' data sheets); ``--peak-tflops`` overrides it for a card the table does not know.

    python benchmarks/gpu.py                      # on a GPU machine
    python benchmarks/gpu.py --part throughput    # one part only
    python benchmarks/gpu.py --smoke              # tiny sizes on the CPU: checks that the script runs

``--smoke`` shrinks everything (batch 8, one timed step, deit_small at 32x32, TorchDynamo's capture with
the eager backend instead of Inductor's code generation, which takes minutes on a CPU; two packings of two trials each on one declared GPU that torch cannot see, so the trials
take the CPU fallback); its figures mean nothing.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

SMALL_PRESETS = ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar")
# Dense bf16 tensor-core peak, TFLOPS, by a substring of torch.cuda.get_device_name(); the first
# match wins, so the more specific names come first.
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H200", 989.4),
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("H100", 989.4),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("GH200", 989.4),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("RTX 4090", 165.2),
    ("RTX 3090", 71.0),
)
PACKINGS = (1.0, 0.5, 0.25, 0.125)
SPACE = Path(__file__).resolve().parent.parent / "nas" / "configs" / "search_spaces" / "vit_family.yaml"


@dataclass(frozen=True)
class Settings:
    batch: int
    warmup: int
    steps: int
    deit_size: int  # deit_small's image side
    backend: str  # torch.compile backend
    packings: tuple[float, ...]
    trials_per_gpu_slot: int  # trials per concurrent slot in part 2
    budget: dict[str, Any]


FULL = Settings(batch=256, warmup=5, steps=20, deit_size=224, backend="inductor", packings=PACKINGS,
                trials_per_gpu_slot=2, budget={"epochs": 3, "batch_size": 64, "lr": 2e-3})
SMOKE = Settings(batch=8, warmup=1, steps=1, deit_size=32, backend="eager", packings=(1.0, 0.5),
                 trials_per_gpu_slot=1, budget={"epochs": 1, "batch_size": 32, "subset": 64, "val_subset": 32})


def peak_tflops(name: str, override: float | None) -> float | None:
    """The card's dense bf16 peak: the override, else the first table entry found in its name."""
    if override is not None:
        return override
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in name.lower():
            return value
    return None


# -- part 1: throughput -----------------------------------------------------------------------------
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_step_img_per_s(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, bf16: bool,
                         warmup: int, steps: int, graphs: bool = False) -> float:
    """img/s of whole training steps on one resident batch (data loading excluded, as the trainer's
    data lives on the device)."""
    device = x.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, **({"fused": True} if device.type == "cuda" else {}))

    def step() -> None:
        if graphs:  # a new iteration: CUDA-graph trees may reuse the previous step's output buffers
            torch.compiler.cudagraph_mark_step_begin()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):  # compilation, autotuning and CUDA-graph capture happen here
        step()
    _sync(device)
    if device.type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(steps):
            step()
        end.record()
        end.synchronize()
        seconds = start.elapsed_time(end) / 1000
    else:
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        seconds = time.perf_counter() - t0
    return x.shape[0] * steps / seconds


def _modes(small: bool, device: torch.device) -> list[tuple[str, bool, dict[str, Any] | None]]:
    modes: list[tuple[str, bool, dict[str, Any] | None]] = [
        ("fp32", False, None), ("bf16", True, None), ("bf16+compile", True, {})]
    if small and device.type == "cuda":
        modes.append(("bf16+compile+graphs", True, {"mode": "reduce-overhead"}))
    return modes


def throughput(settings: Settings, device: torch.device, peak: float | None,
               models: tuple[str, ...] = (*SMALL_PRESETS, "deit_small")) -> list[dict[str, Any]]:
    from nas.cost import count_cost
    from nas.genome import load_genome
    from nas.models import build_model

    rows = []
    for name in models:
        genome = load_genome(name)
        if name == "deit_small" and genome.image_size != settings.deit_size:
            genome = genome.replace(image_size=settings.deit_size)
        label = f"{name}@{genome.image_size}"
        x = torch.randn(settings.batch, 3, genome.image_size, genome.image_size, device=device)
        y = torch.randint(0, genome.num_classes, (settings.batch,), device=device)
        macs = count_cost(genome).flops  # forward multiply-accumulates per image
        row: dict[str, Any] = {"model": label, "gmacs": macs / 1e9}
        for mode, bf16, compile_kwargs in _modes(genome.image_size <= 64, device):
            torch.manual_seed(0)
            model = build_model(genome).to(device)
            if compile_kwargs is not None:
                torch._dynamo.reset()
                model = torch.compile(model, backend=settings.backend, **compile_kwargs)
            t0 = time.perf_counter()
            row[mode] = train_step_img_per_s(model, x, y, bf16=bf16, warmup=settings.warmup, steps=settings.steps,
                                             graphs=bool(compile_kwargs and compile_kwargs.get("mode")))
            row[f"{mode} wall_s"] = time.perf_counter() - t0
            del model
            if device.type == "cuda":
                torch.cuda.empty_cache()
        row["compile/fp32"] = row["bf16+compile"] / row["fp32"]
        if peak is not None:
            best = max(v for k, v in row.items() if k in ("fp32", "bf16", "bf16+compile", "bf16+compile+graphs"))
            row["mfu"] = 3 * 2 * macs * best / (peak * 1e12)
        rows.append(row)
        print(_row_text(row), flush=True)
    return rows


def _row_text(row: dict[str, Any]) -> str:
    parts = [f"{row['model']:<20} {row['gmacs']:7.3f} GMACs"]
    for mode in ("fp32", "bf16", "bf16+compile", "bf16+compile+graphs"):
        if mode in row:
            parts.append(f"{mode} {row[mode]:10.0f} img/s ({row[mode + ' wall_s']:.0f}s)")
    parts.append(f"bf16+compile/fp32 {row['compile/fp32']:.2f}x")
    if "mfu" in row:
        parts.append(f"MFU {100 * row['mfu']:.1f}%")
    return " | ".join(parts)


# -- part 2: trials per hour ------------------------------------------------------------------------
def trials_per_hour(settings: Settings, gpus: int, cpus: int) -> list[dict[str, Any]]:
    import ray

    from nas.search.config import StudyConfig
    from nas.search.guard import quiet_ray_notices
    from nas.search.runner import run_study
    from nas.search.storage import load_optuna_study

    tmp = Path(tempfile.mkdtemp(prefix="nas-gpu-bench-"))
    quiet_ray_notices()
    ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
    os.environ.setdefault("TUNE_DISABLE_STRICT_METRIC_CHECKING", "1")
    rows = []
    try:
        for gpu in settings.packings:
            concurrent = max(1, round(gpus / gpu))
            n_trials = settings.trials_per_gpu_slot * concurrent
            doc = {"name": f"pack{gpu:g}", "space": str(SPACE), "data": "synthetic", "budget": settings.budget,
                   "objectives": {"val_acc": "maximize", "flops": "minimize"}, "sampler": "random", "seed": 0,
                   "n_trials": n_trials, "max_concurrent": concurrent,
                   "resources": {"cpu": cpus / concurrent, "gpu": gpu}}
            config = StudyConfig.from_dict(doc, base_dir=tmp)
            t0 = time.perf_counter()
            run_study(config, tmp / f"gpu{gpu:g}", quiet=True)
            wall = time.perf_counter() - t0
            trials = load_optuna_study(tmp / f"gpu{gpu:g}", config.name, config.storage).get_trials()
            done = sum(t.state.name == "COMPLETE" for t in trials)
            notes = {t.user_attrs.get("device_note") for t in trials} - {None}
            rows.append({"gpu": gpu, "concurrent": concurrent, "trials": len(trials), "complete": done,
                         "wall_s": wall, "trials_per_hour": 3600 * len(trials) / wall, "notes": sorted(notes)})
            row = rows[-1]
            print(f"gpu {gpu:<6g} {concurrent:>2} at once | {row['complete']}/{row['trials']} complete in "
                  f"{wall:6.1f}s | {row['trials_per_hour']:7.0f} trials/hour"
                  f" | x{row['trials_per_hour'] / rows[0]['trials_per_hour']:.2f} of gpu {rows[0]['gpu']:g}"
                  + (f" | {'; '.join(sorted(notes))}" if notes else ""), flush=True)
    finally:
        ray.shutdown()
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU: checks the script runs")
    parser.add_argument("--part", choices=("all", "throughput", "trials"), default="all")
    parser.add_argument("--peak-tflops", type=float, default=None, help="the card's dense bf16 peak, TFLOPS")
    parser.add_argument("--models", nargs="+", default=[*SMALL_PRESETS, "deit_small"], metavar="PRESET",
                        help="presets of part 1 (default: the four 32x32 presets and deit_small)")
    parser.add_argument("--packings", nargs="+", type=float, default=None, metavar="GPU",
                        help="resources.gpu per trial in part 2 (default: 1 0.5 0.25 0.125; smoke: 1 0.5)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs Ray may use in part 2 (default: all)")
    args = parser.parse_args(argv)
    settings = SMOKE if args.smoke else FULL
    if args.packings:
        if any(not 0 < g <= 1 for g in args.packings):
            parser.error(f"--packings: each value must be in (0, 1], got {args.packings}")
        settings = dataclasses.replace(settings, packings=tuple(args.packings))
    cuda = torch.cuda.is_available()
    if not cuda and not args.smoke:
        parser.error("no CUDA device: this benchmark measures a GPU; --smoke runs it on the CPU at tiny sizes")
    device = torch.device("cuda" if cuda and not args.smoke else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # fp32 means fp32: the baseline of the bf16 speed-up
        torch.backends.cudnn.allow_tf32 = False
    from nas.runtime import device_name, library_versions

    name = device_name(device)
    peak = peak_tflops(name, args.peak_tflops)
    print(f"device: {name} | bf16 peak: {'unknown (give --peak-tflops)' if peak is None else f'{peak:g} TFLOPS'}"
          f" | torch {library_versions()['torch']}{' | SMOKE: figures are meaningless' if args.smoke else ''}")
    out: dict[str, Any] = {"device": name, "peak_tflops": peak}
    if args.part in ("all", "throughput"):
        print(f"training-step img/s at batch {settings.batch} (warm-up {settings.warmup}, {settings.steps} steps):")
        out["throughput"] = throughput(settings, device, peak, tuple(args.models))
    if args.part in ("all", "trials"):
        gpus = torch.cuda.device_count() if device.type == "cuda" else 1  # smoke: one declared, unusable GPU
        cpus = args.cpus or (2 if args.smoke else os.cpu_count() or 1)
        print(f"trials/hour, quickstart-like study on synthetic 32x32, {gpus} GPU(s), {cpus} CPUs:")
        out["trials"] = trials_per_hour(settings, gpus, cpus)
    return out


if __name__ == "__main__":
    main()
