"""Turn a run folder's predictions into metrics.json, tables and figures. Reads files only; never a model."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..manifest import write_json_atomic, write_text_atomic
from .figures import (
    plot_composition_accuracy,
    plot_forest,
    plot_heatmaps,
    plot_letter_bias,
)
from .html_report import DEFAULT_MAX_THUMB_BYTES, DEFAULT_MAX_THUMBS, write_run_html
from .metrics import (
    AXES,
    Run,
    bootstrap_summary,
    cross_table,
    decision_counts,
    is_circular,
    judge_agreement,
    judge_disagreements,
    load_run,
    metrics_dict,
    metrics_table,
    prepare,
    read_predictions,
)
from .tables import composition_view, marginal_view, seen_unseen_view, write_table

TABLE_COLUMNS = ["level", "group", "split", "shared_elements", "n", "accuracy", "ci_low", "ci_high",
                 "chance", "chance_corrected", "cc_low", "cc_high", "n_parse_fail", "parse_failure_rate", "note"]
_PCT = ("accuracy", "ci_low", "ci_high", "chance", "chance_corrected", "cc_low", "cc_high", "parse_failure_rate")


# table.md headers: say which interval, and what "shared_elements" counts.
MARKDOWN_HEADERS = {
    "accuracy": "acc %", "ci_low": "Wilson 95% low %", "ci_high": "Wilson 95% high %", "chance": "chance %",
    "chance_corrected": "chance-corr. %", "cc_low": "chance-corr. low %", "cc_high": "chance-corr. high %",
    "parse_failure_rate": "parse fail %", "n_parse_fail": "n parse fail",
    "shared_elements": "MAT elements shared with a held-out composition",
}
LEVEL_TITLES = {"shared_elements": "number of MAT elements shared with a held-out composition"}


def _markdown(table: pd.DataFrame) -> str:
    parts = []
    for level, g in table.groupby("level", sort=False):
        shown = g[TABLE_COLUMNS].drop(columns="level").copy()
        for c in _PCT:
            shown[c] = (shown[c] * 100).round(1)
        if level != "composition":
            shown = shown.drop(columns="shared_elements")
        if level == "split":  # the group is the split
            shown = shown.drop(columns="split")
        if not shown["note"].astype(bool).any():
            shown = shown.drop(columns="note")
        shown = shown.rename(columns=MARKDOWN_HEADERS)
        parts.append(f"## By {LEVEL_TITLES.get(level, level)}\n\n"
                     + shown.to_markdown(index=False, missingval="n/a") + "\n")
    return "\n".join(parts)


def _decisions_markdown(metrics: dict) -> str:
    """table.md's account of who decided the answers (rules, judge, nobody) and of the judge's agreement."""
    decided = metrics.get("decided")
    if not decided:
        return ""
    rows = [{"split": g, **c} for g, c in decided["by_split"].items()]
    text = (f"\n## Decided by (rules, judge, unanswered; {decided['counted_over']})\n\n"
            + pd.DataFrame(rows).to_markdown(index=False) + "\n")
    agreement = metrics.get("judge_agreement")
    if agreement:
        shown = pd.DataFrame([{"split": g, **{k: c.get(k) for k in
                                              ("n_judge_asked", "n_both", "n_agree", "n_disagree", "agreement",
                                               "kappa", "kappa_low", "kappa_high")}}
                              for g, c in agreement.items()])
        text += ("\n## Rules vs judge (replies both read a letter from; Cohen's kappa with its 95% interval)\n\n"
                 + shown.to_markdown(index=False, missingval="n/a", floatfmt=".3f") + "\n")
    return text


def letter_bias_rows(run: Run) -> tuple[pd.DataFrame, str]:
    """Rows for the letter-bias diagnostic and a word on what they are.

    A circular run's predictions.jsonl keeps only rotation 0's answer per item, whose gold letters are as
    unbalanced as the data; the diagnostic belongs on every asked rotation (predictions.rotations.jsonl), where
    each option visits every position.
    """
    if not is_circular(run.predictions).any():
        return run.predictions, f"n={len(run.predictions)} items"
    rot = run.path / "predictions.rotations.jsonl"
    if rot.is_file():
        rows = read_predictions(rot)
        return rows, f"n={len(rows)} rotations of {len(run.predictions)} items"
    return run.predictions, f"rotation 0 only, n={len(run.predictions)} (no predictions.rotations.jsonl)"


def analyse_run(run: Run, n_boot: int = 1000, seed: int = 0, cluster: str = "image") -> dict:
    """All per-run numbers: the metrics table, marginals by split, modality x area cells, bootstrap block."""
    df = prepare(run.predictions)
    table = metrics_table(df, run.expected_compositions())
    boot = bootstrap_summary(df, n_boot=n_boot, seed=seed, cluster=cluster)
    marginals = {axis: cross_table(df, axis, "split") for axis in AXES}
    heat = cross_table(df, "modality", "area", by=["task"])
    metrics = metrics_dict(table, boot)
    # Who decided each answer, and the judge's agreement with the rules: over every reply asked (a circular run's
    # rotations, where its predictions.rotations.jsonl is there).
    replies, _ = letter_bias_rows(run)
    counts = decision_counts(replies)
    if counts is not None:
        metrics["decided"] = {"counted_over": "items" if replies is run.predictions else "rotations",
                              "by_split": counts}
    agreement = judge_agreement(replies)
    if agreement is not None:
        metrics["judge_agreement"] = agreement
    return {"table": table, "bootstrap": boot, "marginals": marginals, "heatmap_cells": heat,
            "metrics": metrics, "disagreements": judge_disagreements(replies) if agreement else None}


def write_run_outputs(run: Run, out_dir: str | Path, title: str = "", n_boot: int = 1000, seed: int = 0,
                      cluster: str = "image", all_figures: bool = True, image_root: str | Path | None = None,
                      max_thumbs: int = DEFAULT_MAX_THUMBS, max_thumb_bytes: int = DEFAULT_MAX_THUMB_BYTES) -> dict:
    """Write metrics.json, the tables (CSV/Markdown/LaTeX), the figures and report.html of one run into ``out_dir``.

    ``all_figures=False`` draws only the per-composition bars and the forest plot (rendering every heatmap
    takes seconds; ``python -m cgeval.report`` draws them all). report.html takes its thumbnails from
    ``image_root`` (default: the data root in the run's manifest), at most ``max_thumbs`` of them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    a = analyse_run(run, n_boot, seed, cluster)
    table, boot = a["table"], a["bootstrap"]
    write_json_atomic(out / "metrics.json", a["metrics"])
    write_text_atomic(out / "table.csv", table[TABLE_COLUMNS].to_csv(index=False))
    write_text_atomic(out / "table.md", (f"# {title}\n\n" if title else "") + _markdown(table)
                      + _decisions_markdown(a["metrics"]))
    disagreements = out / "judge_disagreements.jsonl"
    if (a["metrics"].get("judge_agreement") or {}).get("all", {}).get("n_both"):
        write_text_atomic(disagreements, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n"
                                                 for r in a["disagreements"]))
    elif disagreements.exists():
        disagreements.unlink()  # from an earlier report of this folder, when the judge still read every reply

    raw, view = composition_view(table)
    write_table(raw, view, out / "compositions", "Accuracy per composition (95% Wilson interval)")
    raws, views = zip(*(marginal_view(a["marginals"][axis], axis) for axis in AXES))
    write_table(pd.concat(raws, ignore_index=True), pd.concat(views, ignore_index=True), out / "marginals",
                "Accuracy per modality, area and task, seen vs unseen")
    raw, view = seen_unseen_view(table, boot)
    write_table(raw, view, out / "seen_unseen", f"Seen vs unseen, {boot['overall']['n_boot']} cluster-bootstrap "
                f"resamples by {cluster}, seed {seed}")
    write_text_atomic(out / "heatmap_cells.csv", a["heatmap_cells"].to_csv(index=False))

    figs = out / "figures"
    plot_composition_accuracy(table, out / "accuracy_by_composition", title=title)
    plot_forest(table, boot, figs / "forest_seen_unseen", title=run.label)
    letters = letter_bias_rows(run)
    if all_figures:
        plot_heatmaps(a["heatmap_cells"], figs)
        rows, what = letters
        plot_letter_bias(rows, figs / "letter_bias", title=f"Letter bias: {run.label}\n{what}")
    write_run_html(run, a, out, letter_rows=letters, title=title or run.label, image_root=image_root,
                   max_thumbs=max_thumbs, max_thumb_bytes=max_thumb_bytes)
    return a


def write_report(run_dir: str | Path, title: str = "", n_boot: int = 1000, seed: int = 0,
                 cluster: str = "image") -> dict:
    """Write metrics.json, tables, the main figures and report.html into ``run_dir``; return the metrics dict.

    Called by the pipeline at the end of every run, so it skips the slower figures (heatmaps, letter bias).
    """
    run = load_run(run_dir, label=title or None)  # figures are titled by the run, not its timestamped folder
    return write_run_outputs(run, run_dir, title, n_boot, seed, cluster, all_figures=False)["metrics"]


__all__ = ["analyse_run", "write_report", "write_run_outputs"]
