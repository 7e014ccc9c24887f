"""The ablation table from stored cell records: one row per variant, mean and spread over seeds.

Papers print an ablation as one row per variant with its cost and its accuracy; short trainings on
small data are noisy, so every metric here is a mean over seeds with its sample standard deviation
(``ddof=1``, pandas' default: the spread one would expect between two further runs; undefined for a
single seed). ``gap`` = train_acc - val_acc is computed per cell, then averaged: CoAtNet's
generalisation axis (Dai et al. 2021, Sec. 3.2). ``delta_val_acc`` is the difference of the variant's
mean val_acc from the baseline's, with its 95% confidence interval and a verdict (``better``,
``worse``, ``too close``) from :func:`nas.stats.compare`: paired over the seeds a row shares with the
baseline, else Welch's test; one seed gives no verdict. The table works on the records only, never
on live models.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from nas.stats import TEST_NAMES, compare

__all__ = ["cells_frame", "ablation_table", "table_rows", "to_markdown", "to_latex", "plot_table",
           "write_table", "METRICS"]

# Per-cell metrics aggregated over seeds (mean and std).
METRICS = ("val_acc", "train_acc", "gap", "train_loss", "val_loss", "img_per_s", "collapse_similarity",
           "similar_blocks")
_CELL_COLUMNS = ("cell", "variant", "seed", "status", "params", "flops", "flops_unit", "val_acc", "train_acc",
                 "train_loss", "val_loss", "img_per_s", "collapse_similarity", "similar_blocks", "key", "device",
                 "duration_s", "error")


def cells_frame(records: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One row per stored cell with the columns the table needs (missing ones are NaN)."""
    frame = pd.DataFrame([{k: r.get(k) for k in _CELL_COLUMNS} for r in records], columns=list(_CELL_COLUMNS))
    for col in ("params", "flops", "val_acc", "train_acc", "train_loss", "val_loss", "img_per_s",
                "collapse_similarity", "similar_blocks"):
        frame[col] = pd.to_numeric(frame[col], errors="coerce")
    frame["gap"] = frame["train_acc"] - frame["val_acc"]
    return frame


def ablation_table(records: Sequence[Mapping[str, Any]], variants: Sequence[str], baseline: str) -> pd.DataFrame:
    """One row per variant, in ``variants`` order (those without a finished cell keep NaN values)."""
    cells = cells_frame(records)
    ok = cells[cells["status"] == "complete"]
    stats = ok.groupby("variant", sort=False)[list(METRICS)].agg(["mean", "std"])  # std: ddof=1
    stats.columns = [f"{m}_{s}" for m, s in stats.columns]
    table = pd.DataFrame(index=pd.Index(list(variants), name="variant"))
    cost = cells.dropna(subset=["params"]).groupby("variant", sort=False)[["params", "flops", "flops_unit"]].first()
    table = table.join(cost).join(stats)
    table["n_seeds"] = ok.groupby("variant").size().reindex(table.index).fillna(0).astype(int)
    table["n_failed"] = (cells[cells["status"] == "failed"].groupby("variant").size()
                         .reindex(table.index).fillna(0).astype(int))
    base_acc = table.loc[baseline, "val_acc_mean"] if baseline in table.index else float("nan")
    table["delta_val_acc"] = table["val_acc_mean"] - base_acc
    table["baseline"] = table.index == baseline
    by_seed = {v: dict(zip(g["seed"].astype(int), g["val_acc"])) for v, g in ok.dropna(subset=["val_acc"])
               .groupby("variant", sort=False)}
    tests = [compare(by_seed.get(v, {}), by_seed.get(baseline, {})) if v != baseline else None for v in table.index]
    table["delta_ci_low"] = [math.nan if c is None else c.ci_low for c in tests]
    table["delta_ci_high"] = [math.nan if c is None else c.ci_high for c in tests]
    table["delta_p"] = [math.nan if c is None else c.p_value for c in tests]
    table["delta_test"] = [None if c is None else c.test for c in tests]
    table["verdict"] = [None if c is None else c.verdict for c in tests]
    for m in ("collapse_similarity", "similar_blocks"):
        if table[f"{m}_mean"].isna().all():
            table = table.drop(columns=[f"{m}_mean", f"{m}_std"])
    return table.reset_index()


def table_rows(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The table as plain dicts (NaN -> None), for ``--json``."""
    rows = []
    for rec in table.to_dict(orient="records"):
        rows.append({k: (None if isinstance(v, float) and math.isnan(v) else
                         v.item() if hasattr(v, "item") else v) for k, v in rec.items()})
    return rows


# -- rendering --------------------------------------------------------------------------------------
def _pm(mean: float, std: float, scale: float = 1.0, digits: int = 2) -> str:
    if mean is None or pd.isna(mean):
        return "-"
    text = f"{mean * scale:.{digits}f}"
    return text if pd.isna(std) else f"{text} ± {std * scale:.{digits}f}"


def _count(value: float) -> str:
    if pd.isna(value):
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Human columns: accuracies in %, gaps and deltas in percentage points, FLOPs in M MACs."""
    rows = []
    for _, r in table.iterrows():
        row = {
            "variant": r["variant"] + (" (baseline)" if r["baseline"] else ""),
            "params": _count(r["params"]),
            "FLOPs (M MACs)": "-" if pd.isna(r["flops"]) else f"{r['flops'] / 1e6:.1f}",
            "img/s": "-" if pd.isna(r["img_per_s_mean"]) else f"{r['img_per_s_mean']:.0f}",
            "val acc (%)": _pm(r["val_acc_mean"], r["val_acc_std"], 100),
            "gap (pp)": _pm(r["gap_mean"], r["gap_std"], 100),
            "train loss": _pm(r["train_loss_mean"], r["train_loss_std"], 1, 3),
            "Δ val acc (pp)": ("-" if pd.isna(r["delta_val_acc"]) or r["baseline"]
                               else f"{r['delta_val_acc'] * 100:+.2f}"),
            "Δ 95% CI (pp)": ("-" if r["baseline"] or pd.isna(r["delta_ci_low"]) else
                              f"[{r['delta_ci_low'] * 100:+.2f}, {r['delta_ci_high'] * 100:+.2f}]"),
            "verdict": _verdict(r),
        }
        if "collapse_similarity_mean" in table:
            row["attn sim"] = _pm(r["collapse_similarity_mean"], r["collapse_similarity_std"], 1, 3)
            no_pairs = pd.isna(r["collapse_similarity_mean"])  # one attention block per shape: nothing compared
            row["similar blocks"] = "-" if no_pairs else f"{r['similar_blocks_mean']:.1f}"
        row["seeds"] = f"{r['n_seeds']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(row: Any) -> str:
    if row["baseline"]:
        return "-"
    if row["verdict"] is not None and not pd.isna(row["verdict"]):
        return str(row["verdict"])
    if row["n_seeds"] < 1:
        return "-"
    return "no verdict (1 seed)" if row["n_seeds"] < 2 else "no verdict (baseline: 1 seed)"


def test_note(table: pd.DataFrame) -> str:
    """The footnote's sentence on the Δ interval: which test gave it, on which rows."""
    used = [t for t in table.get("delta_test", pd.Series(dtype=object)) if isinstance(t, str)]
    if not used:
        return ("no verdicts: a verdict needs two seeds of a row and of the baseline" if len(table) > 1 else "")
    names = sorted(set(used))
    head = ("Δ 95% CI and verdict from a " + " and ".join(TEST_NAMES[n] for n in names)
            + ("" if len(names) == 1 else " (paired where a row shares at least two seeds with the baseline)"))
    return (head + "; better / worse: the interval excludes 0, too close: it includes 0; no multiple-comparison "
            "correction")


LEGEND = ("mean ± std over seeds (sample std, ddof=1); gap = train acc - val acc in percentage points (train acc "
          "on the training batches, averaged over the last epoch); FLOPs are multiply-accumulates per image (fvcore); "
          "img/s = training throughput of one worker; Δ = mean val acc minus the baseline's")
COLLAPSE_LEGEND = ("; attn sim = cosine similarity of consecutive blocks' attention maps per head and token "
                   "column on 64 validation images (DeepViT eq. 2), similar blocks = blocks with similarity > 0.9 "
                   "to the previous one")


def to_markdown(table: pd.DataFrame) -> str:
    legend = LEGEND + (COLLAPSE_LEGEND if "collapse_similarity_mean" in table else "")
    note = test_note(table)
    legend += f"; {note}" if note else ""
    return display_frame(table).to_markdown(index=False, disable_numparse=True) + f"\n\n{legend}.\n"


def _tex(text: str) -> str:
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("±", r"$\pm$"), ("Δ", r"$\Delta$"), ("−", "-")):
        text = text.replace(a, b)
    return text


def to_latex(table: pd.DataFrame, caption: str = "") -> str:
    """A booktabs ``tabular`` (written directly: pandas' ``to_latex`` would need jinja2)."""
    frame = display_frame(table)
    cols = list(frame.columns)
    lines = [r"\begin{table}[t]", r"\centering", r"\begin{tabular}{l" + "r" * (len(cols) - 1) + "}", r"\toprule",
             " & ".join(_tex(c) for c in cols) + r" \\", r"\midrule"]
    for _, r in frame.iterrows():
        lines.append(" & ".join(_tex(str(v)) for v in r.values) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    if caption:
        lines.append(r"\caption{" + _tex(caption) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def plot_table(table: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Horizontal bars of val acc mean ± std per variant; the baseline's bar and mean line highlighted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(table)
    fig, ax = plt.subplots(figsize=(7, 0.45 * n + 1.4))
    means = table["val_acc_mean"].fillna(0) * 100
    stds = table["val_acc_std"].fillna(0) * 100
    colors = ["tab:orange" if b else "tab:blue" for b in table["baseline"]]
    ax.barh(range(n), means, xerr=stds, color=colors, capsize=3)
    ax.set_yticks(range(n), table["variant"])
    ax.invert_yaxis()
    base = table.loc[table["baseline"], "val_acc_mean"]
    if len(base) and not pd.isna(base.iloc[0]):
        ax.axvline(base.iloc[0] * 100, color="tab:orange", linestyle="--", linewidth=1, label="baseline")
        ax.legend(loc="lower right", fontsize=8)
    finite = means[table["val_acc_mean"].notna()]
    if len(finite):
        lo = max(0.0, float((finite - stds).min()) - 5)
        ax.set_xlim(lo, min(100.0, float((finite + stds).max()) + 2))
    ax.set_xlabel("val acc (%) - mean ± std over seeds")
    ax.set_title(title or "ablation")
    fig.tight_layout()
    path = Path(path)
    from nas.writes import save_figure

    save_figure(fig, path, dpi=120)
    plt.close(fig)
    return path


def write_table(table: pd.DataFrame, out_dir: str | Path, title: str = "", description: str = "",
                claims: Sequence[Any] = (), curves: Mapping[str, pd.DataFrame] | None = None,
                loss_floor: float | None = None) -> dict[str, Path]:
    """``table.md`` (with the claims' verdicts, :mod:`nas.ablation.claims`), ``table.csv`` (numeric
    columns), ``table.tex``, ``table.png`` and, given the learning ``curves``
    (:func:`nas.ablation.curves.mean_curves`), ``curves.png`` in ``out_dir``."""
    from nas.ablation.claims import claims_markdown
    from nas.ablation.curves import convergence_note, plot_curves

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = {"md": out_dir / "table.md", "csv": out_dir / "table.csv", "tex": out_dir / "table.tex",
             "png": out_dir / "table.png"}
    head = f"# {title}\n\n" if title else ""
    head += f"{description.strip()}\n\n" if description.strip() else ""
    body = to_markdown(table)
    if curves:
        files["curves"] = plot_curves(curves, out_dir / "curves.png", title, floor=loss_floor)
        body += f"\n{convergence_note(curves, loss_floor)}\n"
    if claims:
        body += "\n## Claims\n\n" + claims_markdown(claims)
    from nas.writes import atomic_write

    atomic_write(files["md"], head + body)
    atomic_write(files["csv"], table.to_csv(index=False))
    atomic_write(files["tex"], to_latex(table, caption=title))
    plot_table(table, files["png"], title)
    return files
