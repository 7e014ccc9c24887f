"""Channels-last against the default (channels-first) layout on this machine: training and evaluation.

``TrainConfig.channels_last: auto`` trains networks with real (overlapping) convolutions channels-last
on every device, and the one-shot scorer evaluates such subnets channels-last. This measures why, in
one run: each network trains one epoch both ways (the order alternates between networks, after one
warm-up training, so neither layout profits from a warm cache), then is evaluated both ways.

The networks: the CoAtNet preset (C-C-T-T) and ``--archs`` genomes drawn uniformly from the
quickstart's space (``vit_family``) among those with at least one MBConv stage; torch on
``--threads`` threads (1: what one trial of a 2-core study gets).

    python benchmarks/channels_last.py [--archs 8] [--data mnist5k] [--threads 1] [--seed 0]
"""
from __future__ import annotations

import argparse
import random
import time

import pandas as pd
import torch

from nas.configs import resolve_config
from nas.data import load_dataset
from nas.genome import Genome, load_genome
from nas.models import build_model
from nas.search.space import load_space
from nas.supernet.sampling import draw
from nas.train import TrainConfig, train
from nas.train.trainer import convs_channels_last, evaluate, has_real_convs


def _genomes(n: int, seed: int, data) -> list[tuple[str, Genome]]:
    fixed = {"in_channels": data.channels, "num_classes": data.num_classes}
    space = load_space(resolve_config("space", "vit_family"))
    rng = random.Random(seed)
    out = [("coatnet_cifar", load_genome("coatnet_cifar").replace(**fixed))]
    while len(out) < n + 1:
        g = draw(space, rng, fixed)
        if has_real_convs(build_model(g)):
            out.append(("-".join(s.mixer[:4] for s in g.stages), g))
    return out


def _eval_s(model: torch.nn.Module, loader, repeats: int = 2) -> float:
    evaluate(model, loader)  # oneDNN builds its kernels on the first pass
    t = time.perf_counter()
    for _ in range(repeats):
        evaluate(model, loader)
    return (time.perf_counter() - t) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--archs", type=int, default=8)
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data = load_dataset(args.data, seed=0, image_size=32)
    nets = _genomes(args.archs, args.seed, data)
    loader = _val_loader(data)
    train(nets[1][1], data, _config(False), seed=0)  # warm-up: imports, first allocations
    rows = []
    for i, (name, genome) in enumerate(nets):
        row: dict = {"network": name}
        for cl in ((True, False) if i % 2 else (False, True)):
            t = time.perf_counter()
            result = train(genome, data, _config(cl), seed=0)
            row[f"train_s_{'cl' if cl else 'cf'}"] = time.perf_counter() - t
            assert result.channels_last == cl
        model = build_model(genome).eval()
        row["eval_s_cf"] = _eval_s(model, loader)
        row["eval_s_cl"] = _eval_s(convs_channels_last(model), loader)
        rows.append(row)
        print(f"  {name}: train {row['train_s_cf']:.2f} s -> {row['train_s_cl']:.2f} s, "
              f"eval {row['eval_s_cf']:.3f} s -> {row['eval_s_cl']:.3f} s", flush=True)
    df = pd.DataFrame(rows)
    total = {"network": "all (sum)", **df.drop(columns="network").sum().to_dict()}
    df = pd.concat([df, pd.DataFrame([total])], ignore_index=True)
    df["train speed-up"] = df["train_s_cf"] / df["train_s_cl"]
    df["eval speed-up"] = df["eval_s_cf"] / df["eval_s_cl"]
    print(f"\n{args.data}, one epoch of training (batch 64) and one evaluation pass of the validation split, "
          f"torch {torch.__version__}, {args.threads} thread(s); cf = channels-first, cl = channels-last")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


def _config(channels_last: bool) -> TrainConfig:
    return TrainConfig(epochs=1, batch_size=64, lr=2e-3, device="cpu", channels_last=channels_last)


def _val_loader(data):
    from nas.train.trainer import _loaders

    config = TrainConfig(epochs=1, batch_size=64, augment=False, device="cpu")
    return _loaders(data, config, 32, torch.device("cpu"), 0, False)[1]


if __name__ == "__main__":
    main()
