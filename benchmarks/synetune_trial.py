"""One Syne Tune trial of the quickstart problem (the entry point ``benchmarks/search_peers.py`` gives
Syne Tune's LocalBackend): the sampled parameters name an architecture of the vit_family space
(replayed through `nas`'s own define-by-run space with Optuna's ``FixedTrial``), which is trained
with `nas.train.train`, reporting ``error = 1 - val_acc`` and ``flops`` after every epoch so that
MOASHA can stop it. An architecture over the FLOPs limit reports once, untrained. Every epoch also
appends a JSON line to the run's ``events`` file (end time, trial folder, epoch, values).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna
from syne_tune import Reporter
from syne_tune.utils import add_config_json_to_argparse, load_config_json

from nas.cost import count_cost
from nas.data import load_dataset
from nas.genome import parse_genome
from nas.search.space import load_space
from nas.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
CONSTANTS = ("events", "seed", "epochs", "flops_limit")


def main() -> None:
    parser = argparse.ArgumentParser()
    add_config_json_to_argparse(parser)
    config = load_config_json(vars(parser.parse_known_args()[0]))
    seed, epochs, limit = int(config["seed"]), int(config["epochs"]), float(config["flops_limit"])
    events, trial = Path(config["events"]), Path(config["st_config_json_filename"]).parent.name
    params = {k: v for k, v in config.items() if k not in CONSTANTS and not k.startswith("st_")}
    space = load_space(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml")
    data = load_dataset("mnist5k", seed=seed)
    genome = parse_genome(space.suggest(optuna.trial.FixedTrial(params)), in_channels=data.channels,
                          num_classes=data.num_classes)
    flops = count_cost(genome).flops
    report = Reporter()

    def log(epoch: int, val_acc: float | None) -> None:
        with events.open("a") as fh:
            fh.write(json.dumps({"t": time.time(), "trial": trial, "key": genome.key, "epoch": epoch,
                                 "val_acc": val_acc, "flops": flops}) + "\n")

    if flops > limit:  # not trained: one report at the last epoch, so no rung records it
        log(0, None)
        report(epoch=epochs, error=1.0, flops=flops)
        return

    def on_epoch(m: dict) -> None:
        log(int(m["epoch"]), float(m["val_acc"]))
        report(epoch=int(m["epoch"]), error=1.0 - float(m["val_acc"]), flops=flops)

    train(genome, data, TrainConfig(epochs=epochs, batch_size=64, lr=2.0e-3), seed=seed, report=on_epoch)


if __name__ == "__main__":
    main()
