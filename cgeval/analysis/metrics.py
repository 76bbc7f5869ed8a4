"""Accuracy tables from prediction rows: per composition, per split, per MAT axis value."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from statsmodels.stats.proportion import proportion_confint

REQUIRED_COLUMNS = ("item_id", "subset", "dataset", "modality", "area", "task", "split", "shared_elements",
                    "n_options", "gold", "response", "pred", "correct")
LEVELS = ("overall", "split", "composition", "modality", "area", "task", "shared_elements")


class PredictionsError(ValueError):
    """A predictions file that cannot be analysed (missing, truncated, wrong columns)."""


def read_predictions(path: str | Path) -> pd.DataFrame:
    """Read ``predictions.jsonl``; a truncated last line (a crash mid-write) is a named error, not a guess."""
    path = Path(path)
    if not path.is_file():
        raise PredictionsError(f"{path}: no predictions file")
    rows = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise PredictionsError(f"{path}:{lineno}: not a JSON row ({e}); the file is truncated or corrupt") from e
    if not rows:
        raise PredictionsError(f"{path}: no prediction rows")
    df = pd.DataFrame(rows)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise PredictionsError(f"{path}: missing columns {missing}")
    if df["item_id"].duplicated().any():
        dups = df.loc[df["item_id"].duplicated(), "item_id"].head(5).tolist()
        raise PredictionsError(f"{path}: duplicated item ids, e.g. {dups}")
    return df


def _composition_key(df: pd.DataFrame) -> pd.Series:
    return df["subset"].map(lambda s: f"{int(s):02d}" if pd.notna(s) else "--") + " " + (
        df["modality"] + "-" + df["area"] + "-" + df["task"]
    )


def _summarise(g: pd.DataFrame) -> dict:
    n = len(g)
    k = int(g["correct"].sum())
    fails = int(g["pred"].isna().sum())
    lo, hi = proportion_confint(k, n, alpha=0.05, method="wilson") if n else (np.nan, np.nan)
    return {
        "n": n,
        "n_correct": k,
        "accuracy": k / n if n else np.nan,
        "ci_low": float(lo),
        "ci_high": float(hi),
        "n_parse_fail": fails,
        "parse_failure_rate": fails / n if n else np.nan,
        "chance": float((1.0 / g["n_options"]).mean()) if n else np.nan,
    }


def metrics_table(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (level, group): overall, each split, each composition, each axis value, each relation."""
    df = df.assign(composition=_composition_key(df), overall="all")
    rows = []
    for level in LEVELS:
        col = level if level != "overall" else "overall"
        for key, g in df.groupby(col, sort=True):
            splits = sorted(g["split"].unique())
            row = {"level": level, "group": str(key), "split": "/".join(splits), **_summarise(g)}
            if level == "composition":
                row["shared_elements"] = int(g["shared_elements"].max())
            rows.append(row)
    table = pd.DataFrame(rows)
    if "shared_elements" not in table:
        table["shared_elements"] = np.nan
    return table


def metrics_dict(table: pd.DataFrame) -> dict:
    """Nested dict for metrics.json: level -> group -> numbers."""
    out: dict[str, dict] = {}
    for level, g in table.groupby("level", sort=False):
        out[level] = {
            row["group"]: {k: (None if isinstance(v, float) and np.isnan(v) else v)
                           for k, v in row.items() if k not in ("level", "group")}
            for row in g.to_dict("records")
        }
    split = out.get("split", {})
    if "seen" in split and "unseen" in split:
        out["gap_seen_minus_unseen"] = split["seen"]["accuracy"] - split["unseen"]["accuracy"]
    return out
