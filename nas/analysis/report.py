"""``nas study report``: a folder that shows what a study found, readable without Python.

It holds ``pareto.png`` (the objectives against each other, the front highlighted and labelled,
reference presets as named stars), ``hypervolume.png`` (progress per trial), ``trials.csv`` (every
stored column), ``trials.md`` (the front and the trials as Markdown tables) and ``report.html``, one
static file with the PNGs embedded as data URIs so it can be mailed or archived alone.
Everything is drawn from the stored records; no model is built.
"""
from __future__ import annotations

import base64
import datetime as _dt
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from nas.analysis.pareto import HypervolumeSummary, hypervolume_history, hypervolume_summary
from nas.analysis.study import StudyView, open_study
from nas.text import pipe_table
from nas.writes import Owner, atomic_copy, atomic_write, claim_folder

__all__ = ["ReportResult", "write_report", "plot_pareto", "plot_hypervolume", "plot_axes", "markdown_table",
           "place_labels"]

COSTS = ("flops", "params", "latency_ms")
LABELS = {
    "flops": "FLOPs per image (MACs)", "params": "parameters", "latency_ms": "latency (ms per batch)",
    "val_acc": "validation accuracy", "train_acc": "training accuracy", "val_loss": "validation loss",
    "train_loss": "training loss",
}
UNITS = {"flops": "MACs", "latency_ms": "ms"}
TABLE = ("number", "state", "status", "layout", "depths", "dims", "val_acc", "train_acc", "val_loss", "train_loss",
         "params", "flops", "latency_ms", "img_per_s", "duration_s", "key", "pareto", "error")


@dataclass(frozen=True)
class ReportResult:
    dir: Path
    files: dict[str, Path]
    hypervolume: HypervolumeSummary | None

    def to_dict(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "files": {k: str(v) for k, v in self.files.items()},
                "hypervolume": None if self.hypervolume is None else self.hypervolume.to_dict()}


# -- tables -----------------------------------------------------------------------------------------
def _cell(value: Any, column: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, bool):
        return "yes" if value else ""
    if column in ("params", "flops", "number") and isinstance(value, (int, float)):
        return f"{int(value):,}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _rows(frame: pd.DataFrame, objectives: list[str]) -> tuple[list[str], list[dict[str, Any]]]:
    """The readable columns of the trials table (objectives first after the layout) and its rows."""
    frame = frame.copy()
    stages = sorted({int(c[1:].split(".")[0]) for c in frame.columns if c[:1] == "s" and c[1:2].isdigit()})
    for field, out in (("depth", "depths"), ("dim", "dims")):
        cols = [f"s{i}.{field}" for i in stages if f"s{i}.{field}" in frame]
        if cols:
            frame[out] = frame[cols].apply(lambda r: ",".join(str(int(v)) for v in r if pd.notna(v)), axis=1)
    order = list(dict.fromkeys([*TABLE[:6], *objectives, *TABLE[6:]]))
    columns = [c for c in order if c in frame.columns and frame[c].notna().any()]
    return columns, [dict(zip(columns, row)) for row in frame[columns].itertuples(index=False, name=None)]


def markdown_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    return pipe_table(columns, ([_cell(r.get(c), c) for c in columns] for r in rows)) + "\n"


def _html_table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(r.get(c), c))}</td>" for c in columns) + "</tr>\n"
                   for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


# -- plots ------------------------------------------------------------------------------------------
def plot_axes(objectives: dict[str, str]) -> tuple[str, str, str]:
    """``(x, y, note)``: a cost on x and accuracy (or the other objective) on y; with >2 objectives the first two."""
    names = list(objectives)
    if len(names) == 1:
        return ("params" if names[0] == "flops" else "flops"), names[0], ""
    a, b = names[:2]
    x, y = (a, b) if a in COSTS and b not in COSTS else (b, a)
    note = f"first two of {len(names)} objectives ({', '.join(names)}); front points may look dominated here" \
        if len(names) > 2 else ""
    return x, y, note


def _label(name: str, direction: str | None, log: bool = False) -> str:
    text = LABELS.get(name, name)
    if name in LABELS:
        text += f" [{name}]"
    if log:
        text += ", log scale"
    if direction:
        text += "  (" + ("higher" if direction == "maximize" else "lower") + " is better)"
    return text


def _stopper(view: StudyView) -> str:
    """The scheduler that stopped a study's pruned trials, as the legend names it."""
    kind = (getattr(view.config, "scheduler", None) or {}).get("kind")
    return {"moasha": " by MO-ASHA", "asha": " by ASHA"}.get(kind, "")


def _agg() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_pareto(view: StudyView, frame: pd.DataFrame, path: Path) -> Path:
    """Accuracy against cost: all complete trials grey, the front as a labelled step line, presets as stars."""
    plt = _agg()
    from matplotlib.ticker import EngFormatter

    x, y, note = plot_axes(view.objectives)
    fig, ax = plt.subplots(figsize=(10, 7), dpi=120)
    state = frame["state"] if "state" in frame else pd.Series(dtype=str)
    has = lambda df, c: df[c].notna() if c in df else pd.Series(False, index=df.index)  # noqa: E731
    done = frame[(state == "COMPLETE") & has(frame, x) & has(frame, y)] if not frame.empty else frame
    status = frame["status"] if "status" in frame else pd.Series("", index=frame.index)
    infeasible = frame[(status == "infeasible") & has(frame, x)] if not frame.empty else frame
    pruned = frame[(state == "PRUNED") & (status != "infeasible") & has(frame, x) & has(frame, y)] \
        if not frame.empty else frame
    refs = {k: r for k, r in view.references().items()
            if r.get("status") == "complete" and r.get(x) is not None and r.get(y) is not None}
    xs = [*done.get(x, []), *pruned.get(x, []), *infeasible.get(x, []), *(r[x] for r in refs.values())]
    xs = [float(v) for v in xs if v is not None and float(v) > 0]
    log = bool(xs) and max(xs) / min(xs) > 100
    if done.empty:
        ax.text(0.5, 0.5, "no complete trials yet", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    else:
        ax.scatter(done[x], done[y], s=28, color="0.6", alpha=0.8, label=f"complete trials ({len(done)})", zorder=2)
    if len(pruned):
        ax.scatter(pruned[x], pruned[y], s=36, marker="v", facecolors="none", edgecolors="tab:orange",
                   label=f"stopped early{_stopper(view)} ({len(pruned)}, {y} when stopped)", zorder=2)
    if len(infeasible):
        ax.scatter(infeasible[x], [0.02] * len(infeasible), s=40, marker="x", color="tab:red",
                   transform=ax.get_xaxis_transform(), label=f"over a constraint, not trained ({len(infeasible)})",
                   zorder=3)
    front = done[done["pareto"]].sort_values(x) if "pareto" in done else done.iloc[0:0]
    if len(front):
        step = "steps-post" if view.objectives.get(x, "minimize") == "minimize" else "steps-pre"
        if len(view.objectives) <= 2:  # a step line through a projected 3-D front would claim dominance it lacks
            ax.plot(front[x], front[y], drawstyle=step, color="tab:blue", lw=1.6, zorder=3)
        ax.scatter(front[x], front[y], s=70, color="tab:blue", edgecolors="white", linewidths=1, zorder=4,
                   label=f"Pareto front ({len(front)})")
        labels = [(f"#{int(r['number'])} {r.get('layout') or ''}".strip(), r[x], r[y]) for _, r in front.iterrows()]
    for name, r in refs.items():
        ax.scatter([r[x]], [r[y]], s=220, marker="*", color="gold", edgecolors="black", linewidths=0.8, zorder=5,
                   label="reference presets (same data and budget)" if name == next(iter(refs)) else None)
    if log:
        ax.set_xscale("log")
    elif x in ("flops", "params"):
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.margins(x=0.12, y=0.08)
    if len(infeasible):  # drawn in axes coordinates for y, so autoscaling did not see their x
        lo, hi = ax.get_xlim()
        far = float(infeasible[x].max())
        ax.set_xlim(lo, max(hi, far * (1.3 if log else 1.05)))
    for axis_name, line, (lo, hi) in ((x, ax.axvline, ax.get_xlim()), (y, ax.axhline, ax.get_ylim())):
        limit = view.config.constraints.get(axis_name)
        if limit is None:
            continue
        text = f"{axis_name} limit {_num(limit)} {UNITS.get(axis_name, '')}".rstrip()
        if lo <= limit <= hi:  # a limit far beyond the trials would squash them into a corner: only named then
            line(limit, color="tab:red", ls="--", lw=1, label=text)
        else:
            ax.plot([], [], color="tab:red", ls="--", lw=1, label=f"{text} (beyond the plotted range)")
    if len(front):
        place_labels(fig, ax, labels)
    to_axes = ax.transData + ax.transAxes.inverted()
    for name, r in refs.items():  # names point inwards, so one near the right edge is not cut off
        right = to_axes.transform((r[x], r[y]))[0] > 0.75
        ax.annotate(name, (r[x], r[y]), xytext=(-10 if right else 10, -4), textcoords="offset points",
                    ha="right" if right else "left", fontsize=9, weight="bold", zorder=6)
    ax.set_xlabel(_label(x, view.objectives.get(x), log))
    ax.set_ylabel(_label(y, view.objectives.get(y)))
    title = f"Study {view.name}: {y} vs {x}, {len(done)} complete trials"
    ax.set_title(title + (f"\n({note})" if note else ""), fontsize=12)
    ax.grid(True, which="major", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # outside the axes: it never hides a point
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, fontsize=9, frameon=False)
    fig.tight_layout()
    from nas.writes import save_figure

    save_figure(fig, path)
    plt.close(fig)
    return path


# Label positions around a point, in order of preference: up-left first (the ideal side of a front,
# where no trial can be), then the other corners, then further out.
_SPOTS = [(-6, 5, "right", "bottom"), (6, -5, "left", "top"), (-6, -5, "right", "top"), (6, 5, "left", "bottom"),
          (-6, 16, "right", "bottom"), (6, -16, "left", "top")]


def place_labels(fig: Any, ax: Any, labels: list[tuple[str, float, float]]) -> None:
    """Annotate each front point where its label overlaps no label placed before it."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text, px, py in labels:
        for dx, dy, ha, va in _SPOTS:
            note = ax.annotate(text, (px, py), xytext=(dx, dy), textcoords="offset points", ha=ha, va=va,
                               fontsize=8.5, color="tab:blue", zorder=5,
                               bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
            box = note.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed) or (dx, dy) == _SPOTS[-1][:2]:
                placed.append(box)
                break
            note.remove()


def _num(value: float) -> str:
    """5e7, 2.46e5, 0.786: short numbers for titles and legends."""
    text = f"{value:.3g}"
    return text.replace("e+0", "e").replace("e+", "e").replace("e-0", "e-")


def plot_hypervolume(view: StudyView, history: list[tuple[int, float]], summary: HypervolumeSummary | None,
                     path: Path) -> Path:
    """Hypervolume after each finished trial, as a fraction of the ideal-to-reference box when it has one."""
    plt = _agg()
    fig, ax = plt.subplots(figsize=(9, 5), dpi=120)
    box = summary.value / summary.fraction if summary is not None and summary.fraction else None
    numbers = [n for n, _ in history]
    values = [v / box if box else v for _, v in history]
    if history:
        ax.plot(numbers, values, drawstyle="steps-post", color="tab:blue", lw=1.6, label="hypervolume")
        gains = [(n, v) for i, (n, v) in enumerate(zip(numbers, values)) if v > (values[i - 1] if i else 0.0)]
        ax.scatter([n for n, _ in gains], [v for _, v in gains], s=30, color="tab:blue", zorder=3,
                   label="trial that extended the front")
        ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
        ax.set_ylim(0, max(max(values) * 1.1, 1e-12) if not box else min(1.0, max(max(values) * 1.15, 0.05)))
        ax.legend(loc="lower right", fontsize=9)
    else:
        ax.text(0.5, 0.5, "no finished trials yet", ha="center", va="center", transform=ax.transAxes, fontsize=14)
    ax.set_xlabel("trial number")
    ax.set_ylabel("hypervolume, fraction of the ideal-to-reference box" if box else "hypervolume")
    ref = ", ".join(f"{k}={_num(v)}{' ' + UNITS[k] if k in UNITS else ''}" for k, v in (summary.reference.items()
                                                                                      if summary else []))
    sub = "no reference point yet (no complete trial)"
    if summary is not None:
        sub = f"reference point {ref}; final {_num(summary.value)}"
        sub += f" = {summary.fraction:.3f} of the box" if box else ""
    ax.set_title(f"Study {view.name}: hypervolume after each finished trial\n{sub}", fontsize=11)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    from nas.writes import save_figure

    save_figure(fig, path)
    plt.close(fig)
    return path


# -- the report -------------------------------------------------------------------------------------
def _confirmation(view: StudyView, folder: Path, files: dict[str, Path]) -> tuple[dict[str, Any] | None, str]:
    """The study's confirmation (``nas study confirm``), if any: its summary, and its Markdown with the
    headings moved one level down; its plot is copied into the report folder."""
    from nas.analysis.confirmed import load_confirmation

    confirmation = load_confirmation(view.dir)
    if confirmation is None:
        return None, ""
    source = Path(confirmation.get("dir") or view.dir / "confirm")
    if not source.is_dir():  # the study folder moved since: the summary sits beside its study
        source = view.dir / "confirm"
    if (source / "confirm.png").is_file():
        files["confirm"] = folder / "confirm.png"
        atomic_copy(source / "confirm.png", files["confirm"])
    text = (source / "confirm.md").read_text(encoding="utf-8") if (source / "confirm.md").is_file() else ""
    lines = [("#" + line if line.startswith("#") else line) for line in text.splitlines()]
    body = "\n".join(lines[1:] if lines and lines[0].startswith("##") else lines)  # its title is the section's
    return confirmation, body + ("\n\n![study against confirmed scores](confirm.png)\n" if "confirm" in files else "")


def _config_rows(view: StudyView) -> list[dict[str, Any]]:
    c = view.config
    items = {"study": c.name, "directory": str(view.dir), "data": c.data, "search space": c.space,
             "objectives": ", ".join(f"{k} ({v})" for k, v in c.objectives.items()),
             "constraints": ", ".join(f"{k} <= {_num(v)}" for k, v in c.constraints.items()) or "none",
             "budget": ", ".join(f"{k}={v}" for k, v in c.budget.items()) or "trainer defaults", "sampler": c.sampler,
             "n_trials": c.n_trials, "seed": c.seed,
             "scheduler": "none" if c.scheduler is None else ", ".join(f"{k}={v}" for k, v in c.scheduler.items()),
             "keep_checkpoints": c.keep_checkpoints, "reference presets": ", ".join(c.reference_presets) or "none"}
    return [{"setting": k, "value": v} for k, v in items.items()]


def _png(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0;"
        "font-size:13px}th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}th{background:#f0f0f0}"
        "td:nth-child(4),th:nth-child(4){text-align:left}img{max-width:100%;border:1px solid #ddd}"
        ".scroll{overflow-x:auto}")


def write_report(study: str | Path | StudyView, out: str | Path | None = None) -> ReportResult:
    """Write the report folder of a study (default ``<study_dir>/report``); returns the files written."""
    view = study if isinstance(study, StudyView) else open_study(study)
    folder = Path(out) if out is not None else view.dir / "report"
    claim_folder(folder, Owner("report", view.name))  # never a study's, an ablation's or a confirmation's folder
    frame = view.frame()
    objectives = list(view.objectives)
    summary = hypervolume_summary(view.study, view.objectives, view.config.constraints)
    history = hypervolume_history(view.study, list(summary.reference.values())) if summary else []
    files = {"pareto": plot_pareto(view, frame, folder / "pareto.png"),
             "hypervolume": plot_hypervolume(view, history, summary, folder / "hypervolume.png")}

    files["csv"] = folder / "trials.csv"
    atomic_write(files["csv"], frame.drop(columns=[c for c in ("sampled",) if c in frame]).to_csv(index=False))
    columns, rows = _rows(frame, objectives) if not frame.empty else ([], [])
    front_rows = [r for r, p in zip(rows, frame.get("pareto", [])) if p]
    refs = view.references()
    ref_rows = [dict(r, preset=k) for k, r in refs.items()]
    ref_cols = ["preset", "layout", "status", *objectives, "params", "flops", "val_acc", "error"]
    ref_cols = list(dict.fromkeys(c for c in ref_cols if any(r.get(c) is not None for r in ref_rows)))
    states = frame["state"].value_counts().to_dict() if not frame.empty else {}
    state_text = ", ".join(f"{k} {v}" for k, v in sorted(states.items())) or "no trials yet"
    if "status" in frame and (frame["status"] == "infeasible").any():
        state_text += f" (of which {int((frame['status'] == 'infeasible').sum())} over a constraint, never trained)"
    if "status" in frame and (frame["status"] == "prescreened").any():
        state_text += (f"; {int((frame['status'] == 'prescreened').sum())} screened out by a zero-cost proxy, "
                       f"never trained")
    hv_text = ("not available (no complete trial yet)" if summary is None else
               f"{summary.value:.6g}" + (f", {summary.fraction:.4f} of the box between the ideal point and the "
                                          f"reference point" if summary.fraction is not None else "") +
               "; reference point " + ", ".join(f"{k}={v:.4g}" for k, v in summary.reference.items()))

    md = [f"# Study {view.name}\n", f"Trials: {state_text}.  \nHypervolume: {hv_text}.\n",
          f"## Pareto front ({len(front_rows)} trials)\n", markdown_table(columns, front_rows)]
    if ref_rows:
        md += ["\n## Reference presets\n", markdown_table(ref_cols, ref_rows)]
    confirmation, confirm_md = _confirmation(view, folder, files)
    if confirm_md:
        md += ["\n## Confirmation\n", confirm_md]
    md += [f"\n## All trials ({len(rows)})\n", markdown_table(columns, rows)]
    files["markdown"] = folder / "trials.md"
    atomic_write(files["markdown"], "\n".join(md))

    date = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>Study {html.escape(view.name)}</title>",
             f"<style>{_CSS}</style></head><body>", f"<h1>Study {html.escape(view.name)}</h1>",
             f"<p>Report written {date} from {html.escape(str(view.dir))}.</p>",
             "<h2>Configuration</h2>", _html_table(["setting", "value"], _config_rows(view)),
             f"<h2>Trials</h2><p>{html.escape(state_text)}.</p><p>Hypervolume: {html.escape(hv_text)}.</p>",
             f"<h2>Pareto front</h2><img alt='Pareto front' src='{_png(files['pareto'])}'>",
             f"<div class='scroll'>{_html_table(columns, front_rows)}</div>"]
    if ref_rows:
        parts += ["<h2>Reference presets</h2>", _html_table(ref_cols, ref_rows)]
    if confirmation is not None:
        from nas.analysis.confirmed import confirmation_rows

        c_cols, c_rows = confirmation_rows(confirmation)
        budget = confirmation.get("budget") or {}
        parts += [f"<h2>Confirmation</h2><p>{len(c_rows)} architectures retrained with budget "
                  f"{html.escape(', '.join(f'{k}={v}' for k, v in budget.items()))} over seeds "
                  f"{html.escape(', '.join(map(str, confirmation.get('seeds', []))))}; details in "
                  f"{html.escape(str(Path(confirmation.get('dir', '')) / 'confirm.md'))}.</p>"]
        if "confirm" in files:
            parts.append(f"<img alt='Study against confirmed scores' src='{_png(files['confirm'])}'>")
        parts.append(f"<div class='scroll'>{_html_table(c_cols, c_rows)}</div>")
    parts += [f"<h2>Hypervolume</h2><img alt='Hypervolume per trial' src='{_png(files['hypervolume'])}'>",
              f"<h2>All trials ({len(rows)})</h2><div class='scroll'>{_html_table(columns, rows)}</div>",
              "</body></html>\n"]
    files["html"] = folder / "report.html"
    atomic_write(files["html"], "\n".join(parts))
    return ReportResult(dir=folder, files=files, hypervolume=summary)
