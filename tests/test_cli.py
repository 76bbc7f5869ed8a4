"""The command line as a user meets it: the `cgeval` dispatcher and every entry point print a named error as one
line (no traceback unless HYDRA_FULL_ERROR=1; exit status 1 for a run, 2 for report, merge, candidates), and a run
that stops before inference leaves no folder behind."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from cgeval.cli import SUBCOMMANDS
from cgeval.config import ShardConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.errors import remove_unstarted_run
from cgeval.run import EXIT_ERROR
from cgeval.store import LOCK_NAME, locked_run_folder

REPO = Path(__file__).resolve().parents[1]


def cgeval(*args: str, cwd: Path, module: str = "cgeval.cli", **env: str) -> subprocess.CompletedProcess:
    """Run ``python -m <module> args`` from ``cwd`` (outside the source tree) on this checkout's cgeval."""
    base = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env={**base, "PYTHONPATH": str(REPO), **env})


def one_line_error(proc: subprocess.CompletedProcess, prefix: str, status: int = EXIT_ERROR) -> str:
    """The one line a named error prints; an evaluation or split exits 1 (a run stopped on an error), the
    argparse entries 2."""
    assert proc.returncode == status, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(prefix), proc.stderr[-3000:]
    return lines[0]


def test_subcommands_dispatch_to_their_modules(tmp_path):
    assert set(SUBCOMMANDS) == {"report", "split", "merge", "candidates"}
    for name, module in SUBCOMMANDS.items():
        proc = cgeval(name, "--help", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr[-2000:]
        same = cgeval("--help", cwd=tmp_path, module=module)  # the python -m form says the same
        assert same.returncode == 0, name
        if name != "split":  # argparse: the usage line names the form it was started as
            assert f"usage: cgeval {name} " in proc.stdout and f"usage: python -m {module} " in same.stdout
            options = lambda text: sorted(w for w in text.split() if w.startswith("--"))  # noqa: E731
            assert options(same.stdout) == options(proc.stdout), name
        else:  # Hydra: the same help either way
            assert same.stdout == proc.stdout
    bare = cgeval("--help", cwd=tmp_path)
    assert bare.returncode == 0 and "cgeval report" in bare.stdout and "experiment:" in bare.stdout


def test_bare_command_runs_an_evaluation_from_outside_the_tree(tmp_path):
    proc = cgeval("experiment=holdout_ct_lung", "model=prior", "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (run,) = list((tmp_path / "results" / "holdout_ct_lung" / "prior").iterdir())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["data"]["n_items"] == 120
    assert manifest["environment"]["git"]["version"]


def test_the_bare_command_exits_with_the_runs_code(tmp_path):
    """Exit 3 for a run with items that failed at inference (status incomplete), as `python -m cgeval`."""
    proc = cgeval("model=mock", "+model.fail_on=[S03-2]", f"hydra.run.dir={tmp_path / 'run'}", "progress=false",
                  cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["status"] == "incomplete"


def test_evaluation_named_errors_are_one_line_and_leave_no_run_folder(tmp_path):
    line = one_line_error(cgeval("data.root=/nonexistent/medmat", "model=prior", cwd=tmp_path), "cgeval: ")
    assert "DataRootNotFound" in line and "/nonexistent/medmat" in line
    bad = tmp_path / "bad"
    shutil.copytree(SAMPLE_ROOT, bad)
    (bad / "Aggregated_Subsets" / "Subset--02-train.json").write_text("[{")
    line = one_line_error(cgeval(f"data.root={bad}", "model=prior", cwd=tmp_path), "cgeval: MedMatFormatError")
    line = one_line_error(cgeval("experiment.heldout.0.area=Lungs", cwd=tmp_path), "cgeval: UnknownMATValue")
    line = one_line_error(cgeval("model=random", "scoring.mode=guess", cwd=tmp_path), "cgeval: ConfigError")
    assert not (tmp_path / "results").exists()  # every one stopped before inference: no folder looks like a run
    full = cgeval("data.root=/nonexistent/medmat", "model=prior", cwd=tmp_path, HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr and "DataRootNotFound" in full.stderr
    assert not (tmp_path / "results").exists()


def test_a_failed_resume_keeps_the_earlier_run(tmp_path):
    out = tmp_path / "run"
    assert cgeval("model=random", f"hydra.run.dir={out}", "progress=false", cwd=tmp_path).returncode == 0
    before = sorted(p.name for p in out.iterdir())
    one_line_error(cgeval("model=random", f"hydra.run.dir={out}", "data.root=/nonexistent", cwd=tmp_path),
                   "cgeval: DataRootNotFound")
    assert sorted(p.name for p in out.iterdir()) == before


def test_only_source_datasets_under_the_root(tmp_path):
    root = tmp_path / "medmat"
    shutil.copytree(SAMPLE_ROOT, root)
    shutil.rmtree(root / "Aggregated_Subsets")
    line = one_line_error(cgeval(f"data.root={root}", "data.source=subsets", "model=prior", cwd=tmp_path),
                          "cgeval: NoQAFilesFound")
    assert "data.source=datasets" in line
    out = tmp_path / "run"
    proc = cgeval(f"data.root={root}", "model=prior", f"hydra.run.dir={out}", "progress=false", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["load_report"]["source"] == "datasets" and manifest["data"]["n_items"] == 120


@pytest.mark.parametrize("module", ["cgeval.cli", "cgeval.split"])
def test_split_named_error_leaves_no_output_folder(tmp_path, module):
    out = tmp_path / "split"
    args = ["experiment=fig4_target03", "data.root=/nonexistent", f"split.out={out}"]
    proc = cgeval(*(["split"] if module == "cgeval.cli" else []), *args, cwd=tmp_path, module=module)
    assert "DataRootNotFound" in one_line_error(proc, "cgeval.split: ")
    assert not out.exists()


@pytest.mark.parametrize("form", ["cgeval", "python -m"])
def test_argparse_entries_named_errors(tmp_path, form):
    def call(sub, *args):
        return cgeval(sub, *args, cwd=tmp_path) if form == "cgeval" else \
            cgeval(*args, cwd=tmp_path, module=SUBCOMMANDS[sub])

    one_line_error(call("merge", str(tmp_path / "nowhere")), "cgeval.merge: MergeError", 2)
    (tmp_path / "empty_run").mkdir()
    assert "predictions" in one_line_error(call("report", str(tmp_path / "empty_run")), "cgeval.report: error: ", 2)
    one_line_error(call("candidates", "--data-root", str(tmp_path / "nowhere")),
                   "cgeval.split_candidates: CandidatesError", 2)
    full = cgeval("merge", str(tmp_path / "nowhere"), cwd=tmp_path, HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr and "MergeError" in full.stderr


def test_a_sweep_runs_its_other_jobs_and_fails_at_the_end(tmp_path):
    proc = cgeval("-m", "model=random", f"data.root={SAMPLE_ROOT},/nonexistent", "progress=false",
                  f"hydra.sweep.dir={tmp_path / 'sweep'}", cwd=tmp_path)
    assert proc.returncode != 0
    assert "cgeval: DataRootNotFound: data.root /nonexistent" in proc.stderr
    assert len(list((tmp_path / "sweep").glob("*/metrics.json"))) == 1
    assert len([p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]) == 1  # the failed job left no folder


def _unstarted(root: Path) -> Path:
    """What a run that stopped before writing anything leaves: Hydra's files and its released lock."""
    out = root / "results" / "exp" / "model" / "2026-01-01_00-00-00"
    (out / ".hydra").mkdir(parents=True)
    (out / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (out / "__main__.log").write_text("")
    with locked_run_folder(out, ShardConfig()):
        pass
    assert (out / LOCK_NAME).is_file()
    return out


def test_an_unstarted_run_folder_is_removed_with_its_empty_parents(tmp_path):
    (tmp_path / "results" / "other").mkdir(parents=True)  # not empty after the removal: kept
    out = _unstarted(tmp_path)
    assert remove_unstarted_run(out, stop_at=tmp_path)
    assert not out.exists() and not (tmp_path / "results" / "exp").exists() and (tmp_path / "results").is_dir()


def test_a_folder_with_results_or_a_held_lock_is_kept(tmp_path):
    out = _unstarted(tmp_path)
    (out / "manifest.json").write_text("{}")
    assert not remove_unstarted_run(out, stop_at=tmp_path) and (out / "manifest.json").is_file()
    (out / "manifest.json").unlink()
    with locked_run_folder(out, ShardConfig()):  # a run starting there holds its lock
        assert not remove_unstarted_run(out, stop_at=tmp_path) and out.is_dir()
    assert remove_unstarted_run(out, stop_at=tmp_path)
