"""The ``cgeval`` command.

    cgeval experiment=holdout_ct_lung model=prior     run an evaluation (Hydra overrides, as `python -m cgeval`)
    cgeval report RUN [RUN ...] [--out DIR] ...       tables and figures from run folders (`python -m cgeval.report`)
    cgeval split experiment=... split.out=DIR         training sets and test list (`python -m cgeval.split`)
    cgeval merge RUN_DIR                              merge the shards of a run (`python -m cgeval.merge`)
    cgeval candidates [--out DIR] ...                 every Table-3-style row (`python -m cgeval.split_candidates`)

Every subcommand takes ``--help`` (``cgeval --help`` is the evaluation's Hydra help). The ``python -m`` forms
keep working; this only dispatches to them.
"""

from __future__ import annotations

import importlib
import sys

# subcommand -> the module its `python -m` form runs
SUBCOMMANDS: dict[str, str] = {
    "report": "cgeval.report",
    "split": "cgeval.split",
    "merge": "cgeval.merge",
    "candidates": "cgeval.split_candidates",
}


def prog(module: str) -> str:
    """The name a subcommand's usage line shows: ``cgeval <sub>`` when started through this command, else the
    ``python -m`` form."""
    first = sys.argv[0] if sys.argv else ""
    return first if first.startswith("cgeval ") else f"python -m {module}"


def _entry(module: str):
    """The ``main`` a subcommand's module runs under ``python -m`` (cgeval.report's lives in analysis.cli)."""
    mod = importlib.import_module(module)
    return getattr(mod, "main")


def main(argv: list[str] | None = None) -> int | None:
    """The `cgeval` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        name, rest = args[0], args[1:]
        entry = _entry(SUBCOMMANDS[name])
        sys.argv = [f"cgeval {name}", *rest]
        if name == "split":  # a Hydra app: it reads its overrides from sys.argv
            return entry()
        return entry(rest)
    # Anything else is an evaluation: Hydra reads the overrides (and -m, --help, --cfg ...) from sys.argv; the exit
    # code is the runs' (0 complete, 3 incomplete, 1 stopped on an error: cgeval.run.exit_code).
    from .__main__ import cli as evaluate

    sys.argv = ["cgeval", *args]
    return evaluate()


if __name__ == "__main__":
    sys.exit(main())
