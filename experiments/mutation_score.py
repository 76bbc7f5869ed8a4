"""Mutation score of the modules whose bugs change a reported number or lose a row.

    python experiments/mutation_score.py [--modules merge analysis.table3 ...] [--jobs N] [--list]

Runs mutmut (the ``test`` extra installs it) once a module, each in its own working copy under
``.mutation/<module>/`` (kept between runs: mutmut re-tests only the mutants whose function changed, so a second
run is incremental; mutmut keeps a survivor's verdict even when new tests would kill it, so whenever the module's
test files changed since the last run, every survivor is re-tested too, with mutmut's map of which tests reach which
function collected afresh; ``--fresh`` starts the module over), with
the module's own test files, ``--jobs`` mutants at a time. Prints one line a module and,
last, ``mutation score: K/N = X.XX killed`` over the modules run. N is every mutant mutmut generates for them; K
counts the killed ones (a failing test or a timeout) and the survivors listed as equivalent (no behaviour
change) in experiments/mutation_equivalent.txt, one ``<mutant name>  <reason>`` a line. Exit status 0 whatever
the score (a report, not a gate); 2 when mutmut itself fails.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / ".mutation"
EQUIVALENT_FILE = REPO / "experiments" / "mutation_equivalent.txt"
COPIED = ("cgeval", "tests", "pyproject.toml", "README.md")  # the configs live in cgeval/conf


@dataclass(frozen=True)
class Module:
    name: str
    mutate: tuple[str, ...]  # mutmut only_mutate globs
    tests: tuple[str, ...]  # the test files that run against its mutants
    # "fork": each mutant's tests run in a fork of mutmut's main process, which has run the whole selection once;
    # "forkserver": forks of a process that only imported the tests, for tests that run torch (a fork of a process
    # whose torch thread pool has started can hang on a lock, and mutmut would count the hang as a killing timeout)
    isolation: str = "fork"


_NO_SUBPROCESS_RESUME_TESTS = (
    "--deselect", "tests/test_resume.py::test_sigkill_mid_run_then_resume_equals_uninterrupted",
    "--deselect", "tests/test_resume.py::test_merge_cli_exit_code",
)
MODULES = (
    Module("scoring", ("cgeval/scoring/*", "cgeval/scoring/extract/*"),
           ("tests/scoring",)),
    Module("analysis.stats", ("cgeval/analysis/stats.py",),
           ("tests/analysis/test_stats.py", "tests/analysis/test_stats_mutants.py", "tests/analysis/test_metrics.py",
            "tests/analysis/test_verdicts_and_intervals.py")),
    Module("analysis.metrics", ("cgeval/analysis/metrics.py",),
           ("tests/analysis/test_metrics.py", "tests/analysis/test_metrics_mutants.py",
            "tests/analysis/test_verdicts_and_intervals.py", "tests/analysis/test_review_fixes.py")),
    Module("analysis.table3", ("cgeval/analysis/table3.py",),
           ("tests/analysis/test_table3_mutants.py", "tests/analysis/test_verdicts_and_intervals.py",
            # the report CLI's table3 tests, not its slow figure-writing ones
            *(f"tests/analysis/test_report_cli.py::{t}" for t in (
                "test_table3_verdicts_and_holm", "test_table3_trained_not_better_says_so",
                "test_table3_mismatched_items_is_named_error", "test_table3_config_errors",
                "test_table3_target_seen_in_the_trained_run_is_na")))),
    # store: its unit tests (every run calls the store, so a surviving mutant would pay for each pipeline test in
    # test_resume, test_run_integrity and test_run_outcomes: minutes a mutant). merge: its unit tests plus the
    # resume tests, without the two that run the pipeline in a subprocess (a SIGKILL mid-run, the exit status).
    Module("store", ("cgeval/store.py",),
           ("tests/test_store_mutants.py",)),
    Module("merge", ("cgeval/merge.py",),
           ("tests/test_merge_mutants.py", "tests/test_resume.py", *_NO_SUBPROCESS_RESUME_TESTS)),
    # The subprocess (CLI) tests and the 17,000-item Fig. 4 fixture cost a minute a surviving mutant; the in-process
    # tests check the same split functions at small sizes (test_protocol_constants keeps the full-size constants).
    Module("data.splits", ("cgeval/data/splits.py",),
           ("tests/data/test_splits.py", "tests/data/test_protocol_constants.py",
            "--deselect", "tests/data/test_splits.py::test_cli_counts_a_26_option_record_and_reads_a_byte_order_mark",
            "--deselect", "tests/data/test_splits.py::test_cli_default_identity_is_content_and_path_is_warned")),
    Module("data.loader", ("cgeval/data/loader.py",),
           ("tests/data/test_loader.py", "tests/data/test_loader_mutants.py", "tests/data/test_loader_fuzz.py")),
    # the hf tests on tiny models (seconds a mutant), and its recorded settings, messages and batch plumbing
    Module("models.hf", ("cgeval/models/hf.py",),
           ("tests/models/test_hf.py", "tests/models/test_hf_mutants.py"), isolation="forkserver"),
    Module("models.vllm_backend", ("cgeval/models/vllm_backend.py",),
           ("tests/models/test_vllm_backend.py",)),
)
BY_NAME = {m.name: m for m in MODULES}
# mutmut's exit codes a mutant's test run ends with (mutmut.stats.status_by_exit_code)
KILLED_CODES = {1, 3}
TIMEOUT_CODES = {36, -24, 24, 152, 255}
SURVIVED_CODES = {0}
NO_TESTS_CODE = 33


def read_equivalent(path: Path = EQUIVALENT_FILE) -> dict[str, str]:
    """``{mutant name: reason}``; every listed mutant must say why it is equivalent."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, reason = line.partition(" ")
        if not reason.strip():
            raise SystemExit(f"{path}:{lineno}: {name} has no reason; say why the mutant changes no behaviour")
        out[name] = reason.strip()
    return out


def _toml_list(values) -> str:
    return "[" + ", ".join(json.dumps(v) for v in values) + "]"


def prepare(module: Module) -> Path:
    """The module's working copy: the project's current files, mutmut's state of earlier runs kept."""
    work = WORK / module.name
    work.mkdir(parents=True, exist_ok=True)
    for name in COPIED:
        src, dst = REPO / name, work / name
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".pytest_cache"))
        else:
            shutil.copy2(src, dst)
    config = (
        "\n[tool.mutmut]\n"
        'source_paths = ["cgeval"]\n'
        f"only_mutate = {_toml_list(module.mutate)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(module.tests)}\n"
        'pytest_add_cli_args = ["-p", "no:cacheprovider", "-q"]\n'
        'also_copy = ["README.md"]\n'
        f'process_isolation = "{module.isolation}"\n'
    )
    pyproject = work / "pyproject.toml"
    pyproject.write_text(pyproject.read_text(encoding="utf-8") + config, encoding="utf-8")
    return work


def results(work: Path) -> dict[str, int | None]:
    """``{mutant name: exit code}`` from mutmut's per-file state (``mutants/**/*.py.meta``)."""
    out: dict[str, int | None] = {}
    for meta in sorted((work / "mutants").rglob("*.meta")):
        out.update(json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {}))
    return out


def tally(codes: dict[str, int | None], equivalent: dict[str, str]) -> Counter:
    c = Counter(total=len(codes))
    for name, code in codes.items():
        if code in KILLED_CODES:
            c["killed"] += 1
        elif code in TIMEOUT_CODES:
            c["timeout"] += 1
        elif code in SURVIVED_CODES and name in equivalent:
            c["equivalent"] += 1
        elif code in SURVIVED_CODES:
            c["survived"] += 1
        elif code is None:
            c["not_checked"] += 1
        else:
            c["other"] += 1  # no tests, skipped, suspicious, segfault: not killed
    c["score_killed"] = c["killed"] + c["timeout"] + c["equivalent"]
    return c


def tests_digest(module: Module) -> str:
    """A hash of the module's test files (and the shared conftest files): what decides whether a survivor is
    still a survivor."""
    h = hashlib.sha256()
    paths: list[Path] = []
    for t in module.tests:
        if t.startswith("-"):
            continue  # a pytest option, not a test file
        p = REPO / t.split("::")[0]
        paths.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    paths.extend(sorted((REPO / "tests").rglob("conftest.py")))
    for p in paths:
        h.update(str(p.relative_to(REPO)).encode())
        h.update(p.read_bytes() if p.exists() else b"<missing>")
    return h.hexdigest()


def reset_survivors(work: Path) -> int:
    """Mark every surviving (or untested) mutant as not yet run, so mutmut tests it again with the current tests."""
    count = 0
    for meta in (work / "mutants").rglob("*.meta"):
        data = json.loads(meta.read_text(encoding="utf-8"))
        codes = data.get("exit_code_by_key", {})
        for name, code in codes.items():
            if code in SURVIVED_CODES or code == NO_TESTS_CODE:
                codes[name] = None
                count += 1
        meta.write_text(json.dumps(data, indent=4), encoding="utf-8")
    return count


def run_module(module: Module, jobs: int, fresh: bool = False) -> Path:
    if fresh:
        shutil.rmtree(WORK / module.name, ignore_errors=True)
    work = prepare(module)
    digest_file = work / ".tests-digest"
    digest = tests_digest(module)
    earlier = digest_file.read_text(encoding="utf-8") if digest_file.exists() else None
    if earlier != digest and (work / "mutants").exists():
        reset_survivors(work)  # new or changed tests: a survivor may be killed now
        # and which tests reach which function may have changed too (a test that clears a cache now reaches the
        # code behind it): mutmut runs only the tests its stats say reach a mutant's function, so collect afresh
        (work / "mutants" / "mutmut-stats.json").unlink(missing_ok=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(jobs)], cwd=work, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    (work / "mutmut.log").write_text(proc.stdout, encoding="utf-8")
    if proc.returncode != 0:
        tail = "\n".join(proc.stdout.splitlines()[-20:])
        raise RuntimeError(f"mutmut failed on {module.name} (exit {proc.returncode}); log {work / 'mutmut.log'}:\n"
                           f"{tail}")
    digest_file.write_text(digest, encoding="utf-8")
    return work


def line(name: str, c: Counter) -> str:
    score = c["score_killed"] / c["total"] if c["total"] else float("nan")
    extra = ", ".join(f"{k} {c[k]}" for k in ("killed", "timeout", "equivalent", "survived", "not_checked", "other")
                      if c[k])
    return f"{name:<22} {c['score_killed']:>5}/{c['total']:<5} = {score:.2f} killed  ({extra})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", nargs="+", choices=sorted(BY_NAME), default=[m.name for m in MODULES])
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="mutants tested at once")
    parser.add_argument("--list", action="store_true", help="print the modules and their tests, run nothing")
    parser.add_argument("--survivors", action="store_true", help="list the surviving mutants' names")
    parser.add_argument("--fresh", action="store_true", help="forget earlier runs of these modules; test every mutant")
    parser.add_argument("--report", action="store_true",
                        help="run nothing: the scores as the last runs left them (with the current equivalents file)")
    args = parser.parse_args(argv)
    if args.list:
        for m in MODULES:
            print(f"{m.name:<22} mutates {' '.join(m.mutate)}; tests {' '.join(m.tests)}")
        return 0
    equivalent = read_equivalent()
    total = Counter()
    for name in args.modules:
        module = BY_NAME[name]
        if args.report:
            work = WORK / module.name
            if not (work / "mutants").exists():
                print(f"{name:<22} never run", flush=True)
                continue
        else:
            try:
                work = run_module(module, args.jobs, fresh=args.fresh)
            except RuntimeError as e:
                print(e, file=sys.stderr)
                return 2
        codes = results(work)
        c = tally(codes, equivalent)
        total.update(c)
        print(line(name, c), flush=True)
        if args.survivors:
            for mutant, code in sorted(codes.items()):
                if code in SURVIVED_CODES and mutant not in equivalent:
                    print(f"    survived: {mutant}")
    skipped = [m.name for m in MODULES if m.name not in args.modules]
    if skipped:
        print(f"not run: {', '.join(skipped)}")
    score = total["score_killed"] / total["total"] if total["total"] else float("nan")
    print(f"mutation score: {total['score_killed']}/{total['total']} = {score:.2f} killed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
