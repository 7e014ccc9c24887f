"""Cost of the on-device loader: training throughput with it vs the same loop on pre-made batches.

Both run the same model, optimizer and batch size, in one process, alternating step by step (so a
change in machine load hits both alike). "Pre-made" batches are already augmented, normalized float
tensors, so the ratio is exactly what indexing, augmentation and normalization cost per step. Also
prints the loader alone (no model) in images per second.

    python benchmarks/loader_overhead.py [--preset shiftvit_cifar] [--images 1024] [--rounds 3]
"""
from __future__ import annotations

import argparse
import statistics
import time

import pandas as pd
import torch
import torch.nn.functional as F

from nas.data import DeviceLoader, fit_images, load_dataset
from nas.genome import load_genome
from nas.models import build_model
from nas.runtime import device_name, pick_device


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="shiftvit_cifar", help="the fastest 32x32 preset shows the most overhead")
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--images", type=int, default=1024, help="training images per timed pass")
    ap.add_argument("--batch-size", type=int, default=32, help="the shift recipe's batch")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    data = load_dataset(args.data)
    genome = load_genome(args.preset).replace(in_channels=data.channels, num_classes=data.num_classes)
    torch.manual_seed(0)
    model = build_model(genome).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = fit_images(data.x_train[: args.images].to(device), genome.image_size)
    y = data.y_train[: args.images]
    loader = DeviceLoader(x, y, batch_size=args.batch_size, mean=data.mean, std=data.std, device=device,
                          shuffle=True, augment=True, flip=data.flip, seed=0)
    premade = [(xb.clone(), yb.clone()) for xb, yb in loader]  # the same kind of batches, made beforehand

    def step(xb: torch.Tensor, yb: torch.Tensor) -> None:
        loss = F.cross_entropy(model(xb), yb, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def one_round() -> tuple[int, float, float]:
        """One pass over the data, alternating step by step between a loader batch (fetch included)
        and a pre-made one, so that a change in machine load hits both sides alike."""
        n, t_loader, t_premade = 0, 0.0, 0.0
        batches = iter(loader)
        for pxb, pyb in premade:
            sync()
            t0 = time.perf_counter()
            xb, yb = next(batches)
            step(xb, yb)
            sync()
            t1 = time.perf_counter()
            step(pxb, pyb)
            sync()
            t_loader += t1 - t0
            t_premade += time.perf_counter() - t1
            n += len(pyb)
        return n, t_loader, t_premade

    for xb, yb in premade[:2]:  # warm-up: allocator, kernels
        step(xb, yb)
    rounds = [one_round() for _ in range(args.rounds)]
    t0 = time.perf_counter()
    n = sum(len(yb) for _ in range(20) for _, yb in loader)
    loader_only = n / (time.perf_counter() - t0)
    # throughput ratio = (n / t_loader) / (n / t_premade) = t_premade / t_loader
    rows = [{"round": i + 1, "loader_img_s": round(n_ / tl, 1), "premade_img_s": round(n_ / tp, 1),
             "ratio": round(tp / tl, 3)} for i, (n_, tl, tp) in enumerate(rounds)]
    _print(rows, f"{args.preset} on {args.data}, batch {args.batch_size}, {device_name(device)}")
    total = sum(r[2] for r in rounds) / sum(r[1] for r in rounds)
    print(f"throughput ratio loader/pre-made: {total:.3f} over all rounds, median per round "
          f"{statistics.median(row['ratio'] for row in rows):.3f}")
    print(f"loader alone (index + crop + flip + normalize): {loader_only:,.0f} img/s")


def _print(rows: list[dict], title: str) -> None:
    """Plain text, so that the whole table survives a log file or a narrow pipe."""
    print(title)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
