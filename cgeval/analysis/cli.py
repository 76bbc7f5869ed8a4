"""``python -m cgeval.report RUN [RUN ...]``: tables and figures from run folders alone (never a model).

For each run: metrics.json, per-composition / marginal / seen-vs-unseen tables (CSV, Markdown, LaTeX) and
figures (heatmaps per task, forest plot, letter bias, accuracy per composition) and report.html (the page to
open in a browser: every number above plus confusion matrices and the items with the model's replies) under
``OUT/<label>/``. Across runs: a summary table, a gap forest plot, Fig. 4 style grouped bars and a report.html
with the compositions side by side and the paired test per composition; with ``--paired``, exact McNemar
tests of every run against the first one per composition (Holm across compositions); with ``--table3``, the
paper's Table 3 from a YAML config naming the runs of each row.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from ..cli import prog
from ..data.registry import SUBSETS
from ..errors import named_error_status
from ..manifest import write_text_atomic
from .figures import plot_gap_forest, plot_grouped_bars, slug
from .html_report import DEFAULT_MAX_THUMBS, HTML_NAME, write_comparison_html
from .metrics import Run, is_circular, load_run, paired_by_composition
from .report import write_run_outputs
from .stats import ItemSetMismatch, ScoringMismatch
from .table3 import (
    load_table3_config,
    table3,
    table3_latex_view,
    table3_view,
)
from .tables import interval, pct, pvalue, signed_pct, write_table


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=prog("cgeval.report"), description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders (each holds predictions.jsonl)")
    p.add_argument("--out", type=Path, help="output folder (default: RUN/report for one run; required for several)")
    p.add_argument("--labels", nargs="+", help="a short name per run (default: the folder names)")
    p.add_argument("--table3", type=Path, metavar="CONFIG.yaml", help="build the paper's Table 3 from this config")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="cluster-bootstrap resamples (1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (0)")
    p.add_argument("--cluster", default="image", choices=["image", "dataset", "subset", "item_id"],
                   help="resampling unit of the cluster bootstrap (image)")
    p.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    p.add_argument("--paired", action="store_true",
                   help="exact McNemar of every run against the first, per composition (same items required)")
    p.add_argument("--targets", nargs="+", type=int, metavar="SUBSET",
                   help="target subsets of the grouped bar chart (default: every unseen composition)")
    p.add_argument("--image-root", type=Path, metavar="DIR",
                   help="folder the items' image paths are relative to, for report.html's thumbnails (default: "
                        "the data root in each run's manifest)")
    p.add_argument("--thumbnails", type=int, default=DEFAULT_MAX_THUMBS, metavar="N",
                   help=f"at most N image thumbnails per report.html ({DEFAULT_MAX_THUMBS}; 0: none)")
    args = p.parse_args(argv)
    if args.out is None:
        if len(args.runs) > 1:
            p.error("--out is required with several runs")
        args.out = args.runs[0] / "report"
    if args.labels and len(args.labels) != len(args.runs):
        p.error(f"{len(args.labels)} labels for {len(args.runs)} runs")
    if args.bootstrap < 1:
        p.error("--bootstrap must be at least 1")
    if args.thumbnails < 0:
        p.error("--thumbnails must be 0 or more")
    if args.image_root is not None and not args.image_root.is_dir():
        p.error(f"--image-root {args.image_root}: no such folder")
    return args


def _labels(runs: list[Path], labels: list[str] | None) -> list[str]:
    if labels:
        names = list(labels)
    else:
        names = [r.resolve().name for r in runs]
        if len(set(names)) < len(names):  # e.g. several .../2025-01-01_12-00-00: prefix the parent
            names = [f"{r.resolve().parent.name}/{r.resolve().name}" for r in runs]
    if len(set(names)) < len(names):
        raise ValueError(f"run labels are not unique: {names}; pass --labels")
    return names


def summary_row(run: Run, a: dict) -> dict:
    boot = a["bootstrap"]
    gap = boot["gap_seen_minus_unseen"]
    split = a["metrics"].get("split", {})
    over = a["metrics"]["overall"]["all"]
    return {
        "run": run.label, "scoring": scoring_label(run), "n": over["n"], "accuracy": over["accuracy"],
        "boot_low": boot["overall"]["ci_low"], "boot_high": boot["overall"]["ci_high"],
        "seen_n": split.get("seen", {}).get("n", 0), "seen_accuracy": split.get("seen", {}).get("accuracy"),
        "unseen_n": split.get("unseen", {}).get("n", 0), "unseen_accuracy": split.get("unseen", {}).get("accuracy"),
        "seen_chance": split.get("seen", {}).get("chance"), "unseen_chance": split.get("unseen", {}).get("chance"),
        "gap": gap.get("estimate"), "gap_low": gap.get("ci_low"), "gap_high": gap.get("ci_high"),
        "gap_note": gap.get("note", ""), "parse_failure_rate": over["parse_failure_rate"],
        "chance": over["chance"], "chance_corrected": over["chance_corrected"],
        # Items that failed at inference are not in n (a run that ended "incomplete"): accuracy is over the rest.
        "failed_items": failed_items(run),
    }


def failed_items(run: Run) -> int:
    """Items of the run that failed at inference and have no prediction (retried when the run is resumed)."""
    return int(((run.manifest.get("inference_errors") or {}).get("n")) or 0)


def scoring_label(run: Run) -> str:
    """How the run scored items: e.g. 'generate', 'likelihood', 'generate, circular' (from the data and manifest)."""
    scoring = run.manifest.get("scoring") or {}
    mode = str(scoring.get("mode") or "?")
    circular = bool(scoring.get("circular")) or bool(is_circular(run.predictions).any())
    return f"{mode}, circular" if circular else mode


def summary_view(s: pd.DataFrame, cluster: str) -> pd.DataFrame:
    return pd.DataFrame({
        "run": s["run"], "scoring": s["scoring"], "n": s["n"],
        "acc %": s["accuracy"].map(pct),
        f"95% CI (bootstrap by {cluster})": [interval(lo, hi) for lo, hi in zip(s["boot_low"], s["boot_high"])],
        "seen %": s["seen_accuracy"].map(pct), "unseen %": s["unseen_accuracy"].map(pct),
        "chance seen / unseen %": [f"{pct(a)} / {pct(b)}" for a, b in zip(s["seen_chance"], s["unseen_chance"])],
        "gap (pts)": s["gap"].map(signed_pct),
        "gap 95% CI": [interval(lo, hi, signed=True) if not note else note
                       for lo, hi, note in zip(s["gap_low"], s["gap_high"], s["gap_note"])],
        "chance-corr. %": s["chance_corrected"].map(pct),
        "parse fail %": s["parse_failure_rate"].map(pct),
        "failed items": s["failed_items"],
    })


def grouped_accuracy(tables: dict[str, pd.DataFrame], targets: list[int] | None) -> pd.DataFrame:
    """Accuracy per (target composition, run) for the grouped bars; a target absent from a run has n = 0."""
    if targets:
        labels = [SUBSETS[t].label for t in targets]
    else:
        labels = sorted({g for t in tables.values() for g in
                         t.loc[(t["level"] == "composition") & (t["split"] == "unseen"), "group"]})
    rows = []
    for label in labels:
        for run, t in tables.items():
            cell = t[(t["level"] == "composition") & (t["group"] == label)]
            if cell.empty or int(cell["n"].iloc[0]) == 0:
                rows.append({"target": label, "run": run, "n": 0, "accuracy": float("nan"), "ci_low": float("nan"),
                             "ci_high": float("nan"), "note": "n/a: no items of this target in the run"})
            else:
                c = cell.iloc[0]
                rows.append({"target": label, "run": run, "n": int(c["n"]), "accuracy": c["accuracy"],
                             "ci_low": c["ci_low"], "ci_high": c["ci_high"], "note": ""})
    return pd.DataFrame(rows, columns=["target", "run", "n", "accuracy", "ci_low", "ci_high", "note"])


def paired_view(t: pd.DataFrame, label_a: str, label_b: str) -> pd.DataFrame:
    return pd.DataFrame({
        "composition": t["composition"], "split": t["split"], "n": t["n"],
        f"{label_a} %": t[f"acc_{label_a}"].map(pct), f"{label_b} %": t[f"acc_{label_b}"].map(pct),
        "diff (pts)": t["diff_b_minus_a"].map(signed_pct),
        f"only {label_a}": t[f"only_{label_a}"], f"only {label_b}": t[f"only_{label_b}"],
        "p (exact McNemar)": t["pvalue"].map(pvalue), "p (Holm)": t["p_holm"].map(pvalue),
        "significant": t["significant"].map({True: "yes", False: "no"}),
    })


def html_pairs(runs: list[Run], computed: dict[str, pd.DataFrame], alpha: float) -> dict[str, pd.DataFrame | str]:
    """Per run after the first: its paired test against the first (as computed for --paired, or now), or the
    reason there is none (the runs answered different items, or scored them differently)."""
    out: dict[str, pd.DataFrame | str] = {}
    first = runs[0]
    for other in runs[1:]:
        if other.label in computed:
            out[other.label] = computed[other.label]
            continue
        try:
            out[other.label] = paired_by_composition(first.predictions, other.predictions, first.label, other.label,
                                                     alpha)
        except (ItemSetMismatch, ScoringMismatch) as e:
            out[other.label] = str(e)
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return _main(args)
    except Exception as e:  # named errors (PredictionsError, ItemSetMismatch, ...) and bad values: one line
        return named_error_status("cgeval.report: error", e, also=(ValueError,))


def _main(args: argparse.Namespace) -> int:
    out: Path = args.out
    labels = _labels(args.runs, args.labels)
    runs = [load_run(p, label) for p, label in zip(args.runs, labels)]  # fail before writing anything
    # The paired comparisons and Table 3 can fail (different items, different scoring): compute them first,
    # so that a failure leaves no half-written report folder.
    paired = [(other, paired_by_composition(runs[0].predictions, other.predictions, runs[0].label, other.label,
                                            args.alpha)) for other in runs[1:]] if args.paired else []
    t3 = (table3(load_table3_config(args.table3), alpha=args.alpha, cache={r.path.resolve(): r for r in runs})
          if args.table3 else None)
    out.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    analyses = {}
    for run in runs:
        run_out = out if len(runs) == 1 else out / slug(run.label)
        analyses[run.label] = write_run_outputs(run, run_out, title=run.label, n_boot=args.bootstrap,
                                                seed=args.seed, cluster=args.cluster, image_root=args.image_root,
                                                max_thumbs=args.thumbnails)
        written.append(str(run_out))

    summary = pd.DataFrame([summary_row(r, analyses[r.label]) for r in runs])
    write_table(summary, summary_view(summary, args.cluster), out / "summary",
                f"Accuracy and seen - unseen gap ({args.bootstrap} cluster-bootstrap resamples, seed {args.seed})")
    gaps = summary.rename(columns={"gap": "estimate", "gap_low": "ci_low", "gap_high": "ci_high"})
    gaps["estimate"] = gaps["estimate"].astype(float)
    plot_gap_forest(gaps, out / "gap_forest")
    bars = grouped_accuracy({r.label: analyses[r.label]["table"] for r in runs}, args.targets)
    if not bars.empty:
        write_text_atomic(out / "grouped_bars.csv", bars.to_csv(index=False))
        plot_grouped_bars(bars, out / "grouped_bars", title="Accuracy on target compositions",
                          two_columns=len(runs) * bars["target"].nunique() > 12)
    written += ["summary.{csv,md,tex}", "gap_forest.{png,pdf}", "grouped_bars.{csv,png,pdf}"]
    if len(runs) > 1:
        write_comparison_html(out, runs, {r.label: analyses[r.label]["table"] for r in runs},
                              summary_view(summary, args.cluster), gaps,
                              {r.label: f"{slug(r.label)}/{HTML_NAME}" for r in runs},
                              html_pairs(runs, dict((o.label, t) for o, t in paired), args.alpha), args.alpha)
        written.append(HTML_NAME)

    if args.paired:
        first = runs[0]
        for other, t in paired:
            stem = out / f"paired_{slug(other.label)}_vs_{slug(first.label)}"
            write_table(t, paired_view(t, first.label, other.label), stem,
                        f"{other.label} vs {first.label}: exact McNemar per composition, Holm-adjusted")
            written.append(stem.name + ".{csv,md,tex}")

    if t3 is not None:
        write_table(t3, table3_view(t3), out / "table3", "Compositional generalization (Table 3 layout)",
                    latex_view=table3_latex_view(t3))
        written.append("table3.{csv,md,tex}")
        helps = t3["cg_helps"]
        print(f"Table 3: {int((helps == True).sum())} of {len(t3)} rows: CG helps "  # noqa: E712
              f"({int(helps.isna().sum())} n/a)")

    print(summary_view(summary, args.cluster).to_markdown(index=False, disable_numparse=True))
    for r in runs:
        if failed_items(r):
            print(f"warning: {r.label}: {failed_items(r)} items failed at inference and are not counted "
                  f"(status {r.manifest.get('status')!r}); resume the run to retry them", file=sys.stderr)
    print(f"\nwrote into {out}: " + ", ".join(written))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
