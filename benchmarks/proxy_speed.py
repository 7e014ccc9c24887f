"""Time of each zero-cost proxy on the 32x32 presets (build + score, median of several runs) on a CPU.

Each timed run builds the network from its genome under the seed and scores it, which is what a study
pays per candidate (pre-screening) or per trial (proxy objectives). Timings depend on the machine and
on whatever else runs on it; nothing here asserts on them.

    python benchmarks/proxy_speed.py [--batch 32] [--threads 1] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from nas.data import load_dataset
from nas.genome import load_genome
from nas.proxy import DEFAULT_BATCH, PROXIES, proxy_batch, score

PRESETS = ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--batch", type=int, default=DEFAULT_BATCH)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs after one warm-up; the median is printed")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, seed=0)
    print(f"seconds per proxy (build + score, median of {args.repeats} after a warm-up), batch {args.batch}, "
          f"{args.threads} thread(s), {args.data}")
    print("| preset | " + " | ".join(PROXIES) + " |")
    print("|---|" + "---|" * len(PROXIES))
    for name in args.presets:
        genome = load_genome(name)
        batch = proxy_batch(data, args.batch, seed=0, image_size=genome.image_size)
        cells = []
        for proxy in PROXIES:
            score(proxy, genome, batch)  # warm-up: first-call allocations and kernel selection
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                score(proxy, genome, batch)
                times.append(time.perf_counter() - start)
            cells.append(f"{statistics.median(times):.3f}")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
