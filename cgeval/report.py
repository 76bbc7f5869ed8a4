"""``python -m cgeval.report RUN [RUN ...] [--out DIR] [--table3 CONFIG.yaml] [--bootstrap 1000] [--seed 0]``.

Tables and figures from run folders alone; see ``cgeval.analysis.cli``.
"""

from __future__ import annotations

from .analysis.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
