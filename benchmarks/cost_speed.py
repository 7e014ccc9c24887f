"""How fast cost counting is, and how close the presets land on their papers' parameters and FLOPs.

Prints: the first count of ``vit_base_16`` at 224 (build + one fvcore trace, seconds), a cached repeat
(milliseconds, in memory and from a reopened on-disk cache), the count of each 32x32 preset (seconds),
and a table of every preset's parameters (M) and FLOPs (G MACs: one multiply-add = one flop) against
the published numbers with the relative error.

    python benchmarks/cost_speed.py [--no-table]
"""
from __future__ import annotations

import argparse
import tempfile
import time

t_import = time.perf_counter()
import torch  # noqa: E402

from nas.cost import UNIT, CostCache, count_cost  # noqa: E402
from nas.genome import PRESETS  # noqa: E402

IMPORT_S = time.perf_counter() - t_import


def _rel(value: float, ref: float | None) -> str:
    return f"{100 * (value - ref) / ref:+6.1f}%" if ref else "     -"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-table", action="store_true", help="skip the table of all presets (the slow part)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; unit: {UNIT}")
    print(f"import nas.cost: {IMPORT_S:.2f} s")

    cache = CostCache(None)
    t, cpu = time.perf_counter(), time.process_time()
    first = cache.get_or_compute("vit_base_16")
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    print(f"first count vit_base_16 @224 (build + trace): {wall:.2f} s wall, {cpu:.2f} s CPU  -> {first.gflops:.3f} G MACs")
    t = time.perf_counter()
    cache.get_or_compute("vit_base_16")
    print(f"cached repeat (memory): {1e3 * (time.perf_counter() - t):.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        CostCache(tmp).put(first)
        t = time.perf_counter()
        CostCache(tmp).get_or_compute("vit_base_16", compute=lambda g: (_ for _ in ()).throw(RuntimeError("retraced")))
        print(f"cached repeat (reopened disk cache): {1e3 * (time.perf_counter() - t):.2f} ms")
    for name in ("vit_cifar", "deepvit_cifar", "shiftvit_cifar", "coatnet_cifar"):
        t = time.perf_counter()
        r = count_cost(name)
        print(f"count {name} @32 (build + trace): {time.perf_counter() - t:.3f} s  -> {1e3 * r.gflops:.1f} M MACs")

    if args.no_table:
        return
    print()
    print(f"{'preset':22s} {'params M':>9s} {'paper':>7s} {'err':>7s}  {'GFLOPs':>8s} {'paper':>6s} {'err':>7s}  {'count s':>7s}")
    unsupported: set[str] = set()
    missed: dict[str, dict[str, int]] = {}
    for name, preset in PRESETS.items():
        t = time.perf_counter()
        r = count_cost(name)
        dt = time.perf_counter() - t
        unsupported |= set(r.unsupported_ops)
        if r.uncounted_arithmetic:
            missed[name] = r.uncounted_arithmetic
        paper_p = f"{preset.params_m:7.2f}" if preset.params_m else "      -"
        paper_f = f"{preset.flops_g:6.2f}" if preset.flops_g else "     -"
        print(
            f"{name:22s} {r.params_m:9.3f} {paper_p} {_rel(r.params_m, preset.params_m)}  "
            f"{r.gflops:8.3f} {paper_f} {_rel(r.gflops, preset.flops_g)}  {dt:7.2f}"
        )
    print(f"ops counted as zero across all presets: {', '.join(sorted(unsupported))}")
    print(f"ops with arithmetic left uncounted: {missed or 'none'}")


if __name__ == "__main__":
    main()
