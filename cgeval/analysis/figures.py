"""Figures derived from metrics tables and prediction rows; PNG and PDF, sized for a paper column.

Colours: the Okabe-Ito palette (distinguishable with the common colour-vision deficiencies) for categories,
and cividis (perceptually uniform, colour-blind safe) for the heatmaps. Widths: 3.3 in (one column of a
two-column paper) or 6.9 in (both columns).
"""

from __future__ import annotations

import io
import logging
import re
import textwrap
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
# PDF font subsetting logs every table it prunes at INFO, which Hydra would print on every run.
logging.getLogger("fontTools").setLevel(logging.WARNING)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
SPLIT_COLOURS = {"seen": "#0072B2", "unseen": "#D55E00"}
ONE_COLUMN = 3.3
TWO_COLUMNS = 6.9
RC = {"font.size": 7, "axes.titlesize": 7.5, "axes.labelsize": 7, "xtick.labelsize": 6.5, "ytick.labelsize": 6.5,
      "legend.fontsize": 6.5, "pdf.fonttype": 42, "ps.fonttype": 42}


class FigureLayoutWarning(UserWarning):
    """A figure's text runs past the edge of the canvas (cut off in the PNG and PDF)."""


def clipped_texts(fig) -> list[str]:
    """Describe what of the drawn figure (labels, titles, tick labels, annotations) lies beyond its canvas.

    Uses the tight bounding box of what is actually drawn (tick labels outside the view limits are not), so an
    empty list means nothing is cut off in the saved PNG / PDF.

    The layout runs as in a draw at the figure's own dpi, but nothing is rasterised (``draw_without_rendering``:
    the same text extents as ``canvas.draw()``, without painting pixels that nobody looks at)."""
    fig.draw_without_rendering()
    renderer = fig.canvas.get_renderer()
    tight = fig.get_tightbbox(renderer)  # inches
    w, h = fig.get_size_inches()
    tol = 0.01
    out = []
    if tight.x0 < -tol:
        out.append(f"{-tight.x0:.2f} in past the left edge")
    if tight.x1 > w + tol:
        out.append(f"{tight.x1 - w:.2f} in past the right edge")
    if tight.y0 < -tol:
        out.append(f"{-tight.y0:.2f} in past the bottom edge")
    if tight.y1 > h + tol:
        out.append(f"{tight.y1 - h:.2f} in past the top edge")
    return out


def _new_figure(figsize: tuple[float, float]):
    """A figure with constrained layout and one axes, on an Agg canvas of its own.

    Not registered with pyplot: pyplot would re-check every artist change for an interactive redraw, and would
    hold on to the figure until it is closed. Saved output is the same as from ``plt.subplots``."""
    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots()


def set_fitting_title(fig, text: str) -> None:
    """A title over the whole figure (centred on the canvas, not over the axes, which long tick labels push to the
    right), wrapped at word boundaries until it fits the canvas width; a run label "experiment / model /
    scoring" breaks after its slashes."""
    title = fig.suptitle(text, fontsize=plt.rcParams["axes.titlesize"])
    for _ in range(4):
        fig.draw_without_rendering()
        box = title.get_window_extent(fig.canvas.get_renderer())
        room = fig.bbox.width - 2 * (0.04 * fig.dpi)  # a small margin on each side
        if box.width <= room or box.width <= 0:
            return
        lines = title.get_text().split("\n")
        chars = max(8, int(max(len(line) for line in lines) * room / box.width * 0.95))
        wrapped = []
        for line in lines:
            wrapped += textwrap.wrap(line.replace(" / ", "\u00a0/ "), chars, break_on_hyphens=False) or [""]
        title.set_text("\n".join(w.replace("\u00a0/ ", " / ") for w in wrapped))


def _save(fig, out_stem: Path) -> list[Path]:
    out_stem = Path(out_stem)
    clipped = clipped_texts(fig)
    if clipped:
        warnings.warn(f"{out_stem.name}: text cut off: {', '.join(clipped)}", FigureLayoutWarning,
                      stacklevel=3)
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_stem.with_name(f"{out_stem.name}.{ext}")
        fig.savefig(p, dpi=300)
        paths.append(p)
    plt.close(fig)
    return paths


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", str(text)).strip("-").lower() or "x"


def plot_composition_accuracy(table: pd.DataFrame, out_stem: Path, title: str = "") -> list[Path]:
    """Horizontal bars: accuracy per composition with 95% Wilson intervals, seen vs unseen, chance marked."""
    comp = table[table["level"] == "composition"].copy()
    comp["order"] = comp["split"].map({"unseen": 0, "seen": 1}).fillna(2)
    comp = comp.sort_values(["order", "shared_elements", "group"], ascending=[True, False, True])
    with plt.rc_context(RC):
        fig, ax = _new_figure((TWO_COLUMNS, max(2.0, 0.2 * len(comp) + 0.9)))
        y = np.arange(len(comp))
        colours = [SPLIT_COLOURS.get(s, "#999999") for s in comp["split"]]
        acc = comp["accuracy"].fillna(0) * 100
        # Clipped at 0: at accuracy 0 or 1 the Wilson bound can differ from it by a rounding error.
        err = np.vstack([(comp["accuracy"] - comp["ci_low"]).fillna(0), (comp["ci_high"] - comp["accuracy"]).fillna(0)])
        err = np.clip(err, 0, None)
        ax.barh(y, acc, xerr=err * 100, color=colours, ecolor="#333333", capsize=2, height=0.7)
        ax.scatter(comp["chance"] * 100, y, marker="|", s=100, color="black", zorder=3)
        labels = [f"{g} (n={n})" if n else f"{g} (n/a: no items)" for g, n in zip(comp["group"], comp["n"])]
        ax.set_yticks(y, labels)
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        ax.set_xlabel("Accuracy (%) with 95% Wilson interval; | = chance")
        handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in SPLIT_COLOURS.values()]
        # Beside the axes, never over a bar or its interval (a bar near 100% reaches every corner of the axes).
        fig.legend(handles, list(SPLIT_COLOURS), loc="outside right upper", frameon=False)
        if title:
            set_fitting_title(fig, title)
        return _save(fig, out_stem)


def plot_heatmap(cells: pd.DataFrame, task: str, out_stem: Path, title: str = "") -> list[Path]:
    """Modality x area accuracy for one task; empty cells hatched and marked n/a; unseen cells outlined."""
    sub = cells[cells["task"] == task]
    mods = sorted(sub["modality"].unique())
    areas = sorted(sub["area"].unique())
    grid = np.full((len(mods), len(areas)), np.nan)
    with plt.rc_context(RC):
        fig, ax = _new_figure((ONE_COLUMN, max(1.4, 0.38 * len(mods) + 1.0)))
        cmap = plt.get_cmap("cividis").with_extremes(bad="white")
        lookup = {(r.modality, r.area): r for r in sub.itertuples(index=False)}
        for i, m in enumerate(mods):
            for j, a in enumerate(areas):
                r = lookup.get((m, a))
                if r is not None and r.n > 0:
                    grid[i, j] = r.accuracy * 100
        im = ax.imshow(np.ma.masked_invalid(grid), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for i, m in enumerate(mods):
            for j, a in enumerate(areas):
                r = lookup.get((m, a))
                if r is None or r.n == 0:
                    ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="///",
                                               edgecolor="#BBBBBB", lw=0))
                    ax.text(j, i, "n/a", ha="center", va="center", color="#666666", fontsize=6)
                    continue
                colour = "white" if grid[i, j] < 55 else "black"
                ax.text(j, i, f"{grid[i, j]:.0f}\nn={r.n}", ha="center", va="center", color=colour, fontsize=5.5)
                if "unseen" in str(r.split):
                    ax.add_patch(plt.Rectangle((j - 0.46, i - 0.46), 0.92, 0.92, fill=False,
                                               edgecolor=SPLIT_COLOURS["unseen"], lw=1.5))
        ax.set_xticks(range(len(areas)), areas, rotation=45, ha="right")
        ax.set_yticks(range(len(mods)), mods)
        ax.set_title(title or f"Task: {task} (accuracy %, outlined = unseen)")
        fig.colorbar(im, ax=ax, shrink=0.8, label="Accuracy (%)")
        return _save(fig, out_stem)


def plot_heatmaps(cells: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One modality x area heatmap per task (``cells`` from ``cross_table(df, 'modality', 'area', ['task'])``)."""
    paths = []
    for task in sorted(cells["task"].unique()):
        paths += plot_heatmap(cells, task, Path(out_dir) / f"heatmap_task-{slug(task)}")
    return paths


def forest_figure(table: pd.DataFrame, boot: dict, title: str = ""):
    """Forest plot: each composition (Wilson interval) grouped by split, then the pooled seen and unseen
    accuracies (cluster-bootstrap interval) as diamonds; the seen - unseen gap and its interval in the title."""
    comp = table[(table["level"] == "composition") & (table["n"] > 0)].copy()
    comp["order"] = comp["split"].map({"seen": 0, "unseen": 1}).fillna(2)
    comp = comp.sort_values(["order", "group"])
    rows = [(g, a, lo, hi, s, "o") for g, a, lo, hi, s in
            zip(comp["group"], comp["accuracy"], comp["ci_low"], comp["ci_high"], comp["split"])]
    for name in ("seen", "unseen"):
        b = boot.get(name) or {}
        if b.get("estimate") is not None:
            rows.append((f"all {name}", b["estimate"], b["ci_low"], b["ci_high"], name, "D"))
    with plt.rc_context(RC):
        fig, ax = _new_figure((ONE_COLUMN, max(1.6, 0.17 * len(rows) + 0.9)))
        for i, (label, acc, lo, hi, split, marker) in enumerate(rows):
            c = SPLIT_COLOURS.get(split, "#999999")
            ax.plot([lo * 100, hi * 100], [i, i], color=c, lw=1)
            ax.plot(acc * 100, i, marker=marker, color=c, ms=4 if marker == "o" else 5)
        ax.set_yticks(range(len(rows)), [r[0] for r in rows])
        ax.invert_yaxis()
        ax.set_xlim(0, 100)
        # two kinds of interval on one axis: say which is which
        ax.set_xlabel("Accuracy (%)\n\u25CF composition, 95% Wilson CI\n"
                      "\u25C6 pooled split, 95% cluster bootstrap")
        gap = boot.get("gap_seen_minus_unseen") or {}
        if gap.get("estimate") is not None:
            gap_text = (f"seen - unseen: {100 * gap['estimate']:+.1f} pts\n95% bootstrap CI "
                        f"[{100 * gap['ci_low']:+.1f}, {100 * gap['ci_high']:+.1f}]")
        else:  # the n/a reason is a sentence: wrap it to the column
            gap_text = textwrap.fill(gap.get("note", "gap n/a"), 45)
        set_fitting_title(fig, (title + "\n" if title else "") + gap_text)
    return fig


def plot_forest(table: pd.DataFrame, boot: dict, out_stem: Path, title: str = "") -> list[Path]:
    """`forest_figure` as PNG and PDF."""
    with plt.rc_context(RC):
        return _save(forest_figure(table, boot, title), out_stem)


def figure_svg(fig) -> str:
    """The figure as an SVG document for inlining in HTML: text kept as text (small, selectable), no date and
    fixed ids, so the same figure gives the same bytes."""
    with plt.rc_context({**RC, "svg.fonttype": "none", "svg.hashsalt": "cgeval"}):
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]  # without the XML declaration and doctype, which HTML does not take


def letter_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Counts of gold letters and predicted letters (a parse failure counts as 'none')."""
    gold = df["gold"].astype(str).value_counts()
    pred = df["pred"].astype(object).where(df["pred"].notna(), "none").astype(str).value_counts()
    letters = sorted(set(gold.index) | (set(pred.index) - {"none"}))
    if "none" in pred.index:
        letters.append("none")
    return pd.DataFrame({"letter": letters, "gold": gold.reindex(letters, fill_value=0).to_numpy(),
                         "predicted": pred.reindex(letters, fill_value=0).to_numpy()})


def plot_letter_bias(df: pd.DataFrame, out_stem: Path, title: str = "") -> list[Path]:
    """Predicted vs gold letter distribution: a model that favours one position shows a taller bar there."""
    counts = letter_counts(df)
    n = len(df)
    with plt.rc_context(RC):
        fig, ax = _new_figure((ONE_COLUMN, 1.9))
        x = np.arange(len(counts))
        ax.bar(x - 0.2, counts["gold"] / n * 100, width=0.4, color=OKABE_ITO[1], label="gold")
        ax.bar(x + 0.2, counts["predicted"] / n * 100, width=0.4, color=OKABE_ITO[0], label="predicted")
        ax.set_xticks(x, counts["letter"])
        ax.set_ylabel("Share of answers (%)")
        ax.legend()
        ax.set_title(title or f"Letter bias (n={n})")
        return _save(fig, out_stem)


def plot_grouped_bars(acc: pd.DataFrame, out_stem: Path, title: str = "", two_columns: bool = False) -> list[Path]:
    """Fig. 4 style: one group per target composition, one bar per run, Wilson intervals.

    ``acc`` has columns target, run, n, accuracy, ci_low, ci_high (n = 0 rows are drawn as 'n/a').
    """
    targets = list(dict.fromkeys(acc["target"]))
    runs = list(dict.fromkeys(acc["run"]))
    width = 0.8 / max(1, len(runs))
    fig_width = TWO_COLUMNS if two_columns else ONE_COLUMN
    # As many legend columns as fit the width (run labels are often long folder names), rows below the axes.
    entry = 0.45 + RC["legend.fontsize"] / 72 * 0.6 * max(len(str(r)) for r in runs)  # handle + text, inches
    ncol = max(1, min(len(runs), 4, int(fig_width // entry)))
    legend_rows = -(-len(runs) // ncol)
    with plt.rc_context(RC):
        fig, ax = _new_figure((fig_width, 2.0 + 0.13 * legend_rows))
        for j, run in enumerate(runs):
            sub = acc[acc["run"] == run].set_index("target").reindex(targets)
            x = np.arange(len(targets)) - 0.4 + width * (j + 0.5)
            has = sub["n"].fillna(0).to_numpy() > 0
            vals = np.where(has, sub["accuracy"].to_numpy(dtype=float) * 100, 0)
            err = np.vstack([np.where(has, vals - sub["ci_low"].to_numpy(dtype=float) * 100, 0),
                             np.where(has, sub["ci_high"].to_numpy(dtype=float) * 100 - vals, 0)])
            err = np.clip(err, 0, None)
            colour = OKABE_ITO[j % len(OKABE_ITO)]
            ax.bar(x, vals, width=width * 0.95, color=colour, yerr=err, ecolor="#333333", capsize=1.5,
                   label=run, error_kw={"lw": 0.6})
            for xi, v, top, h in zip(x, vals, vals + err[1], has):
                if h:  # above the interval, so the label never sits on the error bar
                    ax.text(xi, top + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=5)
                else:
                    ax.text(xi, 1, "n/a", ha="center", va="bottom", fontsize=5, rotation=90)
        # "03 CT-Lung-COVID" -> "03\nCT-Lung-COVID": the subset number above its composition
        ax.set_xticks(range(len(targets)), [str(t).replace(" ", "\n", 1) for t in targets])
        ax.set_ylim(0, 110)
        ax.set_ylabel("Accuracy (%), 95% Wilson CI")
        fig.legend(*ax.get_legend_handles_labels(), ncol=ncol, loc="outside lower center", frameon=False)
        if title:
            ax.set_title(title)
        return _save(fig, out_stem)


def gap_forest_figure(gaps: pd.DataFrame, title: str = ""):
    """Seen - unseen gap per run with its cluster-bootstrap interval (``gaps``: run, estimate, ci_low, ci_high)."""
    gaps = gaps.reset_index(drop=True)
    with plt.rc_context(RC):
        fig, ax = _new_figure((ONE_COLUMN, max(1.3, 0.22 * len(gaps) + 0.8)))
        for i, r in gaps.iterrows():  # one row per run
            if r["estimate"] is None or not np.isfinite(r["estimate"]):
                ax.text(0, i, "n/a", ha="center", va="center")
                continue
            c = OKABE_ITO[i % len(OKABE_ITO)]
            ax.plot([r["ci_low"] * 100, r["ci_high"] * 100], [i, i], color=c, lw=1.2)
            ax.plot(r["estimate"] * 100, i, "D", color=c, ms=4)
        ax.axvline(0, color="#666666", lw=0.6, ls="--")
        ax.set_yticks(range(len(gaps)), gaps["run"])
        ax.invert_yaxis()
        ax.set_xlabel("Seen - unseen accuracy (points)\n95% cluster-bootstrap interval")
        if title:
            ax.set_title(title)
    return fig


def plot_gap_forest(gaps: pd.DataFrame, out_stem: Path, title: str = "") -> list[Path]:
    """`gap_forest_figure` as PNG and PDF."""
    with plt.rc_context(RC):
        return _save(gap_forest_figure(gaps, title), out_stem)
