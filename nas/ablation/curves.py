"""Learning curves of an ablation: has the budget let every variant converge?

An ablation table compares final accuracies; a variant still learning when its schedule ends is
compared at an arbitrary point of its curve, so the table would rank learning speed rather than what
each design reaches. The curves here are every variant's per-epoch train loss, averaged over seeds
(each cell stores its history); the *slowest learner* is the variant with the largest area under its
mean curve, and the note says how much its loss still fell over the last quarter of the epochs: a
few percent there means the budget has converged, tens of percent that it has not.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["mean_curves", "slowest_learner", "convergence_note", "plot_curves", "loss_floor", "records_loss_floor"]


def loss_floor(label_smoothing: float, num_classes: int) -> float:
    """The smallest cross-entropy a network can reach with smoothed targets: the targets' own entropy.

    With smoothing eps over K classes the target puts 1 - eps + eps/K on the true class and eps/K on
    each other one, so even a perfect fit keeps this loss (0.500 for eps 0.1 and 10 classes).
    """
    if num_classes < 2 or label_smoothing <= 0:
        return 0.0
    hi, lo = 1 - label_smoothing + label_smoothing / num_classes, label_smoothing / num_classes
    return float(-(hi * math.log(hi) + (num_classes - 1) * lo * math.log(lo)))


def records_loss_floor(budget: Mapping[str, Any], records: Sequence[Mapping[str, Any]]) -> float | None:
    """The train-loss floor of the budget's label smoothing and the cells' class count; None with mixup or
    CutMix (they soften the targets further, per batch) or when the cells disagree on the classes."""
    from nas.train import TrainConfig

    train = TrainConfig.from_dict(dict(budget))
    classes = {int(r["genome"]["num_classes"]) for r in records if isinstance(r.get("genome"), dict)
               and r["genome"].get("num_classes")}
    if train.mixup_alpha or train.cutmix_alpha or len(classes) != 1:
        return None
    return loss_floor(train.label_smoothing, classes.pop())


def mean_curves(records: Sequence[Mapping[str, Any]], variants: Sequence[str],
                metric: str = "train_loss") -> dict[str, pd.DataFrame]:
    """Per variant: ``epoch``, ``mean``, ``std`` and ``n`` of ``metric`` over its complete cells."""
    out: dict[str, pd.DataFrame] = {}
    for variant in variants:
        rows = [{"epoch": int(h["epoch"]), "value": float(h[metric])}
                for r in records if r.get("variant") == variant and r.get("status") == "complete"
                for h in r.get("history") or [] if h.get(metric) is not None and h.get("epoch") is not None]
        if rows:
            frame = pd.DataFrame(rows).groupby("epoch")["value"].agg(["mean", "std", "count"]).reset_index()
            out[variant] = frame.rename(columns={"count": "n"})
    return out


def slowest_learner(curves: Mapping[str, pd.DataFrame]) -> str | None:
    """The variant with the largest area under its mean train-loss curve (the last to get its loss down)."""
    if not curves:
        return None
    return max(curves, key=lambda v: float(curves[v]["mean"].sum()) / max(1, len(curves[v])))


def convergence_note(curves: Mapping[str, pd.DataFrame], floor: float | None = None) -> str:
    """One sentence on the slowest learner's curve over its last quarter of epochs (and, given the
    loss ``floor`` of :func:`loss_floor`, how far above it the curve ends)."""
    slow = slowest_learner(curves)
    if slow is None:
        return ""
    c = curves[slow]
    epochs = len(c)
    if epochs < 4:
        return (f"Slowest-learning variant: {slow} ({epochs} epochs: too few to judge convergence; see "
                f"curves.png).")
    q = max(1, epochs // 4)
    start, end = float(c["mean"].iloc[-1 - q]), float(c["mean"].iloc[-1])
    last3 = c["mean"].iloc[-4:].to_numpy()
    per_epoch = (last3[0] - last3[-1]) / 3 / last3[0] * 100 if last3[0] else math.nan
    return (f"Slowest-learning variant: {slow} (largest area under its mean train-loss curve); its train loss went "
            f"{start:.3f} → {end:.3f} over the last {q} of {epochs} epochs ({(end - start) / start * 100:+.1f}%), "
            f"{-per_epoch:+.2f}% per epoch over the last 3"
            + (f"; the loss floor with these smoothed targets is {floor:.3f}" if floor else "") + " (curves.png).")


def plot_curves(curves: Mapping[str, pd.DataFrame], path: str | Path, title: str = "",
                floor: float | None = None) -> Path:
    """Mean train loss per epoch of every variant (band: ± std over seeds), the slowest learner bold."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    slow = slowest_learner(curves)
    for variant, c in curves.items():
        width = 2.6 if variant == slow else 1.3
        line, = ax.plot(c["epoch"], c["mean"], lw=width, label=variant + (" (slowest)" if variant == slow else ""))
        std = c["std"].fillna(0)
        ax.fill_between(c["epoch"], c["mean"] - std, c["mean"] + std, color=line.get_color(), alpha=0.12, lw=0)
    if floor:
        ax.axhline(floor, color="0.4", ls=":", lw=1, label=f"loss floor of the smoothed targets ({floor:.3f})")
    if not curves:
        ax.text(0.5, 0.5, "no complete cell with a history", ha="center", va="center", transform=ax.transAxes)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("train loss (mean over seeds, band ± std)")
    ax.set_title(f"{title or 'ablation'}: learning curves")
    ax.grid(True, alpha=0.3)
    if curves:
        ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    path = Path(path)
    from nas.writes import save_figure

    save_figure(fig, path)
    plt.close(fig)
    return path
