"""Merge the shards of a run: ``python -m cgeval.merge RUN_DIR``.

Checks that every shard ran with the same settings (config hash, model and scoring cache key, questions)
and that every question is present exactly once, then writes ``predictions.jsonl``, ``manifest.json`` and
the report, as an unsharded run would.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .analysis.report import write_report
from .cli import prog
from .errors import named_error_status
from .manifest import write_json_atomic, write_text_atomic
from .config import ShardConfig
from .store import item_sort_key, locked_run_folder, read_rows


class MergeError(RuntimeError):
    """Shards that cannot be merged: different settings, missing shards, missing or duplicated items."""


def merge_shards(run_dir: str | Path) -> dict:
    """Merge the shards in ``run_dir`` (holding the folder: `RunFolderLocked` while a shard still runs)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise MergeError(f"{run_dir}: no such folder")
    with locked_run_folder(run_dir, ShardConfig()):
        return _merge(run_dir)


def _merge(run_dir: Path) -> dict:
    manifests = {p: json.loads(p.read_text()) for p in sorted(run_dir.glob("manifest.shard-*-of-*.json"))}
    if not manifests:
        raise MergeError(f"{run_dir}: no shard manifests (manifest.shard-*-of-*.json)")
    # Shards may have been re-run with a different count; all of them must agree on what was asked.
    for field in ("config_hash", "run_key"):
        values = {m.get(field) for m in manifests.values()}
        if len(values) > 1:
            raise MergeError(f"shards ran with different settings ({field} differs: {len(values)} values); "
                             "refusing to merge")
    hashes = {m["data"]["items_hash"] for m in manifests.values()}
    if len(hashes) > 1:
        raise MergeError("shards evaluated different question sets (items_hash differs); refusing to merge")
    unfinished = [p.name for p, m in manifests.items() if m.get("status") != "complete"]
    if unfinished:
        raise MergeError(f"shards not complete (re-run them to finish): {unfinished}")
    first = next(iter(manifests.values()))
    n_total = first["data"]["n_items"]
    run_key = first["run_key"]

    rows: dict[str, dict] = {}
    for path in sorted(run_dir.glob("predictions.shard-*-of-*.jsonl")):
        file_rows, bad = read_rows(path)
        if bad:
            raise MergeError(f"{path.name}: {bad} unreadable lines; re-run that shard to repair it")
        for row in file_rows:
            if row.get("cache_key") is None:
                raise MergeError(f"{path.name}: rows without a cache key (an older cgeval?)")
            prev = rows.get(row["item_id"])
            if prev is not None and prev != row:
                raise MergeError(f"item {row['item_id']} has two different predictions across shards")
            rows[row["item_id"]] = row
    if len(rows) != n_total:
        raise MergeError(f"{len(rows)} of {n_total} questions have predictions; "
                         f"{n_total - len(rows)} missing: run the remaining shards")
    ordered = sorted(rows.values(), key=lambda r: item_sort_key(r["item_id"]))
    write_text_atomic(run_dir / "predictions.jsonl",
                      "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ordered))
    merged = {**first, "status": "complete", "shard": None, "run_key": run_key, "n_predictions": len(ordered),
              "merged_from": [p.name for p in manifests],
              "inference_errors": {"n": sum(m.get("inference_errors", {}).get("n", 0) for m in manifests.values())},
              "elapsed_s": round(sum(m.get("elapsed_s", 0) for m in manifests.values()), 3)}
    merged["data"] = {**first["data"], "n_items_this_shard": len(ordered)}
    if (first.get("judge") or {}).get("used"):  # the judge's work, summed over the shards
        counts = ("n_rows_to_judge", "asked", "reused", "failed", "stale_rows", "unreadable_lines")
        merged["judge"] = {**first["judge"], "judgements_file": None,
                           **{k: sum((m.get("judge") or {}).get(k) or 0 for m in manifests.values()) for k in counts}}
    merged.pop("error", None)
    # "complete" only once the report is written too, as for an unsharded run
    write_json_atomic(run_dir / "manifest.json", {**merged, "status": "running"})
    exp = first["experiment"]["name"]
    metrics = write_report(run_dir, title=f"{exp} / {first['model']['name']} / {first['scoring']['mode']}")
    write_json_atomic(run_dir / "manifest.json", merged)
    return metrics


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog("cgeval.merge"), description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    args = parser.parse_args(argv)
    try:
        metrics = merge_shards(args.run_dir)
    except Exception as e:  # a named error (MergeError, RunFolderLocked, ...): one line, status 2
        return named_error_status("cgeval.merge", e)
    split = metrics.get("split", {})
    summary = ", ".join(f"{k} {100 * v['accuracy']:.1f}% (n={v['n']})" for k, v in split.items() if v.get("n"))
    print(f"merged {args.run_dir}: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
