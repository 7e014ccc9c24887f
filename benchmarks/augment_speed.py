"""What the on-device paper augmentation costs per batch: RandomResizedCrop, RandAugment and both.

Prints, for a batch of normalised ``[B, 3, S, S]`` images, the median milliseconds and images/s of
``PaperAugment`` with only the crop, only RandAugment (m9-mstd0.5-n2) and both (DeiT's recipe), and,
as a scale, one forward+backward step of ``--preset`` on the same batch (skip it with ``--no-model``).

    python benchmarks/augment_speed.py [--batch-size 64] [--size 224] [--iters 5] [--device cpu]
                                       [--preset deit_tiny] [--no-model]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from nas.genome import load_genome
from nas.models import build_model
from nas.runtime import device_name
from nas.train import TrainConfig
from nas.train.augment import PaperAugment

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def _median_ms(fn: Callable[[], object], device: torch.device, warmup: int, iters: int) -> float:
    times = []
    for i in range(warmup + iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if i >= warmup:
            times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--preset", default="deit_tiny")
    parser.add_argument("--no-model", action="store_true")
    args = parser.parse_args()
    device = torch.device(args.device)
    b, s = args.batch_size, args.size
    print(f"device: {device_name(device)}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
          f"batch {b} x 3 x {s} x {s}")
    x = torch.randn(b, 3, s, s, device=device)
    cases = {"crop": dict(rrc_scale_min=0.08), "randaugment": dict(randaugment="m9-mstd0.5-n2"),
             "crop + randaugment": dict(rrc_scale_min=0.08, randaugment="m9-mstd0.5-n2")}
    for name, fields in cases.items():
        aug = PaperAugment.from_config(TrainConfig(**fields), MEAN, STD, device=device, seed=0)
        assert aug is not None
        ms = _median_ms(lambda: aug(x), device, args.warmup, args.iters)
        print(f"{name:>20}: {ms:8.1f} ms/batch  {1000 * b / ms:9.0f} img/s")
    if not args.no_model:
        torch.manual_seed(0)
        model = build_model(load_genome(args.preset)).to(device).train()
        with torch.no_grad():
            classes = model(x[:1]).shape[1]
        y = torch.randint(0, classes, (b,), device=device)

        def step() -> None:
            model.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()

        ms = _median_ms(step, device, 1, max(args.iters // 2, 1))
        print(f"{args.preset + ' fwd+bwd':>20}: {ms:8.1f} ms/batch  {1000 * b / ms:9.0f} img/s (float32, for scale)")


if __name__ == "__main__":
    main()
