"""Turn a run folder's predictions into metrics.json, tables and figures. Reads files only; never a model."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..manifest import write_json_atomic, write_text_atomic
from .figures import plot_composition_accuracy
from .metrics import metrics_dict, metrics_table, read_predictions

TABLE_COLUMNS = ["level", "group", "split", "shared_elements", "n", "accuracy", "ci_low", "ci_high",
                 "chance", "n_parse_fail", "parse_failure_rate"]


def _markdown(table: pd.DataFrame) -> str:
    parts = []
    for level, g in table.groupby("level", sort=False):
        shown = g[TABLE_COLUMNS].drop(columns="level").copy()
        for c in ("accuracy", "ci_low", "ci_high", "chance", "parse_failure_rate"):
            shown[c] = (shown[c] * 100).round(1)
        if level != "composition":
            shown = shown.drop(columns="shared_elements")
        shown = shown.rename(columns={c: f"{c} %" for c in ("accuracy", "ci_low", "ci_high", "chance",
                                                            "parse_failure_rate")})
        parts.append(f"## By {level}\n\n" + shown.to_markdown(index=False) + "\n")
    return "\n".join(parts)


def write_report(run_dir: str | Path, title: str = "") -> dict:
    """Write metrics.json, table.csv, table.md and accuracy_by_composition.{png,pdf} into ``run_dir``."""
    run_dir = Path(run_dir)
    df = read_predictions(run_dir / "predictions.jsonl")
    table = metrics_table(df)
    metrics = metrics_dict(table)
    write_json_atomic(run_dir / "metrics.json", metrics)
    write_text_atomic(run_dir / "table.csv", table[TABLE_COLUMNS].to_csv(index=False))
    write_text_atomic(run_dir / "table.md", (f"# {title}\n\n" if title else "") + _markdown(table))
    plot_composition_accuracy(table, run_dir / "accuracy_by_composition", title=title)
    return metrics
