"""How a run ends, as files and exit codes tell it: exit codes, the manifest's status, the run-folder lock,
file modes, the run log and the outputs line."""

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cgeval.config import ShardConfig
from cgeval.models.baselines import PriorBaseline
from cgeval.models.mock import MockModel
from cgeval.run import EXIT_ERROR, EXIT_INCOMPLETE, EXIT_OK, exit_code, run
from cgeval.store import LOCK_NAME, RunFolderLocked, locked_run_folder

from .test_resume import EXP, _cfg, _manifest

REPO = Path(__file__).resolve().parents[1]


def _cli(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "cgeval", "progress=false", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout, **kw)


# ------------------------------------------------------------------ exit codes and the manifest's status


def test_exit_code_of_statuses():
    assert exit_code(["complete", "complete"]) == EXIT_OK == 0
    assert exit_code(["complete", "incomplete"]) == EXIT_INCOMPLETE == 3
    assert exit_code(["incomplete", "failed"]) == exit_code(["running"]) == exit_code([None]) == EXIT_ERROR == 1
    assert exit_code([]) == EXIT_OK  # --help, --cfg job: nothing ran


def test_an_incomplete_run_exits_3_and_its_log_holds_the_summary(tmp_path):
    out = tmp_path / "incomplete"
    proc = _cli("model=mock", "+model.fail_on=[S03-2,S22-7]", f"hydra.run.dir={out}")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert _manifest(out)["status"] == "incomplete"
    assert "2 items failed at inference" in proc.stdout
    # The run's log (Hydra's <job>.log) holds the summary too, once, and the console has it once.
    log = (out / "__main__.log").read_text()
    assert "2 items failed at inference" in log and "seen - unseen gap" in log
    assert log.count("seen - unseen gap") == 1 and proc.stdout.count("seen - unseen gap") == 1


def test_a_run_that_stops_on_an_error_exits_1_and_says_failed(tmp_path):
    items = tmp_path / "one.jsonl"
    items.write_text(json.dumps({"item_id": "S03-2"}) + "\n")
    out = tmp_path / "failed"
    proc = _cli("model=mock", "+model.fail_on=[S03-2]", f"data.items_file={items}", f"hydra.run.dir={out}")
    assert proc.returncode == 1
    m = _manifest(out)
    assert m["status"] == "failed" and "every item failed" in m["error"]
    assert m["inference_errors"]["n"] == 1 and (out / "errors.jsonl").is_file()


class _StopsMidRun(MockModel):
    """Answers the first batches, then raises what a crash or Ctrl-C would."""

    def __init__(self, exc, after=2):
        super().__init__(reply="gold")
        self.exc, self.after, self.batches = exc, after, 0

    def generate(self, batch):
        self.batches += 1
        if self.batches > self.after:
            raise self.exc
        return super().generate(batch)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), SystemExit(143)])
def test_a_run_stopped_mid_way_says_failed_and_keeps_its_predictions(tmp_path, exc):
    """Not "running" forever: whatever stopped the run is named, and what was flushed stays for the resume."""
    with pytest.raises(type(exc)):
        run(_cfg(tmp_path), _StopsMidRun(exc))
    m = _manifest(tmp_path)
    assert m["status"] == "failed" and m["error"].startswith(type(exc).__name__)
    assert len((tmp_path / "predictions.jsonl").read_text().splitlines()) == 16
    run(_cfg(tmp_path), MockModel(reply="gold"))
    m = _manifest(tmp_path)
    assert m["status"] == "complete" and m["resume"]["reused"] == 16 and "error" not in m


def test_a_backend_that_is_gone_stops_the_run_instead_of_failing_every_item(tmp_path):
    from cgeval.models.base import BackendUnavailable

    model = _StopsMidRun(BackendUnavailable("the server at http://127.0.0.1:9/v1 stopped answering"), after=1)
    with pytest.raises(BackendUnavailable):
        run(_cfg(tmp_path), model)
    assert model.batches == 2  # not retried item by item
    m = _manifest(tmp_path)
    assert m["status"] == "failed" and "http://127.0.0.1:9/v1" in m["error"]
    assert m["inference_errors"]["n"] == 0


def test_complete_is_written_only_after_the_report(tmp_path, monkeypatch):
    """A run killed while writing its tables and figures must not say complete."""
    import cgeval.run as run_module

    seen = []
    real = run_module.write_report

    def report(out, **kw):
        seen.append(_manifest(out)["status"])
        return real(out, **kw)

    monkeypatch.setattr(run_module, "write_report", report)
    run(_cfg(tmp_path), PriorBaseline(seed=0))
    assert seen == ["running"] and _manifest(tmp_path)["status"] == "complete"

    def broken(out, **kw):
        raise OSError("disk full")

    monkeypatch.setattr(run_module, "write_report", broken)
    with pytest.raises(OSError):
        run(_cfg(tmp_path / "again"), PriorBaseline(seed=0))
    assert _manifest(tmp_path / "again")["status"] == "failed"


# ------------------------------------------------------------------ file modes


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664)])
def test_outputs_are_readable_as_the_umask_allows(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        run(_cfg(tmp_path), PriorBaseline(seed=0))
    finally:
        os.umask(old)
    files = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != LOCK_NAME]
    assert {p.name for p in files} >= {"predictions.jsonl", "manifest.json", "metrics.json", "table.csv"}
    wrong = {p.name: oct(stat.S_IMODE(p.stat().st_mode)) for p in files if stat.S_IMODE(p.stat().st_mode) != mode}
    assert not wrong
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


# ------------------------------------------------------------------ the run-folder lock


def test_a_second_run_into_a_busy_folder_stops_with_a_named_error(tmp_path):
    """Two commands into one folder at once: the second stops at once and touches nothing; the first finishes
    with its own predictions, manifest and table."""
    out = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "cgeval", "model=mock", "model.reply=first", "model.delay_s=0.1",
                              "batch_size=4", "progress=false", f"hydra.run.dir={out}"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "predictions.jsonl").exists():  # the lock is taken before anything is written
        assert first.poll() is None and time.time() < deadline, first.communicate()[1][-2000:]
        time.sleep(0.05)
    second = _cli("model=prior", f"hydra.run.dir={out}")
    assert first.poll() is None, "the first run ended before the second started; make it slower"
    assert second.returncode == 1
    assert "RunFolderLocked" in second.stderr and str(out) in second.stderr and f"pid {first.pid}" in second.stderr
    stdout, stderr = first.communicate(timeout=240)
    assert first.returncode == 0, stderr[-2000:]
    m = _manifest(out)
    assert m["status"] == "complete" and m["model"]["name"] == "mock"
    assert "# holdout_ct_lung / mock / generate" in (out / "table.md").read_text()
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and {r["response"] for r in rows} <= set("ABCD")


def test_shards_share_a_folder_but_a_shard_runs_once(tmp_path):
    a, b = ShardConfig(index=0, count=2), ShardConfig(index=1, count=2)
    with locked_run_folder(tmp_path, a), locked_run_folder(tmp_path, b):  # two shards side by side
        with pytest.raises(RunFolderLocked, match="shard 0 of 2"):
            run(_cfg(tmp_path, shard=a), MockModel())
        with pytest.raises(RunFolderLocked, match="run folder"):
            run(_cfg(tmp_path), MockModel())
    with locked_run_folder(tmp_path, ShardConfig()):
        with pytest.raises(RunFolderLocked, match=f"pid {os.getpid()}"):
            run(_cfg(tmp_path, shard=b), MockModel())
    assert not (tmp_path / "manifest.json").exists() and not list(tmp_path.glob("manifest.shard-*"))
    run(_cfg(tmp_path, shard=a), MockModel())  # released: it runs
    assert _manifest(tmp_path, "manifest.shard-000-of-002.json")["status"] == "complete"


def test_the_lock_of_a_killed_process_does_not_block_the_resume(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from cgeval.config import ShardConfig\n"
        "from cgeval.store import locked_run_folder\n"
        f"with locked_run_folder({str(tmp_path)!r}, ShardConfig()):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(600)\n")], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunFolderLocked):
            run(_cfg(tmp_path), MockModel())
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (tmp_path / LOCK_NAME).read_text().startswith(f"pid {holder.pid}")  # left behind by the kill
    run(_cfg(tmp_path), MockModel())
    assert _manifest(tmp_path)["status"] == "complete"


# ------------------------------------------------------------------ the summary's outputs line


def test_the_outputs_line_names_every_file_of_the_run(tmp_path):
    out = tmp_path / "named"
    proc = _cli("model=mock", "+model.fail_on=[S03-2]", f"hydra.run.dir={out}")
    assert proc.returncode == 3, proc.stderr[-2000:]
    [line] = [l for l in proc.stdout.splitlines() if l.startswith("outputs in ")]
    folder, names = line[len("outputs in "):].split(": ", 1)
    assert Path(folder) == out
    named = set()
    for token in names.split():
        head, *more = token.split("/.")
        named.add(head)
        stem = head.rsplit(".", 1)[0]
        named.update(f"{stem}.{ext}" for ext in more)
    on_disk = {p.relative_to(out).as_posix() for p in out.rglob("*")
               if p.is_file() and not p.name.startswith(".") and ".hydra" not in p.parts}
    assert on_disk <= named and ".hydra/" in named
    assert {"errors.jsonl", "__main__.log", "compositions.tex", "figures/forest_seen_unseen.pdf"} <= on_disk
    assert len(on_disk) >= 20
    assert not re.search(r"FigureLayoutWarning", proc.stderr)


def test_merge_waits_for_no_shard_and_writes_complete_last(tmp_path, monkeypatch):
    from cgeval.merge import main as merge_main
    from cgeval.merge import merge_shards

    shards = [ShardConfig(index=i, count=2) for i in range(2)]
    for shard in shards:
        run(_cfg(tmp_path, shard=shard), MockModel())
    with locked_run_folder(tmp_path, shards[1]):  # a shard still running (re-run, say)
        with pytest.raises(RunFolderLocked):
            merge_shards(tmp_path)
        assert merge_main([str(tmp_path)]) == 2
    import cgeval.merge as merge_module

    seen = []
    real = merge_module.write_report
    monkeypatch.setattr(merge_module, "write_report",
                        lambda out, **kw: seen.append(_manifest(out)["status"]) or real(out, **kw))
    merge_shards(tmp_path)
    assert seen == ["running"] and _manifest(tmp_path)["status"] == "complete"
