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

# subcommand -> (module, what it does)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "report": ("cgeval.report", "tables and figures from run folders"),
    "split": ("cgeval.split", "an experiment's training sets (LLaMA-Factory, ms-swift) and test list"),
    "merge": ("cgeval.merge", "merge the shards of a run"),
    "candidates": ("cgeval.split_candidates", "every Table-3-style candidate row"),
}


def _entry(module: str):
    """The ``main`` a subcommand's module runs under ``python -m`` (cgeval.report's lives in analysis.cli)."""
    mod = importlib.import_module(module)
    return getattr(mod, "main")


def main(argv: list[str] | None = None) -> int | None:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        name, rest = args[0], args[1:]
        entry = _entry(SUBCOMMANDS[name][0])
        if name == "split":  # a Hydra app: it reads its overrides from sys.argv
            sys.argv = [f"cgeval {name}", *rest]
            return entry()
        return entry(rest)
    # Anything else is an evaluation: Hydra reads the overrides (and -m, --help, --cfg ...) from sys.argv.
    from .__main__ import main as evaluate

    sys.argv = ["cgeval", *args]
    return evaluate()


if __name__ == "__main__":
    sys.exit(main())
