"""`python -m cgeval.split_candidates [--scope released|all] [--data-root DIR] [--out DIR]`: every Table-3-style row.

Lists, from the MAT registry alone (cgeval.data.candidates), every Related combination -> Target row in the
paper's four blocks (fixed modality, fixed area, fixed task, modality-area pairs) with its Baseline+ pool, and
marks the rows the paper names. ``--data-root`` keeps only the subsets whose QA files are under that folder.
With ``--out`` it writes ``table3_candidates.csv`` and ``table3_candidates.md`` there and prints the counts per
block; without, it prints the Markdown table. A plain argparse entry: nothing here needs Hydra.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .data.candidates import SCOPES, CandidatesError, block_counts, candidate_rows, candidates_frame, universe
from .data.loader import DataError, find_qa_files

STEM = "table3_candidates"


def markdown(frame, report: dict, numbers: list[int]) -> str:
    lines = [
        "# Table 3 candidate rows",
        "",
        f"Subsets considered: {' '.join(f'{n:02d}' for n in numbers)}",
        "",
        "Rows the paper names:",
        "",
        *(f"- {k}: {v}" for k, v in report.items()),
        "",
        frame.to_markdown(index=False, disable_numparse=True),
        "",
    ]
    return "\n".join(lines)


def enumerate_candidates(scope: str = "released", data_root: str | Path | None = None):
    """(subsets considered, candidate rows, paper-row report) for a scope, restricted to a data root's subsets."""
    present = None
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.is_dir():
            raise CandidatesError(f"--data-root {root} does not exist or is not a folder")
        present = sorted(find_qa_files(root, "subsets"))
    numbers = universe(scope, present)
    rows, report = candidate_rows(numbers)
    return numbers, rows, report


def write_candidates(out: Path, scope: str = "released", data_root: str | Path | None = None) -> dict:
    """Write the CSV and Markdown into ``out``; returns {"paths", "counts", "paper_rows", "subsets"}."""
    numbers, rows, report = enumerate_candidates(scope, data_root)
    frame = candidates_frame(rows)
    out.mkdir(parents=True, exist_ok=True)
    csv_path, md_path = out / f"{STEM}.csv", out / f"{STEM}.md"
    frame.to_csv(csv_path, index=False, lineterminator="\n")
    md_path.write_text(markdown(frame, report, numbers), encoding="utf-8")
    return {"paths": [csv_path, md_path], "counts": block_counts(rows), "paper_rows": report, "subsets": numbers}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cgeval.split_candidates", description=__doc__.splitlines()[0])
    parser.add_argument("--scope", choices=SCOPES, default="released",
                        help="released: subsets 01-37 (default); all: 01-53, detection/segmentation included")
    parser.add_argument("--data-root", help="keep only subsets whose Subset--NN-train.json is under this folder")
    parser.add_argument("--out", help="folder for table3_candidates.csv/.md (default: print the Markdown)")
    args = parser.parse_args(argv)
    try:
        if args.out is None:
            numbers, rows, report = enumerate_candidates(args.scope, args.data_root)
            sys.stdout.write(markdown(candidates_frame(rows), report, numbers))
            return 0
        result = write_candidates(Path(args.out), args.scope, args.data_root)
    except (CandidatesError, DataError) as e:
        print(f"cgeval.split_candidates: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{b} {n}" for b, n in result["counts"].items())
    print(f"cgeval.split_candidates: {sum(result['counts'].values())} rows ({counts}) over "
          f"{len(result['subsets'])} subsets -> {args.out}")
    for text, how in result["paper_rows"].items():
        print(f"  paper row {text}: {how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
