"""The loop a researcher would write instead of `nas study run`: Optuna's TPE in one process.

It reuses `nas`'s search space, training and cost functions, and nothing of its orchestration (no
Ray, no early stopping, no study folder): the quickstart problem (vit_family on mnist5k, 24 trials
of 3 epochs, val_acc against FLOPs under 5e6 MACs, 2 at a time) in the fewest correct lines.
``benchmarks/search_peers.py`` runs it beside `nas` and Syne Tune; ``--events`` writes one JSON
line per finished trial (its end time, epochs trained and values) for that comparison.

    python benchmarks/plain_optuna_loop.py --seed 0
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import optuna

from nas.cost import count_cost
from nas.data import load_dataset
from nas.genome import parse_genome
from nas.search.space import load_space
from nas.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
FLOPS_LIMIT = 5.0e6


def run(seed: int, n_trials: int = 24, epochs: int = 3, events: Path | None = None) -> optuna.Study:
    data = load_dataset("mnist5k", seed=seed)
    space = load_space(ROOT / "nas" / "configs" / "search_spaces" / "vit_family.yaml")
    budget = TrainConfig(epochs=epochs, batch_size=64, lr=2.0e-3)

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        genome = parse_genome(space.suggest(trial), in_channels=data.channels, num_classes=data.num_classes)
        flops = count_cost(genome).flops
        trial.set_user_attr("constraint", [flops - FLOPS_LIMIT])  # > 0: infeasible, TPE learns it
        val_acc, trained = 0.0, 0
        if flops <= FLOPS_LIMIT:  # over the limit: not trained
            val_acc, trained = train(genome, data, budget, seed=seed).val_acc, epochs
        if events is not None:
            with events.open("a") as fh:
                fh.write(json.dumps({"t": time.time(), "epochs": trained, "key": genome.key,
                                     "values": [val_acc, flops] if trained else None}) + "\n")
        return val_acc, flops

    sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=lambda t: t.user_attrs["constraint"])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=n_trials, n_jobs=2)
    return study


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-trials", type=int, default=24)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--events", type=Path, help="append one JSON line per finished trial here")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = run(args.seed, args.n_trials, args.epochs, args.events)
    for t in study.best_trials:
        print(f"trial {t.number}: val_acc {t.values[0]:.4f} flops {t.values[1]:.3g}")


if __name__ == "__main__":
    main()
