"""Benchmark: ``python -m cgeval.report`` over N small run folders, end to end (tables and figures).

Builds N synthetic run folders (the row schema of cgeval.run, 120 items over four compositions like the
embedded sample), then times the report CLI in this process three ways:

* ``no figures``: every plot function replaced by a no-op (what the tables and statistics cost);
* ``figures, old path``: the figure saving as it was before the speed-up (pyplot figures, a full raster draw
  for the layout check);
* ``figures, current``: the code as it is.

Old and current write byte-identical files (PNG, and PDF with SOURCE_DATE_EPOCH fixed); the script checks it.

    python experiments/bench_report_runs.py [--runs 6] [--items 30] [--repeat 1]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import tempfile
import time
import warnings
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import matplotlib.pyplot as plt
import numpy as np

from cgeval.analysis import cli, figures, report
from cgeval.data.registry import SUBSETS

SUBSETS_USED = (2, 3, 4, 28)


def write_run(folder: Path, seed: int, heldout: int, n_per_subset: int) -> Path:
    rng = np.random.default_rng(seed)
    items = np.random.default_rng(1234)  # the same items in every run, so --paired applies
    rows = []
    for s in SUBSETS_USED:
        sub = SUBSETS[s]
        for i in range(n_per_subset):
            gold = "ABCD"[items.integers(0, 4)]
            correct = bool(rng.random() < 0.5)
            pred = gold if correct else ("A" if gold != "A" else "B")
            rows.append({"item_id": f"S{s:02d}-{i}", "subset": s, "dataset": sub.datasets[0],
                         "modality": sub.modality, "area": sub.area, "task": sub.task,
                         "split": "unseen" if s == heldout else "seen", "shared_elements": 3 if s == heldout else 1,
                         "n_options": 4, "gold": gold, "answer_text": "x", "response": pred, "pred": pred,
                         "parse_rule": "bare_letter", "option_scores": None, "correct": correct,
                         "image": f"med-mat/{s}/img{i // 2}.png"})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    (folder / "manifest.json").write_text(json.dumps({"status": "complete", "data": {"n_items": len(rows)},
                                                      "heldout_subsets": [heldout]}), encoding="utf-8")
    return folder


def _old_new_figure(figsize):
    return plt.subplots(figsize=figsize, layout="constrained")


def _old_save(fig, out_stem: Path):
    """figures._save before the speed-up: a full raster draw for the layout check."""
    out_stem = Path(out_stem)
    fig.canvas.draw()
    fig.get_tightbbox(fig.canvas.get_renderer())
    out_stem.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        p = out_stem.with_name(f"{out_stem.name}.{ext}")
        fig.savefig(p, dpi=300)
        paths.append(p)
    plt.close(fig)
    return paths


@contextmanager
def variant(name: str):
    with ExitStack() as stack:
        if name == "no figures":
            for mod, fn in ((report, "plot_composition_accuracy"), (report, "plot_forest"),
                            (report, "plot_heatmaps"), (report, "plot_letter_bias"),
                            (cli, "plot_gap_forest"), (cli, "plot_grouped_bars")):
                stack.enter_context(mock.patch.object(mod, fn, lambda *a, **k: []))
        elif name == "figures, old path":
            stack.enter_context(mock.patch.object(figures, "_new_figure", _old_new_figure))
            stack.enter_context(mock.patch.object(figures, "_save", _old_save))
        yield


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--runs", type=int, default=6)
    p.add_argument("--items", type=int, default=30, help="items per composition (4 compositions per run)")
    p.add_argument("--repeat", type=int, default=1)
    args = p.parse_args()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "0")  # so that PDFs can be compared byte for byte
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        runs = [write_run(tmp / f"run{i}", seed=i, heldout=SUBSETS_USED[i % len(SUBSETS_USED)],
                          n_per_subset=args.items) for i in range(args.runs)]
        print(f"{args.runs} runs x {len(SUBSETS_USED) * args.items} items, --paired, 1000 bootstrap resamples")
        times: dict[str, list[float]] = {}
        outs = {}
        for r in range(args.repeat):
            for name in ("no figures", "figures, old path", "figures, current"):
                out = tmp / f"out-{name.replace(' ', '').replace(',', '-')}-{r}"
                with variant(name), warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")  # the report's own summary and layout warnings
                    t = time.perf_counter()
                    rc = cli.main([*map(str, runs), "--out", str(out), "--paired"])
                    times.setdefault(name, []).append(time.perf_counter() - t)
                assert rc == 0, name
                outs[name] = out
        for name, ts in times.items():
            print(f"  {min(ts):6.2f} s  {name}" + (f"  (of {len(ts)}: {', '.join(f'{x:.2f}' for x in ts)})"
                                                   if len(ts) > 1 else ""))
        old, new = digest(outs["figures, old path"]), digest(outs["figures, current"])
        same = old == new
        print(f"old and current outputs: {len(new)} files, " + ("byte-identical" if same else "DIFFER: " + ", ".join(
            k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k))))
        if not same:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
