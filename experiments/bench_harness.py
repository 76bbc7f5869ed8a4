"""Harness overhead: how many questions per second cgeval pushes through with a model that answers at once.

Writes N synthetic questions in the Med-MAT layout (records spread over the sample's subsets, images shared
from a small pool so that writing them stays cheap; images are not decoded), then times:

- baseline: the bare minimum any harness must do (json.load the files, parse options, extract the letter,
  json.dumps a row) in a plain loop;
- cgeval: the full `run()` (loader with existence checks, seen/unseen labels, cache keys, batching,
  per-batch flush + fsync, canonical rewrite, metrics, tables and figures) with the mock model.

    python experiments/bench_harness.py [--n 100000] [--batch-size 256]
Target: >= 5,000 items/s on a 2-core machine, so the harness is never the bottleneck in front of a GPU.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from cgeval.config import DataConfig, ExperimentConfig, RunConfig
from cgeval.data.records import parse_question_choice
from cgeval.data.sample import SAMPLE_ROOT, build_records
from cgeval.models.mock import MockModel
from cgeval.run import run
from cgeval.scoring import extract_choice


def write_synthetic(root: Path, n: int) -> None:
    """n records over the sample's subsets, pointing at the sample's 120 images (copied once)."""
    shutil.copytree(SAMPLE_ROOT / "med-mat", root / "med-mat")
    base = build_records()
    per_subset = n // len(base)
    (root / "Aggregated_Subsets").mkdir(parents=True)
    for number, recs in base.items():
        out = [{**recs[i % len(recs)], "id": i + 1} for i in range(per_subset)]
        (root / "Aggregated_Subsets" / f"Subset--{number:02d}-train.json").write_text(json.dumps(out))


def bare_loop(root: Path, out: Path) -> int:
    n = 0
    with out.open("w") as f:
        for path in sorted((root / "Aggregated_Subsets").glob("*.json")):
            for rec in json.loads(path.read_text()):
                _, options, _ = parse_question_choice(rec["Question-choice"])
                pred = extract_choice(rec["Answer-choice"], options)
                f.write(json.dumps({"id": rec["id"], "pred": pred, "correct": pred == rec["Answer-choice"]}) + "\n")
                n += 1
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "medmat"
        t = time.perf_counter()
        write_synthetic(root, args.n)
        print(f"wrote {args.n:,} synthetic questions in {time.perf_counter() - t:.1f} s")

        t = time.perf_counter()
        n_bare = bare_loop(root, Path(tmp) / "bare.jsonl")
        bare = time.perf_counter() - t

        cfg = RunConfig(
            data=DataConfig(root=str(root), verify_images=False),
            experiment=ExperimentConfig(name="bench", heldout=[{"modality": "CT", "area": "Lung"}]),
            batch_size=args.batch_size, output_dir=str(Path(tmp) / "run"), progress=False)
        t = time.perf_counter()
        metrics = run(cfg, MockModel(reply="first"))
        full = time.perf_counter() - t
        n = metrics["overall"]["all"]["n"]

        t = time.perf_counter()
        run(cfg, MockModel(reply="first"))  # everything cached: the resume path
        resumed = time.perf_counter() - t

    print(f"\n{'':32s} {'items':>9s} {'seconds':>8s} {'items/s':>9s}")
    print(f"{'baseline (bare loop)':32s} {n_bare:9,d} {bare:8.2f} {n_bare / bare:9,.0f}")
    print(f"{'cgeval run, mock model':32s} {n:9,d} {full:8.2f} {n / full:9,.0f}")
    print(f"{'cgeval re-run, all cached':32s} {n:9,d} {resumed:8.2f} {n / resumed:9,.0f}")
    print(f"\ncgeval / baseline time ratio: {full / bare:.2f}x; target >= 5,000 items/s: "
          f"{'met' if n / full >= 5000 else 'NOT met'}")


if __name__ == "__main__":
    main()
