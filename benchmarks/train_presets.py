"""Accuracy and speed of the 32x32 presets trained briefly on a dataset (default: mnist5k, 5 epochs).

Prints one row per preset: epochs, val_acc, seconds, training img/s, with the recipe used. Timings
depend on the machine and on whatever else runs on it; nothing here asserts on them.

    python benchmarks/train_presets.py [--presets vit_cifar coatnet_cifar] [--epochs 5] [--threads 2]

On a GPU, CIFAR-sized throughput with bf16 and torch.compile (no download needed):

    python benchmarks/train_presets.py --data synthetic --epochs 3 --set compile=true
"""
from __future__ import annotations

import argparse
import json
import time

import pandas as pd
import torch

from nas.data import load_dataset
from nas.genome import load_genome, load_yaml
from nas.runtime import device_name, pick_device
from nas.train import TrainConfig, train
from nas.train.recipes import family, recommended_config

PRESETS = ("coatnet_cifar", "shiftvit_cifar", "vit_cifar", "deepvit_cifar")
TARGETS = {  # 5-epoch mnist5k val_acc to reach
    "coatnet_cifar": 0.97, "shiftvit_cifar": 0.95, "vit_cifar": 0.85, "deepvit_cifar": 0.85}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", nargs="+", default=list(PRESETS))
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    ap.add_argument("--batch-size", type=int, dest="batch_size")
    ap.add_argument("--lr", type=float)
    ap.add_argument("--warmup", type=float, dest="warmup_epochs")
    ap.add_argument("--weight-decay", type=float, dest="weight_decay")
    ap.add_argument("--crop-pad", type=int, dest="crop_pad")
    ap.add_argument("--label-smoothing", type=float, dest="label_smoothing")
    ap.add_argument("--no-augment", action="store_false", dest="augment", default=None)
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                    help="any other TrainConfig field, value read as YAML (e.g. grad_clip=null)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--verbose", action="store_true", help="print every epoch")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    data = load_dataset(args.data, seed=args.seed)
    rows = []
    for name in args.presets:
        genome = load_genome(name)
        config = recommended_config(genome, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                                    warmup_epochs=args.warmup_epochs, weight_decay=args.weight_decay,
                                    crop_pad=args.crop_pad, label_smoothing=args.label_smoothing, augment=args.augment,
                                    device=args.device)
        config = TrainConfig.from_dict({**config.to_dict(), **_fields(args.set)})  # null allowed here
        report = (lambda e, n=name: print(n, json.dumps({k: round(v, 4) for k, v in e.items()}), flush=True)) \
            if args.verbose else None
        t0 = time.perf_counter()
        result = train(genome, data, config, seed=args.seed, report=report)
        seconds = time.perf_counter() - t0
        target = TARGETS.get(name) if args.data == "mnist5k" else None  # the targets are for mnist5k
        rows.append({
            "preset": name, "family": family(genome), "params": result.params, "epochs": result.epochs,
            "val_acc": round(result.val_acc, 4), "target": target if target is not None else "-",
            "seconds": round(seconds, 1), "img_per_s": round(result.img_per_s, 1),
            "bs": config.batch_size, "lr": config.lr, "warmup": config.warmup_epochs,
            "crop_pad": config.crop_pad if config.augment else "off",
            "amp": config.amp, "compile": config.compile,  # amp auto: bf16 on CUDA, float32 on CPU
        })
        print(json.dumps(rows[-1]), flush=True)
    _print(rows, f"{args.data}, {args.epochs} epochs, seed {args.seed}, "
                 f"{device_name(pick_device(args.device))}")


def _fields(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        out[key] = load_yaml(value)
    return out


def _print(rows: list[dict], title: str) -> None:
    """Plain text, so that the whole table survives a log file or a narrow pipe."""
    print(title)
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
