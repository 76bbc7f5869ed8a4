"""Figures derived from the metrics table."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
SPLIT_COLOURS = {"seen": "#0072B2", "unseen": "#D55E00"}


def plot_composition_accuracy(table: pd.DataFrame, out_stem: Path, title: str = "") -> list[Path]:
    """Horizontal bars: accuracy per composition with 95% Wilson intervals, seen vs unseen, chance marked."""
    comp = table[table["level"] == "composition"].copy()
    comp["order"] = comp["split"].map({"unseen": 0, "seen": 1}).fillna(2)
    comp = comp.sort_values(["order", "shared_elements", "group"], ascending=[True, False, True])
    height = max(2.0, 0.28 * len(comp) + 1.0)
    fig, ax = plt.subplots(figsize=(6.5, height), layout="constrained")
    y = range(len(comp))
    colours = [SPLIT_COLOURS.get(s, "#999999") for s in comp["split"]]
    acc = comp["accuracy"] * 100
    err = [(comp["accuracy"] - comp["ci_low"]) * 100, (comp["ci_high"] - comp["accuracy"]) * 100]
    ax.barh(list(y), acc, xerr=err, color=colours, ecolor="#333333", capsize=2, height=0.7)
    ax.scatter(comp["chance"] * 100, list(y), marker="|", s=120, color="black", zorder=3, label="chance")
    ax.set_yticks(list(y), [f"{g} (n={n})" for g, n in zip(comp["group"], comp["n"])], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("Accuracy (%) with 95% Wilson interval")
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in SPLIT_COLOURS.values()]
    ax.legend(handles + [ax.collections[0]], list(SPLIT_COLOURS) + ["chance"], loc="lower right", fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    paths = []
    for ext in ("png", "pdf"):
        p = out_stem.with_suffix(f".{ext}")
        fig.savefig(p, dpi=200)
        paths.append(p)
    plt.close(fig)
    return paths
