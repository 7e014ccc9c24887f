"""``nas train SPEC --data NAME[:PATH]``: train one network and print its final metrics."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from nas.cli.common import print_json, print_table
from nas.cli.flags import BATCH, COUNT, EPOCHS, RATE, SECONDS, SEED
from nas.errors import ConfigError

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "train", help="train one network on a dataset and report its accuracy",
        description="Train a preset or genome file on a dataset with the family's recommended recipe "
                    "(flags override it) and print the final metrics.",
    )
    p.add_argument("spec", metavar="SPEC", help="preset name (see `nas presets`) or genome file (.yaml/.json)")
    p.add_argument("--data", default="mnist5k", metavar="NAME[:PATH]",
                   help="mnist5k (default, embedded); cifar10, cifar100, fashion_mnist (fetched once into $NAS_DATA, default "
                        "~/.cache/nas) or NAME:DIR; imagefolder:DIR, npz:FILE, synthetic")
    p.add_argument("--epochs", type=EPOCHS, help="epochs to train (default: the recipe's, 5)")
    p.add_argument("--seconds", type=SECONDS, help="wall-clock budget; alone, it replaces the epoch budget")
    p.add_argument("--batch-size", type=BATCH, dest="batch_size")
    p.add_argument("--lr", type=RATE, help="peak learning rate")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the split, initial weights and batch order")
    p.add_argument("--subset", type=COUNT, help="train on only N training images (quick checks)")
    p.add_argument("--device", help="auto (default), cpu or cuda[:N]")
    p.add_argument("--recipe", choices=("default", "paper"), default="default",
                   help="default: the family's short-run recipe; paper: the paper's ImageNet recipe "
                        "(paper-scale presets only; see nas/train/paper_recipes.py)")
    p.add_argument("--config", metavar="FILE", help="YAML/JSON mapping of TrainConfig fields (flags win)")
    p.add_argument("--save", metavar="FILE", help="write the trained state dict here")
    p.add_argument("--force", action="store_true", help="replace an existing --save file of yours")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON on stdout")
    p.set_defaults(func=run)


def _config(args: argparse.Namespace, genome: Any) -> Any:
    """The family's recipe, then the --config file, then the flags (later wins)."""
    from nas.genome import read_document
    from nas.train import TrainConfig
    from nas.train.recipes import recommended_config

    doc: dict[str, Any] = {}
    if args.config:
        extra = read_document(args.config, error=ConfigError)
        if isinstance(extra, dict) and isinstance(extra.get("train"), dict):
            extra = extra["train"]  # a study file's train block
        if not isinstance(extra, dict):
            raise ConfigError(f"{args.config}: expected a mapping of TrainConfig fields, got {type(extra).__name__}")
        doc.update(extra)
    flags = {"epochs": args.epochs, "seconds": args.seconds, "batch_size": args.batch_size, "lr": args.lr,
             "subset": args.subset, "device": args.device, "save_path": args.save}
    doc.update({k: v for k, v in flags.items() if v is not None})
    TrainConfig.from_dict(doc)  # unknown keys and wrong types are reported against the user's own document
    if getattr(args, "recipe", "default") == "paper":
        from nas.train.paper_recipes import paper_config

        config = paper_config(args.spec, **doc)
    else:
        config = recommended_config(genome, **doc)  # the recipe decides augmentation from the final epochs
    if args.seconds is not None and args.epochs is None and "epochs" not in doc:
        config = TrainConfig.from_dict({**config.to_dict(), "epochs": None})  # a time budget alone
    return config


def run(args: argparse.Namespace) -> int:
    from nas.data import load_dataset
    from nas.genome import load_genome
    from nas.train import train

    genome = load_genome(args.spec)
    if args.save:  # checked before training: a bad path must not cost the trained weights
        from nas.paths import check_output_file

        check_output_file(args.save, "--save")
    config = _config(args, genome)
    if config.save_path:  # --save or a --config file's save_path: never a study's file, never yours unasked
        from nas.writes import check_target

        option = "--save" if args.save else f"{args.config}: save_path"
        check_target(config.save_path, option, force=args.force)
        if config.ema_decay is not None:
            from nas.train.trainer import ema_path

            check_target(ema_path(config.save_path), option, force=args.force)
    data = load_dataset(args.data, seed=args.seed, image_size=genome.image_size)
    with _Progress(config, enabled=sys.stderr.isatty()) as progress:
        result = train(genome, data, config, seed=args.seed, report=progress.report, on_step=progress.step)
    if args.json:
        out = result.to_dict()
        out.update({"genome": args.spec, "genome_key": genome.key, "data": data.summary(), "config": config.to_dict()})
        print_json(out)
        return 0
    rows = [{"metric": k, "value": v} for k, v in result.to_dict().items()
            if k != "history" and not (k.startswith("ema_") and v is None)]
    print_table(rows, title=f"{args.spec} on {data.name}")
    if config.save_path:
        print(f"saved state dict to {config.save_path}")
        if config.ema_decay is not None:
            from nas.train.trainer import ema_path

            print(f"saved the moving-average weights to {ema_path(config.save_path)}")
    return 0


class _Progress:
    """A rich progress bar on stderr (stdout stays clean for --json), fed by train()'s hooks."""

    def __init__(self, config: Any, enabled: bool) -> None:
        self.config, self.enabled = config, enabled
        self.bar: Any = None
        self.task: Any = None
        self.last: dict[str, Any] = {}

    def __enter__(self) -> "_Progress":
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task("training", total=None, info="")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def step(self, info: dict[str, Any]) -> None:
        if self.bar is None:
            return
        epochs = self.config.epochs
        total = epochs * info["batches"] if epochs else None
        done = (info["epoch"] - 1) * info["batches"] + info["batch"]
        text = f"loss {info['loss']:.3f}"
        if self.last:
            text += f"  val_acc {self.last['val_acc']:.3f}"
        desc = f"epoch {info['epoch']}" + (f"/{epochs}" if epochs else "")
        self.bar.update(self.task, total=total, completed=done, description=desc, info=text)

    def report(self, entry: dict[str, Any]) -> None:
        self.last = entry
        if self.bar is not None:
            self.bar.console.print(
                f"epoch {entry['epoch']}: train_loss {entry['train_loss']:.4f} train_acc {entry['train_acc']:.4f} "
                f"val_loss {entry['val_loss']:.4f} val_acc {entry['val_acc']:.4f} {entry['img_per_s']:.0f} img/s")
