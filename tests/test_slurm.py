"""SLURM for real: sweeps sent through `hydra/launcher=slurm` to a running cluster (tests marked `slurm`; start a
one-node cluster with `sudo .ci/slurm_up.sh`), and how a run takes submitit's time-out signal.

The cluster tests write under pytest's tmp dir, which a one-node cluster shares. On a real cluster point
CGEVAL_SLURM_TEST_DIR at a shared folder (and CGEVAL_SLURM_PARTITION at a partition that takes CPU jobs).
"""

import functools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cgeval.config import DataConfig, ExperimentConfig, RunConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.mock import MockModel
from cgeval.run import run
from cgeval.store import read_rows

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 120  # questions in the embedded sample
# What submitit and sacct print when the cluster keeps no job accounting (submitit polls sacct for job states).
ACCOUNTING_WARNINGS = ("accounting storage is disabled", "Bypassing sacct error")


@functools.cache
def _cluster_problem() -> str | None:
    """Why no SLURM job can run here, or None when a node is ready."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        return "no SLURM client (sinfo, sbatch) on PATH; start a one-node cluster with `sudo .ci/slurm_up.sh`"
    try:
        proc = subprocess.run(["sinfo", "-h", "-N", "-t", "idle,mix", "-o", "%N"], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer within 30 s (slurmctld down?)"
    if proc.returncode != 0:
        return f"sinfo failed: {proc.stderr.strip()[:300]}"
    if not proc.stdout.strip():
        return "no idle SLURM node (sinfo -t idle,mix lists none); start one with `sudo .ci/slurm_up.sh`"
    try:
        import hydra_plugins.hydra_submitit_launcher  # noqa: F401
    except ImportError:
        return "hydra-submitit-launcher is not installed (pip install -e '.[slurm]')"
    return None


@pytest.fixture
def slurm_dir(tmp_path):
    """A fresh sweep folder that the cluster's jobs can reach; skips where no cluster is up."""
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)
    shared = os.environ.get("CGEVAL_SLURM_TEST_DIR")
    return Path(tempfile.mkdtemp(prefix="cgeval-slurm-", dir=shared)) if shared else tmp_path / "sweep"


def _sweep(sweep_dir: Path, *overrides: str, timeout: int) -> subprocess.CompletedProcess:
    """`python -m cgeval -m ... hydra/launcher=slurm` with this interpreter (the jobs run sys.executable)."""
    cmd = [sys.executable, "-m", "cgeval", "-m", *overrides, "hydra/launcher=slurm",
           # Fits a small CPU node: slurm.yaml asks for a GPU, 8 CPUs and 64 GB.
           "hydra.launcher.gpus_per_node=0", "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=1",
           "progress=false", f"hydra.sweep.dir={sweep_dir}"]
    if os.environ.get("CGEVAL_SLURM_PARTITION"):
        cmd.append(f"hydra.launcher.partition={os.environ['CGEVAL_SLURM_PARTITION']}")
    # The jobs inherit this environment; the checkout comes first on their path, as it does here.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def _sacct_states(job_id: str) -> list[str]:
    """Every state the job went through, oldest first (-D: one row per requeue). The launcher returns once the job
    has written its result, which can be a moment before the job's end reaches the accounting store: wait for it."""
    deadline = time.monotonic() + 60
    while True:
        proc = subprocess.run(["sacct", "-n", "-X", "-D", "-P", "-o", "State", "-j", job_id], capture_output=True,
                              text=True, timeout=60, check=True)
        states = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
        if (states and states[-1] not in ("PENDING", "RUNNING", "COMPLETING")) or time.monotonic() > deadline:
            return states
        time.sleep(1)


def _check_run(run_dir: Path) -> dict:
    """A finished run: complete manifest, every question answered exactly once, report written."""
    m = json.loads((run_dir / "manifest.json").read_text())
    assert m["status"] == "complete", m["status"]
    rows, bad = read_rows(run_dir / "predictions.jsonl")
    ids = [r["item_id"] for r in rows]
    assert bad == 0 and len(ids) == N_ITEMS and len(set(ids)) == N_ITEMS
    assert (run_dir / "metrics.json").is_file() and (run_dir / "table.md").is_file()
    # The job ran this interpreter (the venv's), inside SLURM.
    assert m["environment"]["executable"] == sys.executable
    assert m["environment"]["slurm_job_id"]
    return m


@pytest.mark.slurm
def test_sweep_runs_as_slurm_jobs(slurm_dir):
    proc = _sweep(slurm_dir, "model=random,prior", timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    runs = sorted(p.parent for p in slurm_dir.glob("*/manifest.json"))
    assert [r.name for r in runs] == ["0_model=random", "1_model=prior"], out[-2000:]
    manifests = [_check_run(r) for r in runs]
    assert [m["model"]["name"] for m in manifests] == ["random", "prior"]
    job_ids = {m["environment"]["slurm_job_id"] for m in manifests}
    assert len(job_ids) == 2
    for job in job_ids:
        assert _sacct_states(job) == ["COMPLETED"]
    for warning in ACCOUNTING_WARNINGS:
        assert warning not in out


@pytest.mark.slurm
def test_timed_out_job_is_requeued_and_resumes_from_its_predictions(slurm_dir):
    """A job longer than its time limit: SLURM's warning signal reaches submitit, which requeues the job into the
    same run folder; the next attempt reuses what the first wrote and finishes the rest.

    The limit is 2 minutes with the signal 30 s before it, not 1 minute: SLURM may send the signal up to a minute
    early (sbatch --signal), and with a 1-minute limit it reached a requeued job 0.4 s after it started, before
    Python had installed submitit's handler, which killed the job (FAILED, not requeued). Here it arrives 60-90 s
    in, so the job's 96 s of answers (30 batches of 3.2 s) cannot finish in the first attempt."""
    proc = _sweep(slurm_dir, "model=mock", "model.delay_s=3.2", "batch_size=4",
                  "hydra.launcher.timeout_min=2", "hydra.launcher.signal_delay_s=30", timeout=1500)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    (run_dir,) = [p.parent for p in slurm_dir.glob("*/manifest.json")]
    m = _check_run(run_dir)
    job = m["environment"]["slurm_job_id"]
    states = _sacct_states(job)
    assert states[-1] == "COMPLETED" and states.count("REQUEUED") >= 1, states
    assert states.count("REQUEUED") == len(states) - 1, states  # every earlier attempt ended in a requeue

    # One log line per attempt (the run's log is appended to): the first started from nothing, every later one
    # took up the rows the ones before it had written, and the last one's count is the manifest's.
    log = (run_dir / "__main__.log").read_text()
    reused = [int(n) for n in re.findall(rf"(\d+) of {N_ITEMS} answers reused", log)]
    assert len(reused) == len(states), log
    assert reused[0] == 0 and all(a < b for a, b in zip(reused, reused[1:])), reused
    assert 0 < m["resume"]["reused"] == reused[-1] < N_ITEMS
    assert m["resume"]["reused"] + m["resume"]["to_score"] == N_ITEMS and m["resume"]["stale_rows"] == 0
    submitit_log = "".join(p.read_text() for p in slurm_dir.glob(f".submitit/{job}*/*_log.out"))
    assert "Requeued job" in submitit_log
    for warning in ACCOUNTING_WARNINGS:
        assert warning not in out


def test_submitit_time_out_signal_stops_the_run_and_keeps_finished_batches(tmp_path):
    """When SLURM's warning signal comes and no requeue is left, submitit's handler raises in whatever code runs,
    usually the model's call. That ends the job: it must not be taken for the batch's failure (which would ask the
    batch again item by item, or record an item as failed)."""
    utils = pytest.importorskip("submitit.core.utils")

    def handler(signum, frame):  # what submitit's handler does after "timed-out too many times"
        raise utils.UncompletedJobError("Job not requeued because: timed-out too many times.")

    class SignalledInThirdBatch(MockModel):
        def __init__(self):
            super().__init__(reply="gold")
            self.asked: list[str] = []

        def generate(self, batch):
            self.asked.extend(it.item_id for it in batch)
            if len(self.asked) == 24:
                os.kill(os.getpid(), signal.SIGUSR2)
            return super().generate(batch)

    cfg = RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), progress=False, batch_size=8, output_dir=str(tmp_path),
                    experiment=ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}]))
    model = SignalledInThirdBatch()
    previous = signal.signal(signal.SIGUSR2, handler)
    try:
        with pytest.raises(utils.UncompletedJobError):
            run(cfg, model)
    finally:
        signal.signal(signal.SIGUSR2, previous)
    assert len(model.asked) == 24  # nothing asked again
    rows, _ = read_rows(tmp_path / "predictions.jsonl")
    assert len(rows) == 16 and not (tmp_path / "errors.jsonl").exists()

    run(cfg, MockModel(reply="gold"))  # the requeued job
    m = json.loads((tmp_path / "manifest.json").read_text())
    assert m["status"] == "complete" and m["resume"]["reused"] == 16 and m["n_predictions"] == N_ITEMS
