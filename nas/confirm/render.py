"""A confirmation as people read it: ``confirm.md``, ``confirm.csv``, ``confirm.png``, ``confirm.json``.

The plot puts each architecture's study score (x, the search's fidelity) against its confirmed mean
(y, with the 95% interval as an error bar) beside the identity line: points on the line kept their
score, points below lost it at the longer budget, and a crossing of two points is a ranking the
study got wrong. Study-front members are filled, confirmed-front members ringed.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from nas.analysis.confirmed import CONFIRM_FILE
from nas.confirm.summary import COUNTED, Confirmation
from nas.text import pipe_table, short_number

__all__ = ["confirmation_markdown", "confirmation_frame", "plot_confirmation", "write_confirmation"]


def _p(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.3g}"


def _signed(value: float) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:+.3f}"


def confirmation_frame(conf: Confirmation) -> pd.DataFrame:
    """One numeric row per architecture: study values, confirmed statistics, both front flags."""
    rows = []
    for a in conf.architectures:
        c = a.candidate
        row: dict[str, Any] = {"number": c.number, "name": c.name, "layout": c.layout, "key": c.key,
                               "study_rank": c.rank, "study_front": c.on_front, "confirmed_front": a.confirmed_front,
                               "n_seeds": a.n_seeds, "n_failed": a.n_failed,
                               "params": c.attrs.get("params"), "flops": c.attrs.get("flops")}
        for o, s in a.confirmed.items():
            row[f"study_{o}"] = c.values[o]
            row.update({f"{o}_mean": s.mean, f"{o}_std": s.std, f"{o}_ci_low": s.ci_low, f"{o}_ci_high": s.ci_high})
        rows.append(row)
    return pd.DataFrame(rows)


def _arch_table(conf: Confirmation) -> str:
    trained = conf.trained
    head = ["architecture", "study rank"]
    for o in trained:
        head += [f"study {o}", f"confirmed {o} (mean ± std)", f"{o} 95% CI"]
    head += [o for o in conf.objectives if o in COUNTED] + ["seeds", "confirmed front"]
    rows = []
    for a in conf.architectures:
        c = a.candidate
        cells = [c.name, f"{c.rank}" + (" (front)" if c.on_front else "")]
        for o in trained:
            s = a.confirmed[o]
            spread = "" if math.isnan(s.std) else f" ± {short_number(s.std, 3)}"
            cells += [short_number(c.values[o]), f"{short_number(s.mean)}{spread}" if s.n else "-",
                      "-" if math.isnan(s.ci_low) else f"[{short_number(s.ci_low)}, {short_number(s.ci_high)}]"]
        cells += [short_number(c.values[o]) for o in conf.objectives if o in COUNTED]
        cells += [f"{a.n_seeds}" + (f" ({a.n_failed} failed)" if a.n_failed else ""),
                  "yes" if a.confirmed_front else ("no" if a.n_seeds else "-")]
        rows.append(cells)
    return pipe_table(head, rows)


def _interval(low: float, high: float) -> str:
    return "-" if math.isnan(low) or math.isnan(high) else f"[{low:+.2f}, {high:+.2f}]"


def _correlation_table(conf: Confirmation) -> str:
    head = ["objective", "architectures", "n", "Kendall tau", "95% CI", "p", "Spearman rho", "95% CI", "p"]
    return pipe_table(head, ([o, "all confirmed" if scope == "all" else "study front", str(c.n),
                              _signed(c.kendall_tau), _interval(c.kendall_low, c.kendall_high), _p(c.kendall_p),
                              _signed(c.spearman_rho), _interval(c.spearman_low, c.spearman_high), _p(c.spearman_p)]
                             for o, scopes in conf.correlations.items() for scope, c in scopes.items()))


def _front_line(conf: Confirmation) -> str:
    study = [a.candidate.name for a in conf.architectures if a.candidate.on_front]
    confirmed = [a.candidate.name for a in conf.architectures if a.confirmed_front]
    kept = [n for n in study if n in confirmed]
    hv = conf.hypervolume
    if hv.get("reference") is None:
        hv_text = "no reference point (the study has no complete trial)"
    else:
        ref = ", ".join(f"{k}={short_number(v)}" for k, v in hv["reference"].items())
        frac = lambda f: "" if f is None else f" ({f:.4f} of the box)"  # noqa: E731
        hv_text = (f"study front {short_number(hv['study'], 6)}{frac(hv.get('study_fraction'))}, confirmed front "
                   f"{short_number(hv['confirmed'], 6)}{frac(hv.get('confirmed_fraction'))}; reference point {ref}")
    return (f"Study front ({len(study)}): {', '.join(study)}.  \nConfirmed front ({len(confirmed)}): "
            f"{', '.join(confirmed) or 'none'}; {len(kept)} of the study's {len(study)} front members stay on it.  \n"
            f"Hypervolume: {hv_text}.")


def confirmation_markdown(conf: Confirmation) -> str:
    """The whole confirmation as Markdown: header, per-architecture table, correlations, fronts."""
    n_front = sum(a.candidate.on_front for a in conf.architectures)
    head = (f"# Confirmation of study {conf.study}\n\n"
            f"{len(conf.architectures)} architectures (the study's front of {n_front} and the next "
            f"{len(conf.architectures) - n_front} by non-dominated rank and crowding distance) retrained at "
            f"{_budget(conf.budget)} (the study: {_budget(conf.study_budget)}) on {conf.data}, seeds "
            f"{', '.join(map(str, conf.seeds))}; everything else as the study's budget. The cells trained for "
            f"{conf.cell_s:.0f} s in all (summed over cells), {conf.span_s:.0f} s of wall time from the first cell's "
            f"start to the last one's end.\n")
    legend = ("mean ± sample std (ddof=1) over the complete seeds; 95% CI: Student's t-interval of the mean "
              "(scipy.stats); study rank: non-dominated rank among the study's complete trials (0 = its front); "
              "confirmed front: non-dominated at the confirmed means.")
    corr = ("Rank agreement between the study's score and the confirmed mean (scipy.stats.kendalltau, tau-b, and "
            "spearmanr; two-sided p-values; 95% CI through Fisher's z with Fieller et al.'s variances, from 5 (tau) "
            "and 4 (rho) architectures; fewer than 3 architectures: not computed). Counted objectives "
            f"({', '.join(o for o in conf.objectives if o in COUNTED) or 'none here'}) are re-counted identical "
            "and have none.")
    return "\n".join([head, _arch_table(conf), "", legend, "", "## Rank agreement", "", _correlation_table(conf), "",
                      corr, "", "## Fronts", "", _front_line(conf), ""])


def plot_confirmation(conf: Confirmation, path: str | Path) -> Path:
    """Study score against confirmed mean per trained objective, with 95% intervals and the identity line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.analysis.report import place_labels

    trained = conf.trained or list(conf.objectives)[:1]
    fig, axes = plt.subplots(1, len(trained), figsize=(6.4 * len(trained), 6), dpi=120, squeeze=False)
    for ax, o in zip(axes[0], trained):
        pts = [(a.candidate.values[o], a.confirmed[o], a) for a in conf.architectures if a.confirmed[o].n]
        for on_front, style in ((False, {"facecolors": "white", "edgecolors": "0.35"}),
                                (True, {"color": "tab:blue", "edgecolors": "tab:blue"})):
            sel = [(x, s, a) for x, s, a in pts if a.candidate.on_front == on_front]
            if not sel:
                continue
            xs, ys = [x for x, _, _ in sel], [s.mean for _, s, _ in sel]
            low = [0.0 if math.isnan(s.ci_low) else s.mean - s.ci_low for _, s, _ in sel]
            high = [0.0 if math.isnan(s.ci_high) else s.ci_high - s.mean for _, s, _ in sel]
            ax.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor="0.55", elinewidth=1, capsize=3, zorder=2)
            ax.scatter(xs, ys, s=55, zorder=3, linewidths=1.2,
                       label="study front" if on_front else "next by rank", **style)
        ring = [(x, s.mean) for x, s, a in pts if a.confirmed_front]
        if ring:
            ax.scatter(*zip(*ring), s=190, facecolors="none", edgecolors="tab:red", linewidths=1.4, zorder=4,
                       label="confirmed front")
        values = [v for x, s, _ in pts for v in (x, s.mean)]  # intervals may run off the axes: points may not
        if values:
            lo, hi = min(values), max(values)
            pad = 0.05 * (hi - lo or abs(hi) or 1.0)
            ax.plot([lo - pad, hi + pad], [lo - pad, hi + pad], color="0.6", ls="--", lw=1, label="identity", zorder=1)
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_ylim(lo - pad, hi + pad)
        place_labels(fig, ax, [(f"#{a.candidate.number}", x, s.mean) for x, s, a in pts])
        corr = conf.correlations.get(o, {}).get("all")
        sub = "" if corr is None or math.isnan(corr.kendall_tau) else \
            f"\nKendall tau {corr.kendall_tau:+.2f} (p {corr.kendall_p:.2g}), Spearman rho {corr.spearman_rho:+.2f}"
        ax.set_title(f"{o}: study vs confirmed{sub}", fontsize=11)
        ax.set_xlabel(f"study {o} ({_budget(conf.study_budget)}, seed of the study)")
        ax.set_ylabel(f"confirmed {o} ({_budget(conf.budget)}, mean and 95% CI over {len(conf.seeds)} seeds)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    fig.suptitle(f"Confirmation of study {conf.study}", fontsize=12)
    fig.tight_layout()
    path = Path(path)
    from nas.writes import save_figure

    save_figure(fig, path)
    plt.close(fig)
    return path


def _budget(b: dict[str, Any]) -> str:
    from nas.train import TrainConfig

    train = TrainConfig.from_dict(b)
    if train.epochs is None:
        return f"{train.seconds:g} s"
    return f"{train.epochs} epoch{'s' if train.epochs != 1 else ''}"


def _atomic(path: Path, text: str) -> None:
    from nas.writes import atomic_write

    atomic_write(path, text)


def write_confirmation(conf: Confirmation, out_dir: str | Path) -> dict[str, Path]:
    """The four files of a confirmation, each replaced atomically (a crash never leaves half a file)."""
    out = Path(out_dir)
    files = {"md": out / "confirm.md", "csv": out / "confirm.csv", "png": out / "confirm.png",
             "json": out / CONFIRM_FILE}
    _atomic(files["md"], confirmation_markdown(conf))
    _atomic(files["csv"], confirmation_frame(conf).to_csv(index=False))
    plot_confirmation(conf, files["png"])  # written atomically (nas.writes.save_figure)
    _atomic(files["json"], json.dumps(conf.to_dict(), indent=1, default=_plain, allow_nan=False))
    return files


def _plain(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    return str(obj)
