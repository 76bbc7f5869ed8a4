"""The OpenAI back end against a real vLLM OpenAI server (``python -m vllm.entrypoints.openai.api_server``, the
server ``vllm serve`` starts) on loopback, on the CPU engine, serving the tiny LLaVA-1.5 replica under the hub
name a user's server would give it.

One server is started for the module (about a minute on a CPU) and killed, with its engine process, at the end.
The runs go through the command users type (``python -m cgeval model=llava_v1_5_7b model.backend=openai
+model.openai.base_url=...``) and are compared with ``model.tiny=true`` on the hf back end, the same weights in
process: every option letter of every item scored, the same letter log-probabilities and the same greedy replies.
Like the engine tests these run wherever vllm is installed (``.ci/vllm_tests.sh``) and skip, with the reason,
elsewhere; with ``CGEVAL_REQUIRE_VLLM=1`` they fail instead.
"""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import VLLM_ENGINE_MARKS

pytestmark = VLLM_ENGINE_MARKS

REPO = Path(__file__).resolve().parents[2]
MODEL = "llava_v1_5_7b"  # the cheapest replica with an image tower; its template relies on the tokenizer's BOS
SERVED = "llava-hf/llava-1.5-7b-hf"  # the name `vllm serve llava-hf/llava-1.5-7b-hf` serves it under
READY_TIMEOUT_S = 600  # a CPU server starts in about a minute on an idle machine; much longer on a busy one
# Both sides run the same float32 weights on the same tokens and pixels (the image travels as a lossless PNG);
# measured differences are below 1e-6. A prompt without its BOS moves them by about 3.5e-3, a lossy image or
# another resize by more: 1e-4 tells them apart.
SCORE_TOL = 1e-4
RUN = ["progress=false", "data.max_items_per_file=2"]  # as test_vllm_engine._compose


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The environment of the server and of every cgeval process: the replica's cache, offline, a small KV cache."""
    base = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    return {**base, "CGEVAL_TINY_CACHE": str(tmp_path_factory.mktemp("replicas_server")), "HF_HUB_OFFLINE": "1",
            "VLLM_CPU_KVCACHE_SPACE": os.environ.get("VLLM_CPU_KVCACHE_SPACE", "1"),
            "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}


@pytest.fixture(scope="module")
def replica(env) -> Path:
    from cgeval.models.tiny import ensure_replica

    return ensure_replica(SERVED, env["CGEVAL_TINY_CACHE"])


@pytest.fixture(scope="module")
def server(replica, env, tmp_path_factory):
    """A real vLLM OpenAI server on a free loopback port; its base URL. Killed (with its engine) at the end."""
    port = _free_port()
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    cmd = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(replica),
           "--served-model-name", SERVED, "--host", "127.0.0.1", "--port", str(port), "--dtype", "float32",
           "--enforce-eager", "--max-model-len", "4096", "--generation-config", "vllm"]
    import httpx

    with open(log_path, "w") as log:
        # A session of its own, so that the teardown ends the engine process the server starts too.
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.monotonic()
        while True:
            if proc.poll() is not None:
                pytest.fail(f"vllm server exited with {proc.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                if httpx.get(f"{url}/v1/models", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() - started > READY_TIMEOUT_S:
                pytest.fail(f"vllm server not ready after {READY_TIMEOUT_S} s:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        print(f"vllm server ready after {time.monotonic() - started:.0f} s")
        yield f"{url}/v1"
    finally:
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 30)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(timeout=wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _cgeval(out: Path, env: dict[str, str], *overrides: str) -> tuple[dict[str, dict], dict, str]:
    """``python -m cgeval`` into ``out``: its predictions by item, its manifest and its console output."""
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cgeval", f"model={MODEL}", *RUN, f"hydra.run.dir={out}",
                           *overrides], cwd=out.parent, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])
    print(f"cgeval {' '.join(overrides)}: {time.monotonic() - started:.1f} s")
    rows = {r["item_id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
    return rows, json.loads((out / "manifest.json").read_text()), proc.stdout + proc.stderr


def _through(server: str) -> list[str]:
    return ["model.backend=openai", f"+model.openai.base_url={server}", "+model.openai.api_key_env=null"]


@pytest.fixture(scope="module")
def hf_runs(replica, env, tmp_path_factory) -> dict[str, dict[str, dict]]:
    """The same replica on the hf back end, in this process (one load for both scorings), through the same
    config and run path: ``{scoring: predictions by item}``."""
    from hydra.utils import instantiate

    from cgeval.config import run_config_from_hydra
    from cgeval.run import run

    from .conftest import replica_env
    from .test_vllm_engine import _compose

    root, out = tmp_path_factory.mktemp("hf_runs"), {}
    with replica_env(env["CGEVAL_TINY_CACHE"]):
        adapter = instantiate(_compose(MODEL).model)
        for scoring in ("likelihood", "generate"):
            run(run_config_from_hydra(_compose(MODEL, f"scoring={scoring}"), str(root / scoring)), adapter, None)
            lines = (root / scoring / "predictions.jsonl").read_text().splitlines()
            out[scoring] = {r["item_id"]: r for r in map(json.loads, lines)}
    return out


def test_preflight_against_the_real_server(server, replica):
    from transformers import AutoTokenizer

    from cgeval.models.hf import letter_token_ids
    from cgeval.models.openai_api import OpenAIAdapter, ServerRejected

    m = OpenAIAdapter(name="srv", model_id=SERVED, base_url=server, api_key_env=None)
    m.preflight("likelihood")
    assert m.server["model"]["id"] == SERVED and m.server["model"]["max_model_len"] == 4096
    # The letters' ids from the server's /tokenize are the hf back end's, for the same tokenizer.
    tokenizer = AutoTokenizer.from_pretrained(replica)
    assert {"A", "B"} <= m.letter_ids.keys()
    assert m.letter_ids == letter_token_ids(tokenizer, tuple(m.letter_ids))
    # llava-hf's template writes no BOS and relies on the tokenizer's, which vLLM's chat endpoint does not add.
    assert m.bos["add_special_tokens"] is True and m.bos["tokenizer_adds"] == [tokenizer.bos_token_id]
    assert m.runtime()["bos"]["add_special_tokens"] is True

    top_k = OpenAIAdapter(name="srv", model_id=SERVED, base_url=server, api_key_env=None, letter_scoring="top_k")
    top_k.preflight("likelihood")  # the server returns top logprobs too

    wrong = OpenAIAdapter(name="srv", model_id="org/not-served", base_url=server, api_key_env=None)
    with pytest.raises(ServerRejected) as e:
        wrong.preflight("generate")
    assert server in str(e.value) and SERVED in str(e.value) and "served_model" in str(e.value)


def test_likelihood_scores_every_letter_as_the_hf_back_end(server, env, hf_runs, tmp_path):
    rows, manifest, console = _cgeval(tmp_path / "likelihood", env, *_through(server), "scoring=likelihood")
    assert manifest["status"] == "complete" and manifest["model"]["backend"] == "openai"
    assert manifest["unscored"]["n_items_with_unscored_options"] == 0 and "could not score" not in console
    assert manifest["model_runtime"]["bos"]["add_special_tokens"] is True
    hf = hf_runs["likelihood"]
    assert rows.keys() == hf.keys() and len(rows) >= 20
    worst = 0.0
    for item_id, row in rows.items():
        assert row["parse_rule"] == "likelihood" and not row["unscored_options"]
        assert row["option_scores"].keys() == hf[item_id]["option_scores"].keys() == set(row["options"])
        for letter, value in row["option_scores"].items():
            assert value is not None and math.isfinite(value)
            worst = max(worst, abs(value - hf[item_id]["option_scores"][letter]))
        assert row["pred"] == hf[item_id]["pred"]
    print(f"server vs hf: letter log-probabilities differ by at most {worst:.2e} over {len(rows)} items")
    assert worst < SCORE_TOL, f"letter log-probabilities differ by up to {worst:.2e}"


def test_generation_gives_the_hf_back_end_replies(server, env, hf_runs, tmp_path):
    from .test_vllm_engine import _settled

    rows, manifest, _ = _cgeval(tmp_path / "generate", env, *_through(server), "scoring=generate")
    assert manifest["status"] == "complete" and manifest["n_predictions"] == len(rows)
    hf = hf_runs["generate"]
    assert rows.keys() == hf.keys()
    differ = [i for i in rows if _settled(rows[i]["response"]) != _settled(hf[i]["response"])]
    assert not differ, f"{len(differ)} of {len(rows)} greedy replies differ, e.g. {rows[differ[0]]['response']!r} " \
                       f"vs {hf[differ[0]]['response']!r}"
    assert all(r["response"] for r in rows.values())


def test_top_k_scoring_leaves_letters_unscored_and_says_so(server, env, tmp_path):
    """What every-letter scoring fixes: read from the top logprobs alone, letters go unscored (here with k=1,
    as with k=20 on a real vocabulary), and the run counts them and warns."""
    rows, manifest, console = _cgeval(tmp_path / "top_k", env, *_through(server), "scoring=likelihood",
                                      "+model.openai.letter_scoring=top_k", "+model.openai.top_logprobs=1")
    assert manifest["status"] == "complete"
    unscored = manifest["unscored"]
    partly = [r for r in rows.values() if r["unscored_options"]]
    assert unscored["n_items_with_unscored_options"] == len(partly) > 0
    assert unscored["n_items_without_any_score"] == sum(r["parse_rule"] == "no_finite_score" for r in rows.values())
    assert f"warning {len(partly)} items have option letters the model could not score" in console
    print(f"top_k=1: {len(partly)} of {len(rows)} items with unscored letters, "
          f"{unscored['n_items_without_any_score']} without any score")
