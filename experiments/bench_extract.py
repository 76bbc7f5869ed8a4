"""Answer extraction: accuracy on the unit tests' reply tables, replies per second, and one very long reply.

    python experiments/bench_extract.py [--repeat 20] [--baseline main]

Accuracy on each table (tests/scoring/test_extract.py, the short replies; tests/scoring/test_extract_v2.py, the
replies of part 1 of issue 14, per category; experiments/extract_holdout.py, replies written after the rules, whose
first measurements are the only figures that do not merely confirm what the rules were built for): % right (the expected letter, or an abstention where none is
expected), % wrong commitment (a letter other than the expected one: the outcome that silently changes a
model's accuracy), % abstained (None where a letter is expected). ``--baseline REF`` also measures the extractor
of a git ref (its cgeval/scoring/extract.py or extract/ package, loaded on its own) in the same process, with
the ratio of speeds.

Targets: >= 5,000 replies/s on the short table, no wrong commitment on it, <= 1 s for a 70,000-character reply
(no catastrophic backtracking). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from cgeval.scoring import extract_choice  # noqa: E402
from tests.scoring.test_extract import CASES as SHORT_CASES  # noqa: E402  the unit tests' reply tables
from tests.scoring.test_extract import KIDNEY  # noqa: E402
from tests.scoring.test_extract_v2 import CATEGORIES  # noqa: E402

sys.path.insert(0, str(REPO / "experiments"))
from extract_holdout import CASES as HOLDOUT  # noqa: E402  replies written after the rules
from extract_holdout import CASES_2 as HOLDOUT_2  # noqa: E402
from extract_holdout import CASES_3 as HOLDOUT_3  # noqa: E402

REPLIES_PER_S_TARGET = 5000
LONG_REPLY_TARGET_S = 1.0
Extract = Callable[..., "str | None"]


def load_baseline(ref: str, workdir: Path) -> Extract:
    """``extract_choice`` of the extractor at git ``ref``, loaded apart from the installed cgeval."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref, "cgeval/scoring"],
                             check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(workdir, filter="data")
    package = workdir / "cgeval" / "scoring" / "extract"
    if package.is_dir():
        spec = importlib.util.spec_from_file_location("baseline_extract", package / "__init__.py",
                                                      submodule_search_locations=[str(package)])
    else:
        spec = importlib.util.spec_from_file_location("baseline_extract", package.with_suffix(".py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.extract_choice


def accuracy(extract: Extract, cases) -> tuple[float, float, float]:
    """(% right, % wrong commitment, % abstained where a letter was expected)."""
    right = wrong = abstained = 0
    for reply, options, expected, _ in cases:
        got = extract(reply, options)
        if got == expected:
            right += 1
        elif got is None:
            abstained += 1
        else:
            wrong += 1
    n = len(cases)
    return 100 * right / n, 100 * wrong / n, 100 * abstained / n


def replies_per_s(extract: Extract, cases, repeat: int) -> float:
    """Replies per second of this process's CPU time (other work on shared cores does not count), best of 3."""
    replies = [(c[0], c[1]) for c in cases] * repeat
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        for reply, options in replies:
            extract(reply, options)
        best = min(best, time.process_time() - t0)
    return len(replies) / best


def report(name: str, extract: Extract, repeat: int) -> tuple[float, float]:
    """Print the figures of one extractor; return (short-table replies/s, short-table % wrong commitment)."""
    print(f"== {name}")
    tables = {"short (test_extract)": SHORT_CASES, "v2 all (test_extract_v2)": [c for t in CATEGORIES.values()
                                                                                 for c in t]}
    tables.update({f"  v2 {cat}": cases for cat, cases in CATEGORIES.items()})
    tables["held-out (extract_holdout)"] = [(*c, None) for c in HOLDOUT]
    tables["held-out, second batch"] = [(*c, None) for c in HOLDOUT_2]
    tables["held-out, third batch"] = [(*c, None) for c in HOLDOUT_3]
    wrong_short = 0.0
    for label, cases in tables.items():
        right, wrong, abstained = accuracy(extract, cases)
        if label.startswith("short"):
            wrong_short = wrong
        print(f"{label:28s} n={len(cases):4d}  right {right:5.1f}%  wrong commitment {wrong:4.1f}%  "
              f"abstained {abstained:4.1f}%")
    rate = replies_per_s(extract, SHORT_CASES, repeat)
    rate_v2 = replies_per_s(extract, [c for t in CATEGORIES.values() for c in t], max(1, repeat // 4))
    print(f"speed: {rate:,.0f} replies/s on the short table (target >= {REPLIES_PER_S_TARGET:,}), "
          f"{rate_v2:,.0f} replies/s on the v2 table (long replies included)")
    return rate, wrong_short


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--baseline", metavar="REF", help="also measure the extractor at this git ref")
    args = parser.parse_args(argv)

    rate, wrong_short = report("this tree", extract_choice, args.repeat)
    if args.baseline:
        with tempfile.TemporaryDirectory() as tmp:
            base_rate, _ = report(f"baseline {args.baseline}", load_baseline(args.baseline, Path(tmp)), args.repeat)
        print(f"speed ratio this tree / baseline on the short table: {rate / base_rate:.2f}")

    long_reply = ("The kidney shows several features. " * 2000) + "The answer is B."
    t0 = time.perf_counter()
    assert extract_choice(long_reply, KIDNEY) == "B"
    long_s = time.perf_counter() - t0
    print(f"{len(long_reply):,}-character reply: {long_s:.3f} s (target <= {LONG_REPLY_TARGET_S:g} s)")
    ok = rate >= REPLIES_PER_S_TARGET and wrong_short == 0 and long_s <= LONG_REPLY_TARGET_S
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
