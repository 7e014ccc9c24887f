"""``nas cost SPEC``: parameters, FLOPs per image (MACs) by stage and operator, optionally latency."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from nas.cli.common import print_json, print_table
from nas.cli.flags import BATCH, IMAGE_SIZE, RUNS, THREADS


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "cost",
        help="parameters, FLOPs per image (MACs) and optionally measured latency of a genome",
        description="Count parameters and FLOPs per image through fvcore (MACs: one multiply-add = one flop), "
        "broken down by stage and operator; --latency also measures latency, throughput and peak memory.",
    )
    p.add_argument("spec", help="preset name or genome file (YAML/JSON)")
    p.add_argument("--image-size", type=IMAGE_SIZE, default=None, help="input resolution (overrides the genome's)")
    p.add_argument("--batch", type=BATCH, default=1, help="batch size for --latency (FLOPs are always per image)")
    p.add_argument("--device", default=None, help="cpu | cuda[:N] for --latency (default: CUDA when available)")
    p.add_argument("--latency", action="store_true", help="also measure latency, images/s and peak memory")
    p.add_argument("--train-step", action="store_true", help="with --latency: time a training step, not inference")
    p.add_argument("--warmup", type=RUNS(0), default=3, help="untimed runs before timing (default 3)")
    p.add_argument("--repeats", type=RUNS(1), default=10, help="timed runs; the median is reported (default 10)")
    p.add_argument("--threads", type=THREADS, default=None, help="torch CPU threads while timing (default: torch's)")
    p.add_argument("--cache", default=None, metavar="DIR", help="study directory whose cost cache to read and fill")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.cost import CostCache, count_cost, measure_latency
    from nas.errors import ConfigError
    from nas.genome import load_genome

    if args.train_step and not args.latency:  # it changes only what --latency times
        raise ConfigError("--train-step times a training step for --latency; add --latency (or drop --train-step)")
    if args.cache:
        from nas.paths import check_output_dir

        check_output_dir(args.cache, "--cache")
    genome = load_genome(args.spec, image_size=args.image_size)
    if args.cache:
        cache = CostCache(args.cache)
        if cache.problems:
            print(f"warning: {cache.describe_problems()}", file=sys.stderr)
        report = cache.get_or_compute(genome)
    else:
        report = count_cost(genome)
    latency = None
    if args.latency:
        latency = measure_latency(
            genome, batch_size=args.batch, device=args.device, train_step=args.train_step,
            warmup=args.warmup, repeats=args.repeats, threads=args.threads,
        )

    if args.json:
        out: dict[str, Any] = {"spec": args.spec, "layout": genome.layout, **report.to_dict()}
        out["gflops"] = report.gflops
        out["params_m"] = report.params_m
        out["uncounted_arithmetic"] = report.uncounted_arithmetic
        if latency is not None:
            out["latency_ms"] = latency.latency_ms
            out["img_per_s"] = latency.img_per_s
            out["latency"] = latency.to_dict()
        print_json(out)
        return 0

    print_table(
        [
            {"quantity": "parameters", "value": f"{report.params:,}", "unit": f"{report.params_m:.3f} M"},
            {"quantity": "trainable", "value": f"{report.trainable_params:,}", "unit": "parameters"},
            {"quantity": "FLOPs per image", "value": f"{report.flops:,}", "unit": f"{report.gflops:.4g} G {report.unit}"},
        ],
        title=f"{args.spec} ({genome.layout}, {report.image_size}px, key {report.key})",
    )
    print_table(
        [
            {
                "stage": name,
                "params": report.params_by_stage.get(name, 0),
                "GFLOPs (G MACs)": flops / 1e9,
                "share %": 100.0 * flops / max(report.flops, 1),
            }
            for name, flops in report.flops_by_stage.items()
        ],
        title="by stage",
    )
    print_table(
        [
            {"operator": op, "GFLOPs (G MACs)": flops / 1e9, "share %": 100.0 * flops / max(report.flops, 1)}
            for op, flops in report.flops_by_operator.items()
        ],
        title="by operator",
    )
    listed = ", ".join(f"{op.removeprefix('aten::')} x{n}" for op, n in report.unsupported_ops.items()) or "none"
    print(f"uncounted elementwise ops (zero MACs by convention): {listed}")
    if report.uncounted_arithmetic:
        print(f"warning: ops with arithmetic that no handle counts: {', '.join(report.uncounted_arithmetic)}")
    if latency is not None:
        print_table(
            [
                {
                    "mode": latency.mode,
                    "batch": latency.batch_size,
                    "latency ms (median)": latency.latency_ms,
                    "IQR ms": latency.latency_iqr_ms,
                    "img/s": latency.img_per_s,
                    "peak mem MiB": latency.peak_mem_mb,
                    "device": latency.device_name,
                }
            ],
            title=f"measured ({latency.repeats} runs after {latency.warmup} warm-up; memory: {latency.memory_source})",
        )
    return 0
