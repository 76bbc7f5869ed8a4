"""The wheel holds everything an installed cgeval needs (configs, embedded sample, licence, the `cgeval` command),
and cgeval installed from it runs from a folder outside the source tree. (.ci/run also installs the wheel with
its dependencies into a fresh environment and runs the README's demo there.)"""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "cgeval"


def _setuptools_recent() -> bool:
    try:
        return int(metadata.version("setuptools").split(".")[0]) >= 77
    except metadata.PackageNotFoundError:
        return False


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a clean copy of the project (no stale build/ folder can leak into it)."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(PACKAGE, src / "cgeval", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)]
    if _setuptools_recent():
        cmd.insert(5, "--no-build-isolation")  # no download when this environment can build it
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = (tmp / "dist").glob("cgeval-*.whl")
    return whl


def _tracked(folder: Path) -> set[str]:
    return {p.relative_to(REPO).as_posix() for p in folder.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


def test_wheel_holds_configs_sample_licence_and_the_command(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        entry_points = z.read(f"{dist_info}/entry_points.txt").decode()
        meta = z.read(f"{dist_info}/METADATA").decode()
    confs = {n for n in _tracked(PACKAGE / "conf") if n.endswith(".yaml")}
    assert {"cgeval/conf/config.yaml", "cgeval/conf/split.yaml", "cgeval/conf/hydra/launcher/slurm.yaml",
            "cgeval/conf/experiment/table3_candidates/area_03_from_04_28.yaml"} <= confs
    assert confs <= names, sorted(confs - names)[:10]
    sample = _tracked(PACKAGE / "data" / "sample_medmat")
    assert len(sample) > 100 and sample <= names, sorted(sample - names)[:10]
    assert f"{dist_info}/licenses/LICENSE" in names and "License-Expression: Apache-2.0" in meta
    assert "[console_scripts]" in entry_points and "cgeval = cgeval.cli:main" in entry_points


def test_installed_wheel_runs_from_outside_the_tree(wheel, tmp_path):
    """cgeval's code, configs and sample taken from the installed wheel alone (its dependencies from this
    environment): the bare command evaluates, a subcommand resolves, python -m keeps working."""
    site = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                           str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    script = site / "bin" / "cgeval"
    assert script.is_file()
    run = subprocess.run([sys.executable, str(script), "experiment=holdout_ct_lung", "model=prior",
                          "progress=false"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    (out,) = list((work / "results" / "holdout_ct_lung" / "prior").iterdir())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["data"]["n_items"] == 120
    assert manifest["data"]["root"].startswith(str(site))  # the sample shipped in the wheel
    assert manifest["environment"]["git"]["source"] == "installed"  # not this checkout's commit
    report = subprocess.run([sys.executable, str(script), "report", str(out), "--bootstrap", "10"], cwd=work,
                            env=env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and (out / "report" / "summary.md").is_file(), report.stderr[-3000:]
    split = subprocess.run([sys.executable, "-m", "cgeval.split", "experiment=fig4_target03", "split=sample",
                            "split.out=split"], cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert split.returncode == 0 and (work / "split" / "manifest.json").is_file(), split.stderr[-3000:]


def test_no_tracked_file_is_ignored():
    """.gitignore never matches a file the project ships (configs, sample, results/README.md)."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    proc = subprocess.run(["git", "ls-files", "--cached", "--ignored", "--exclude-standard"], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == []
