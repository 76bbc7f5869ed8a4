"""Provenance: the manifest names cgeval's own commit only for cgeval's own checkout, never that of a repository
that merely contains an installed copy (a project's .venv)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cgeval

PACKAGE = Path(cgeval.__file__).resolve().parent

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org", *args], cwd=cwd,
                          check=True, capture_output=True, text=True).stdout.strip()


def _repo(root: Path, project_name: str) -> str:
    root.mkdir(parents=True)
    (root / "pyproject.toml").write_text(f'[project]\nname = "{project_name}"\nversion = "1.0"\n')
    _git(root, "init", "-q")
    _git(root, "add", "pyproject.toml")
    _git(root, "commit", "-q", "-m", "init")
    return _git(root, "rev-parse", "HEAD")


def _copy_package(dst: Path) -> Path:
    shutil.copytree(PACKAGE, dst / "cgeval", ignore=shutil.ignore_patterns("__pycache__", "sample_medmat"))
    return dst


def _git_state_of(site: Path) -> dict:
    """`git_state()` as the copy of cgeval under ``site`` records it, in a fresh interpreter importing that copy."""
    code = ("import json, cgeval, cgeval.manifest as m; "
            "print(json.dumps({'file': cgeval.__file__, 'git': m.git_state()}))")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    out = subprocess.run([sys.executable, "-c", code], cwd=site, env={**env, "PYTHONPATH": str(site)},
                         check=True, capture_output=True, text=True, timeout=120).stdout
    result = json.loads(out.strip().splitlines()[-1])
    assert Path(result["file"]).resolve().parent == (site / "cgeval").resolve()  # the copy, not this checkout
    return result["git"]


def test_copy_inside_another_repository_records_no_commit(tmp_path):
    other_commit = _repo(tmp_path / "project", "someone-elses-project")
    site = _copy_package(tmp_path / "project" / ".venv" / "lib" / "site-packages")
    state = _git_state_of(site)
    assert state["commit"] is None and state["dirty"] is None and state["source"] == "installed"
    assert other_commit not in json.dumps(state)


def test_a_cgeval_folder_at_the_top_of_another_project_is_not_cgevals_checkout(tmp_path):
    _repo(tmp_path / "project", "someone-elses-project")
    state = _git_state_of(_copy_package(tmp_path / "project"))
    assert state["commit"] is None and state["source"] == "installed"


def test_cgevals_own_checkout_records_its_commit(tmp_path):
    root = tmp_path / "cgeval-src"
    _repo(root, "cgeval")
    _copy_package(root)
    _git(root, "add", "cgeval")
    _git(root, "commit", "-q", "-m", "package")
    head = _git(root, "rev-parse", "HEAD")
    state = _git_state_of(root)
    assert state == {"source": "git", "commit": head, "dirty": False, "version": state["version"]}
    (root / "cgeval" / "run.py").write_text("# edited\n", encoding="utf-8")
    assert _git_state_of(root)["dirty"] is True
