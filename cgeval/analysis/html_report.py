"""``report.html``: one self-contained page per run, and one per comparison of runs.

Everything is inline (CSS, script, figures as SVG, thumbnails as data URIs), so the file opens offline and can
be mailed or attached as it is. The page is rendered with Jinja2 with autoescape on; the item browser's data
travels as one JSON block (``tojson``: ``<``, ``>``, ``&`` and ``'`` escaped) that the script writes as text.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path

import pandas as pd
from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from ..manifest import write_text_atomic
from .figures import figure_svg, forest_figure, gap_forest_figure, slug
from .html_sections import (
    COLLAPSE_SHARE,
    attach_thumbnails,
    browser_data,
    clean,
    composition_axes,
    composition_rows,
    confusion_matrices,
    filter_values,
    headline,
    heatmaps,
    label_columns,
    letter_bias_section,
    rule_rows,
    run_facts,
)
from .metrics import Run, prepare
from .tables import interval, pct, pvalue, signed_pct
from .thumbnails import THUMB_PX, Thumbnails, make_thumbnails

HTML_NAME = "report.html"
# Thumbnails: at most this many images and this many bytes of data URIs (2-6 KB each for a 160 px JPEG).
DEFAULT_MAX_THUMBS = 3000
DEFAULT_MAX_THUMB_BYTES = 15_000_000
# The page as a whole: replies get at most half of it (cut shorter when a run's replies are long), thumbnails
# what the rest of the page leaves.
DEFAULT_MAX_BYTES = 25_000_000

RUN_TOC = [("headline", "seen vs unseen"), ("heatmap", "MAT heatmap"), ("compositions", "compositions"),
           ("confusion", "confusion matrices"), ("letters", "letter bias"), ("rules", "parse rules"),
           ("browser", "items")]
COMPARE_TOC = [("summary", "summary"), ("side-by-side", "compositions side by side"), ("paired", "paired tests")]


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=PackageLoader("cgeval.analysis", "templates"), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    # Compact JSON; NaN is not JSON (the page could not parse it), so a NaN that slipped through is an error here.
    env.policies["json.dumps_kwargs"] = {"ensure_ascii": False, "separators": (",", ":"), "allow_nan": False}
    return env


@lru_cache(maxsize=1)
def _static() -> tuple[Markup, Markup]:
    """The page's stylesheet and script (files of this package, not data), inlined as they are."""
    folder = resources.files("cgeval.analysis") / "templates"
    css = (folder / "report.css").read_text(encoding="utf-8")
    js = (folder / "report.js").read_text(encoding="utf-8")
    if re.search(r"</(script|style)", css + js, re.IGNORECASE):
        raise ValueError("report.css / report.js must not contain a closing script or style tag")
    return Markup(css), Markup(js)


def _version() -> str:
    try:
        return metadata.version("cgeval")
    except metadata.PackageNotFoundError:
        return "?"


def render(template: str, **context) -> str:
    css, js = _static()
    return environment().get_template(template).render(css=css, js=js, version=_version(), **context)


def default_image_root(run: Run) -> str | None:
    """Where the run's images are: the data root its manifest records (item ``image`` paths are relative to it)."""
    root = (run.manifest.get("data") or {}).get("root")
    return str(root) if root else None


def write_run_html(run: Run, a: dict, out_dir: str | Path, letter_rows: tuple[pd.DataFrame, str] | None = None,
                   title: str = "", image_root: str | Path | None = None, max_thumbs: int = DEFAULT_MAX_THUMBS,
                   max_thumb_bytes: int = DEFAULT_MAX_THUMB_BYTES, max_bytes: int = DEFAULT_MAX_BYTES) -> Path:
    """Write ``out_dir/report.html`` for one run from its analysis (`cgeval.analysis.report.analyse_run`).

    ``letter_rows``: the rows and a description for the letter-bias section (default: the predictions);
    ``image_root``: the folder the items' image paths are relative to (default: the manifest's data root).
    The page stays within ``max_bytes``: the text is laid out first, thumbnails fill what is left (at most
    ``max_thumbs`` images and ``max_thumb_bytes``)."""
    df = prepare(run.predictions)
    root = image_root if image_root is not None else default_image_root(run)
    gold, pred, label_note = label_columns(df)
    comp_rows = composition_rows(a["table"], composition_axes(df))
    rows, what = letter_rows if letter_rows is not None else (run.predictions, f"n={len(run.predictions)} items")
    data, wanted, counts = browser_data(df, max_thumbs, reply_budget=max_bytes // 2)
    context = dict(
        title=title or run.label, facts=run_facts(run), toc=RUN_TOC, plural=False,
        head=headline(a, run), forest_svg=Markup(figure_svg(forest_figure(a["table"], a["bootstrap"]))),
        heatmaps=heatmaps(a["heatmap_cells"]), comp_rows=comp_rows, comp_filters=filter_values(comp_rows),
        comp_anchor={r["composition"]: slug(r["composition"]) for r in comp_rows},
        confusion=confusion_matrices(df, gold, pred), label_note=label_note,
        collapse_share=int(100 * COLLAPSE_SHARE), letters=letter_bias_section(rows, what), rules=rule_rows(df),
        decided=a["metrics"].get("decided"), agreement=(a["metrics"].get("judge_agreement") or {}).get("all"),
        thumb_px=THUMB_PX, data=data,
    )
    # The page without thumbnails says how many bytes are left for them (each also costs its index in a row,
    # its quotes and comma; the note about them a few hundred bytes).
    text_bytes = len(render("run.html.j2", browse=_thumb_note(Thumbnails(), counts, root), **context).encode())
    budget = min(max_thumb_bytes, max_bytes - text_bytes - 8 * len(wanted) - 4096)
    thumbs = make_thumbnails(wanted, root, max_thumbs, max(0, budget)) if budget > 0 else \
        Thumbnails(capped=len(set(wanted)))
    attach_thumbnails(data, thumbs)
    html = render("run.html.j2", browse=_thumb_note(thumbs, counts, root), **context)
    path = Path(out_dir) / HTML_NAME
    write_text_atomic(path, html)
    return path


def _thumb_note(thumbs: Thumbnails, counts: dict, root) -> dict:
    return {**thumbs.to_note(), **counts, "root": None if root is None else str(root)}


# --------------------------------------------------------------------------------------------------------------
# Several runs


def side_by_side(tables: dict[str, pd.DataFrame], axes: dict[str, dict], first: str,
                 paired: dict[str, pd.DataFrame | str]) -> list[dict]:
    """One row per composition, one cell per run (accuracy, interval, split in that run), and against the first
    run the difference with its Holm-adjusted exact McNemar p where the runs are paired."""
    labels = sorted({str(g) for t in tables.values() for g in t.loc[t["level"] == "composition", "group"]})
    by_run = {run: t[t["level"] == "composition"].set_index("group") for run, t in tables.items()}
    by_pair = {run: p.set_index("composition") for run, p in paired.items() if isinstance(p, pd.DataFrame)}
    rows = []
    for label in labels:
        ax = axes.get(label) or {"subset": None, "modality": "", "area": "", "task": ""}
        cells = []
        for run, t in by_run.items():
            if label not in t.index or int(t.loc[label, "n"]) == 0:
                cells.append({"n": 0, "acc": None, "acc_text": "n/a", "split": "", "ci": "", "lo": None,
                              "hi": None, "chance": None, "pair": None})
                continue
            r = t.loc[label]
            pair = None
            if run != first and run in by_pair and label in by_pair[run].index:
                p = by_pair[run].loc[label]
                pair = {"diff": signed_pct(p["diff_b_minus_a"]), "p": pvalue(p["p_holm"]),
                        "sig": bool(p["significant"])}
            cells.append({"n": int(r["n"]), "acc": clean(r["accuracy"]), "acc_text": pct(r["accuracy"]),
                          "split": str(r["split"]), "ci": interval(r["ci_low"], r["ci_high"]), "lo": clean(r["ci_low"]),
                          "hi": clean(r["ci_high"]), "chance": clean(r["chance"]), "pair": pair})
        splits = sorted({c["split"] for c in cells if c["split"]})
        rows.append({"composition": label, "modality": str(ax["modality"]), "area": str(ax["area"]),
                     "task": str(ax["task"]), "split": "/".join(splits) if len(splits) > 1 else (splits[0] if splits else ""),
                     "cells": cells})
    return rows


def paired_rows(t: pd.DataFrame, first: str, other: str) -> list[dict]:
    out = []
    for r in t.to_dict("records"):
        out.append({"composition": r["composition"], "split": r["split"], "n": int(r["n"]),
                    "a": pct(r[f"acc_{first}"]), "b": pct(r[f"acc_{other}"]), "diff": signed_pct(r["diff_b_minus_a"]),
                    "only_a": int(r[f"only_{first}"]), "only_b": int(r[f"only_{other}"]), "p": pvalue(r["pvalue"]),
                    "p_holm": pvalue(r["p_holm"]), "sig": bool(r["significant"])})
    return out


def write_comparison_html(out_dir: str | Path, runs: list[Run], tables: dict[str, pd.DataFrame],
                          summary: pd.DataFrame, gaps: pd.DataFrame, links: dict[str, str],
                          paired: dict[str, pd.DataFrame | str], alpha: float = 0.05,
                          title: str = "") -> Path:
    """Write ``out_dir/report.html`` comparing runs: the summary (``summary``: a formatted table, one row per run),
    the gap forest plot, the compositions side by side and, per run against the first, the exact McNemar test
    per composition (``paired``: its table, or why there is none). ``links``: run label -> its report.html."""
    first = runs[0].label
    axes: dict[str, dict] = {}
    for run in runs:
        for k, v in composition_axes(prepare(run.predictions)).items():
            axes.setdefault(k, v)
    rows = side_by_side(tables, axes, first, paired)
    pairs = []
    for run in runs[1:]:
        p = paired.get(run.label)
        pairs.append({"label": run.label, "rows": paired_rows(p, first, run.label) if isinstance(p, pd.DataFrame) else [],
                      "reason": p if isinstance(p, str) else ""})
    summary_rows = [[str(v) for v in r] for r in summary.itertuples(index=False)]
    html = render(
        "compare.html.j2", title=title or f"{len(runs)} runs compared", facts=[], toc=COMPARE_TOC, plural=True,
        first=first, run_labels=[r.label for r in runs], links=links, summary_cols=[str(c) for c in summary.columns],
        summary_rows=summary_rows, gap_svg=Markup(figure_svg(gap_forest_figure(gaps))), rows=rows,
        filters=filter_values(rows), pairs=pairs, alpha=alpha, data=None,
    )
    path = Path(out_dir) / HTML_NAME
    write_text_atomic(path, html)
    return path


__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_THUMBS", "DEFAULT_MAX_THUMB_BYTES", "HTML_NAME", "default_image_root", "render",
           "write_comparison_html", "write_run_html"]
