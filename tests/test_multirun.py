"""Sweeps: Hydra multirun with the basic launcher and with submitit's local launcher (the SLURM one's twin)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("launcher", [None, "local"])
def test_multirun_sweep_writes_one_run_per_job(tmp_path, launcher):
    cmd = [sys.executable, "-m", "cgeval", "-m", "model=random,prior", "experiment=holdout_ct_lung,holdout_ct_lung_covid",
           "progress=false", f"hydra.sweep.dir={tmp_path}"]
    if launcher:
        cmd.append(f"hydra/launcher={launcher}")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent for p in tmp_path.glob("*/metrics.json"))
    assert len(runs) == 4, proc.stdout[-2000:]
    seen = set()
    for r in runs:
        m = json.loads((r / "manifest.json").read_text())
        assert m["status"] == "complete"
        seen.add((m["model"]["name"], m["experiment"]["name"]))
    assert seen == {(a, b) for a in ("random", "prior") for b in ("holdout_ct_lung", "holdout_ct_lung_covid")}
