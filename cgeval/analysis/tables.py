"""Tables for humans and papers: formatted views of the metrics, written as CSV, Markdown and LaTeX.

The CSV keeps full-precision numbers (proportions in 0-1) and the ``note`` column; Markdown and LaTeX show
percentages with one decimal, and an empty cell as "n/a" with its reason in the note column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..manifest import write_text_atomic

NA = "n/a"
# shared_elements: how many of modality / area / task the composition shares with the nearest held-out one
# (3 for a held-out composition itself).
SHARED_HEADER = "MAT elements shared with held-out"


def pct(x, digits: int = 1) -> str:
    """A proportion as a percentage string; "n/a" for a missing value."""
    if x is None or (isinstance(x, (float, np.floating)) and not np.isfinite(x)):
        return NA
    return f"{100 * float(x):.{digits}f}"


def signed_pct(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, (float, np.floating)) and not np.isfinite(x)):
        return NA
    return f"{100 * float(x):+.{digits}f}"


def interval(lo, hi, digits: int = 1, signed: bool = False) -> str:
    f = signed_pct if signed else pct
    if f(lo) == NA or f(hi) == NA:
        return NA
    return f"[{f(lo, digits)}, {f(hi, digits)}]"


def pvalue(p) -> str:
    if p is None or not np.isfinite(p):
        return NA
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def cell_view(cells: pd.DataFrame, label_cols: list[str]) -> pd.DataFrame:
    """Readable columns for a metrics table (or a slice of it): n, accuracy, interval, chance, κ-style score."""
    out = cells[label_cols].copy()
    out["n"] = cells["n"].astype(int)
    out["acc %"] = cells["accuracy"].map(pct)
    out["95% CI"] = [interval(lo, hi) for lo, hi in zip(cells["ci_low"], cells["ci_high"])]
    out["chance %"] = cells["chance"].map(pct)
    out["chance-corr. %"] = cells["chance_corrected"].map(pct)
    out["parse fail %"] = cells["parse_failure_rate"].map(pct)
    out["note"] = cells["note"].fillna("")
    if not out["note"].astype(bool).any():
        out = out.drop(columns="note")
    return out


def to_markdown(view: pd.DataFrame) -> str:
    return view.to_markdown(index=False, disable_numparse=True) + "\n"


def to_latex(view: pd.DataFrame, caption: str = "", label: str = "") -> str:
    return view.to_latex(index=False, escape=True, caption=caption or None, label=label or None,
                         column_format="l" * view.shape[1]) if not view.empty else ""


def write_table(raw: pd.DataFrame, view: pd.DataFrame, stem: Path, title: str = "",
                latex_view: pd.DataFrame | None = None) -> list[Path]:
    """``stem``.csv from the raw numbers; ``stem``.md and ``stem``.tex from the formatted view."""
    stem = Path(stem)
    paths = [stem.with_suffix(".csv"), stem.with_suffix(".md"), stem.with_suffix(".tex")]
    write_text_atomic(paths[0], raw.to_csv(index=False))
    write_text_atomic(paths[1], (f"## {title}\n\n" if title else "") + to_markdown(view))
    write_text_atomic(paths[2], to_latex(view if latex_view is None else latex_view, caption=title,
                                         label=f"tab:{stem.name}"))
    return paths


# ----------------------------------------------------------------------------------------------------------------
# Specific views


def composition_view(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    comp = table[table["level"] == "composition"].sort_values(["split", "group"], ascending=[False, True])
    comp = comp.rename(columns={"group": "composition"})
    view = cell_view(comp, ["composition", "split"])
    view.insert(2, SHARED_HEADER, comp["shared_elements"].map(lambda v: NA if pd.isna(v) else str(int(v))).to_numpy())
    return comp.drop(columns="level"), view


def marginal_view(marginals: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One row per axis value, seen and unseen side by side (from ``cross_table(df, axis, 'split')``)."""
    raw = marginals.rename(columns={axis: "value"}).assign(axis=axis)
    rows = []
    for value, g in raw.groupby("value", sort=True):
        row = {"axis": axis, "value": value}
        for split in ("seen", "unseen"):
            s = g[g["split"] == split]
            if s.empty or int(s["n"].iloc[0]) == 0:
                row[f"{split} n"] = 0
                row[f"{split} acc % [95% CI]"] = f"{NA} (no {split} items)"
            else:
                s = s.iloc[0]
                row[f"{split} n"] = int(s["n"])
                row[f"{split} acc % [95% CI]"] = f"{pct(s['accuracy'])} {interval(s['ci_low'], s['ci_high'])}"
        rows.append(row)
    return raw, pd.DataFrame(rows)


def seen_unseen_view(table: pd.DataFrame, boot: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seen, unseen and the gap: accuracy, Wilson interval, cluster-bootstrap interval."""
    split = table[table["level"] == "split"].set_index("group")
    rows = []
    for name in ("seen", "unseen"):
        b = boot.get(name, {})
        if name in split.index:
            r = split.loc[name]
            rows.append({"quantity": f"{name} accuracy", "n": int(r["n"]), "estimate": r["accuracy"],
                         "wilson_low": r["ci_low"], "wilson_high": r["ci_high"],
                         "boot_low": b.get("ci_low"), "boot_high": b.get("ci_high"), "chance": r["chance"],
                         "note": ""})
        else:
            rows.append({"quantity": f"{name} accuracy", "n": 0, "estimate": np.nan, "wilson_low": np.nan,
                         "wilson_high": np.nan, "boot_low": np.nan, "boot_high": np.nan, "chance": np.nan,
                         "note": f"n/a: no {name} items"})
    gap = boot.get("gap_seen_minus_unseen", {})
    rows.append({"quantity": "gap seen - unseen", "n": int(split["n"].sum()) if len(split) else 0,
                 "estimate": gap.get("estimate"), "wilson_low": np.nan, "wilson_high": np.nan,
                 "boot_low": gap.get("ci_low"), "boot_high": gap.get("ci_high"), "chance": np.nan,
                 "note": gap.get("note", "")})
    raw = pd.DataFrame(rows)
    raw[["estimate", "boot_low", "boot_high"]] = raw[["estimate", "boot_low", "boot_high"]].astype(float)
    is_gap = raw["quantity"].str.startswith("gap")
    view = pd.DataFrame({
        "": raw["quantity"],
        "n": raw["n"],
        "% (points for the gap)": [signed_pct(e) if g else pct(e) for e, g in zip(raw["estimate"], is_gap)],
        "95% Wilson CI": [NA if g else interval(lo, hi) for lo, hi, g in
                          zip(raw["wilson_low"], raw["wilson_high"], is_gap)],
        f"95% cluster-bootstrap CI ({boot.get('cluster', '?')})": [
            interval(lo, hi, signed=g) for lo, hi, g in zip(raw["boot_low"], raw["boot_high"], is_gap)],
        # seen and unseen items can have different option counts, so their accuracies start from different
        # chance levels; the gap is only read against these
        "chance %": [NA if g else pct(c) for c, g in zip(raw["chance"], is_gap)],
        "note": raw["note"],
    })
    if not view["note"].astype(bool).any():
        view = view.drop(columns="note")
    return raw, view
