"""Answer extraction speed: replies per second over realistic replies, and one very long reply.

    python experiments/bench_extract.py [--repeat 20]

Targets: <= 2 ms a reply on average (the extractor never slows a run), <= 1 s for a 70,000-character reply
(no catastrophic backtracking). Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from cgeval.scoring import extract_choice

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "scoring"))
from test_extract import CASES, KIDNEY  # noqa: E402  the unit tests' reply table

PER_REPLY_TARGET_S = 2e-3
LONG_REPLY_TARGET_S = 1.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args(argv)
    replies = [(c[0], c[1]) for c in CASES] * args.repeat
    t0 = time.perf_counter()
    for reply, options in replies:
        extract_choice(reply, options)
    per_reply = (time.perf_counter() - t0) / len(replies)

    long_reply = ("The kidney shows several features. " * 2000) + "The answer is B."
    t0 = time.perf_counter()
    assert extract_choice(long_reply, KIDNEY) == "B"
    long_s = time.perf_counter() - t0

    print(f"{len(replies)} replies: {per_reply * 1e3:.3f} ms a reply ({1 / per_reply:,.0f} replies/s; "
          f"target <= {PER_REPLY_TARGET_S * 1e3:g} ms)")
    print(f"{len(long_reply):,}-character reply: {long_s:.3f} s (target <= {LONG_REPLY_TARGET_S:g} s)")
    return 0 if per_reply <= PER_REPLY_TARGET_S and long_s <= LONG_REPLY_TARGET_S else 1


if __name__ == "__main__":
    sys.exit(main())
