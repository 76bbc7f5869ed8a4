"""A hub model id with no reachable hub fails in seconds, naming model.path and HF_HUB_OFFLINE=1 (not after
minutes of huggingface_hub's retries)."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def closed_endpoint():
    """An http endpoint on loopback that refuses connections: a port bound but not listening, held for the test."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{s.getsockname()[1]}"
    s.close()


def _env(tmp_path: Path, endpoint: str, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_CACHE")}
    return {**env, "HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path / "hf"), "PYTHONPATH": str(REPO), **extra}


def _probe(tmp_path: Path, env: dict, model_id: str = "Qwen/Qwen2-VL-7B-Instruct") -> subprocess.CompletedProcess:
    code = ("import sys; from cgeval.models.hub import ensure_hub_reachable; "
            f"ensure_hub_reachable('qwen', {model_id!r}); print('no error')")
    return subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)


def test_unreachable_hub_fails_fast_with_the_ways_out(tmp_path, closed_endpoint):
    out = tmp_path / "results" / "run"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "cgeval", "experiment=holdout_ct_lung", "model=qwen2_vl_7b", f"hydra.run.dir={out}",
         "progress=false"],
        cwd=tmp_path, env=_env(tmp_path, closed_endpoint), capture_output=True, text=True, timeout=150,
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 1, proc.stderr[-3000:]  # a run stopped on an error (cgeval.run.EXIT_ERROR)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cgeval: ModelLoadError: model 'qwen2_vl_7b': hub id Qwen/Qwen2-VL-7B-Instruct")
    assert closed_endpoint in lines[-1] and "model.path=" in lines[-1] and "HF_HUB_OFFLINE=1" in lines[-1]
    assert "Traceback" not in proc.stderr and "Retrying" not in proc.stderr
    assert elapsed < 60, f"took {elapsed:.0f} s"  # a hang guard only: hub retries took minutes
    assert not out.exists() and not (tmp_path / "results").exists()  # stopped before inference: no result folder


def test_a_cached_model_is_pointed_at_offline_mode(tmp_path, closed_endpoint):
    snap = tmp_path / "hf" / "hub" / "models--Qwen--Qwen2-VL-7B-Instruct"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("0" * 40)
    (snap / "snapshots" / ("0" * 40)).mkdir(parents=True)
    (snap / "snapshots" / ("0" * 40) / "config.json").write_text("{}")
    proc = _probe(tmp_path, _env(tmp_path, closed_endpoint))
    assert proc.returncode != 0 and "ModelLoadError" in proc.stderr
    assert "It is in the local Hugging Face cache: set HF_HUB_OFFLINE=1" in proc.stderr


def test_offline_mode_and_local_folders_ask_nothing(tmp_path, closed_endpoint):
    offline = _probe(tmp_path, _env(tmp_path, closed_endpoint, HF_HUB_OFFLINE="1"))
    assert offline.returncode == 0 and "no error" in offline.stdout, offline.stderr
    (tmp_path / "weights").mkdir()
    local = _probe(tmp_path, _env(tmp_path, closed_endpoint), model_id=str(tmp_path / "weights"))
    assert local.returncode == 0 and "no error" in local.stdout, local.stderr


def test_a_reachable_endpoint_passes(tmp_path):
    """Any HTTP answer counts as reachable (the load itself then reports a missing model)."""
    import http.server
    import threading

    class Quiet(http.server.BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        proc = _probe(tmp_path, _env(tmp_path, f"http://127.0.0.1:{server.server_address[1]}"))
    finally:
        server.shutdown()
    assert proc.returncode == 0 and "no error" in proc.stdout, proc.stderr
