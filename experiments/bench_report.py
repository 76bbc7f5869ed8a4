"""Benchmark: the report statistics over 1,000,000 synthetic prediction rows with 1,000 bootstrap resamples.

Times what ``python -m cgeval.report`` computes (not the figure rendering or file writing): the metrics table
with Wilson intervals and chance, marginals by split, modality x area cells, the cluster bootstrap (by image) of
overall / seen / unseen accuracy and of the seen - unseen gap, and exact McNemar per composition between two
runs with Holm adjustment. Target: <= 10 s on a 2-core machine.

    python experiments/bench_report.py [--rows 1000000] [--boot 1000] [--items-per-image 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd

from cgeval.analysis.metrics import (AXES, bootstrap_summary, cross_table, metrics_table, paired_by_composition,
                                     prepare)
from cgeval.data.registry import SUBSETS


def synthetic_predictions(n_rows: int, items_per_image: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two runs over the same items: 30 released subsets, images shared by ~items_per_image items."""
    rng = np.random.default_rng(seed)
    subsets = [s for s in sorted(SUBSETS) if SUBSETS[s].released][:30]
    subset = rng.choice(subsets, size=n_rows)
    meta = pd.DataFrame([(s, SUBSETS[s].modality, SUBSETS[s].area, SUBSETS[s].task, SUBSETS[s].datasets[0])
                         for s in subsets], columns=["subset", "modality", "area", "task", "dataset"]).set_index("subset")
    m = meta.loc[subset]
    n_options = rng.integers(2, 5, size=n_rows)
    gold = np.array(list("ABCD"))[rng.integers(0, n_options)]
    unseen = np.isin(subset, subsets[:4])
    image = subset * 10_000_000 + rng.integers(0, max(1, n_rows // (items_per_image * len(subsets))), size=n_rows)

    def run(p_correct: float, seed: int) -> pd.DataFrame:
        r = np.random.default_rng(seed)
        correct = r.random(n_rows) < p_correct
        pred = np.where(correct, gold, "A").astype(object)
        pred[r.random(n_rows) < 0.02] = None
        correct &= pred != None  # noqa: E711 (elementwise)
        return pd.DataFrame({
            "item_id": np.arange(n_rows).astype(str), "subset": subset, "dataset": m["dataset"].to_numpy(),
            "modality": m["modality"].to_numpy(), "area": m["area"].to_numpy(), "task": m["task"].to_numpy(),
            "split": np.where(unseen, "unseen", "seen"), "shared_elements": np.where(unseen, 3, 1),
            "n_options": n_options, "gold": gold, "pred": pred, "correct": correct, "image": image.astype(str)})

    return run(0.55, seed + 1), run(0.6, seed + 2)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--boot", type=int, default=1000)
    p.add_argument("--items-per-image", type=int, default=4)
    args = p.parse_args()
    a, b = synthetic_predictions(args.rows, args.items_per_image)
    print(f"{len(a):,} rows, {a['image'].nunique():,} images, {args.boot} bootstrap resamples")
    timings = {}
    t0 = time.perf_counter()
    a = prepare(a)  # categorical labels and composition, once (what analyse_run does)
    timings["prepare (categoricals, composition labels)"] = time.perf_counter() - t0
    t = time.perf_counter()
    table = metrics_table(a)
    timings["metrics table (Wilson, chance, chance-corrected)"] = time.perf_counter() - t
    t = time.perf_counter()
    for axis in AXES:
        cross_table(a, axis, "split")
    cross_table(a, "modality", "area", by=["task"])
    timings["marginals by split + modality x area per task"] = time.perf_counter() - t
    t = time.perf_counter()
    boot = bootstrap_summary(a, n_boot=args.boot, seed=0, cluster="image")
    timings["cluster bootstrap: overall, seen, unseen, gap"] = time.perf_counter() - t
    t = time.perf_counter()
    paired = paired_by_composition(a, b, "A", "B")
    timings["exact McNemar per composition + Holm"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    for name, s in timings.items():
        print(f"  {s:6.2f} s  {name}")
    gap = boot["gap_seen_minus_unseen"]
    print(f"gap seen - unseen = {100 * gap['estimate']:+.2f} pts [{100 * gap['ci_low']:+.2f}, {100 * gap['ci_high']:+.2f}]"
          f"; {len(table)} table rows; {len(paired)} paired rows")
    print(f"TOTAL {total:.2f} s for {args.rows:,} rows x {args.boot} resamples (target <= 10 s)")


if __name__ == "__main__":
    main()
