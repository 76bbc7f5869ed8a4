"""The OpenAI back end against a real HTTP server on loopback (tests/models/fake_openai_server.py, a process
of its own that the tests kill and restart): preflight, outages, refused keys, the server's reasons, every
option letter scored, and a resume key that does not depend on where the server runs."""

from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cgeval.config import DataConfig, ExperimentConfig, RunConfig, ScoringConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.base import UnsupportedScoring
from cgeval.models.openai_api import (
    OpenAIAdapter,
    ServerAuthError,
    ServerRejected,
    ServerUnreachable,
)
from cgeval.run import run

from .fake_openai_server import letter_logprob

pytest.importorskip("openai")

REPO = Path(__file__).resolve().parents[2]
SERVER = Path(__file__).with_name("fake_openai_server.py")
EXP = ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}])
KEY = "sk-live-0123456789abcdef-secret"


class FakeServer:
    """The fake server as a process: started on a free port (or a given one), killed and restarted at will."""

    def __init__(self, folder: Path, *args: str, port: int = 0):
        self.args, self.port = list(args), port
        self.log = folder / f"server-{len(list(folder.glob('server-*.log')))}.log"
        self.log.touch()
        self.proc: subprocess.Popen | None = None
        self.start()

    def start(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(SERVER), "--port", str(self.port), "--log", str(self.log),
                                      *self.args], stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        assert line.startswith("listening on"), line
        self.port = int(line.split()[-1])

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def requests(self, **match) -> list[dict]:
        rows = [json.loads(line) for line in self.log.read_text().splitlines()]
        return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


@pytest.fixture
def server(tmp_path_factory):
    started: list[FakeServer] = []
    logs = tmp_path_factory.mktemp("server_logs")

    def start(*args: str, port: int = 0) -> FakeServer:
        s = FakeServer(logs, *args, port=port)
        started.append(s)
        return s

    yield start
    for s in started:
        s.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def adapter(url: str, **kw) -> OpenAIAdapter:
    kw.setdefault("api_key_env", None)
    kw.setdefault("retry_base_delay", 0.02)
    kw.setdefault("retry_max_delay", 0.2)
    kw.setdefault("timeout", 10.0)
    kw.setdefault("max_concurrency", 4)
    return OpenAIAdapter(name="srv", model_id="org/model-7b", base_url=url, **kw)


def cfg(out: Path, mode: str = "generate", **kw) -> RunConfig:
    kw.setdefault("batch_size", 8)
    kw.setdefault("scoring", ScoringConfig(mode=mode))
    return RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), experiment=EXP, output_dir=str(out), progress=False,
                     **kw)


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def every_text(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in folder.rglob("*") if p.is_file())


# ------------------------------------------------------------------ preflight: one request, fail fast


def test_a_dead_server_stops_the_run_in_one_request_naming_its_address(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    m = adapter(url)
    t0 = time.monotonic()
    with pytest.raises(ServerUnreachable, match=f"no answer from the server at {url}"):
        run(cfg(tmp_path), m)
    assert time.monotonic() - t0 < 10 and m.calls == 1
    state = manifest(tmp_path)
    assert state["status"] == "failed" and url in state["error"]
    assert not (tmp_path / "predictions.jsonl").exists()  # stopped before anything was asked or written


def test_the_dead_server_from_the_command_line(tmp_path):
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "cgeval", "model=openai_server", f"model.openai.base_url={url}",
                           "model.openai.api_key_env=null", "progress=false", f"hydra.run.dir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "ServerUnreachable" in proc.stderr and url in proc.stderr
    assert time.monotonic() - t0 < 60


def test_a_model_the_server_does_not_serve_is_named_with_what_it_serves(tmp_path, server):
    s = server("--served-model", "qwen2-vl")
    m = adapter(s.url)  # asks for org/model-7b
    with pytest.raises(ServerRejected) as err:
        m.preflight("generate")
    text = str(err.value)
    assert s.url in text and "HTTP 404" in text and "The model `org/model-7b` does not exist." in text
    assert "it serves qwen2-vl" in text and "served_model" in text
    assert len(s.requests(path="/v1/chat/completions")) == 1


def test_a_refused_key_stops_at_the_preflight_without_repeating_the_key(tmp_path, server, monkeypatch):
    s = server("--api-key", "the-right-key", "--echo-auth")
    monkeypatch.setenv("CGEVAL_TEST_KEY", KEY)
    m = adapter(s.url, api_key_env="CGEVAL_TEST_KEY")
    with pytest.raises(ServerAuthError) as err:
        run(cfg(tmp_path), m)
    assert "HTTP 401" in str(err.value) and "$CGEVAL_TEST_KEY" in str(err.value)
    assert "invalid credentials" in str(err.value) and KEY not in str(err.value)  # the reason, less the key
    assert len(s.requests(status=401)) == 1
    assert KEY not in every_text(tmp_path)


def test_likelihood_without_logprobs_stops_before_the_fan_out(tmp_path, server):
    s = server("--no-logprobs")
    with pytest.raises(UnsupportedScoring, match="no logprobs"):
        run(cfg(tmp_path, "likelihood"), adapter(s.url, max_concurrency=16))
    assert len(s.requests(path="/v1/chat/completions")) == 1  # not 64


# ------------------------------------------------------------------ outages during the run


def _kill_when(s: FakeServer, out: Path, n_rows: int, then=None) -> threading.Thread:
    def watch():
        pred = out / "predictions.jsonl"
        deadline = time.time() + 120
        while time.time() < deadline:
            if pred.exists() and len(pred.read_text().splitlines()) >= n_rows:
                s.kill()
                if then:
                    then()
                return
            time.sleep(0.01)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


def test_a_server_restarted_mid_run_pauses_the_run_and_it_goes_on(tmp_path, server):
    """The server dies after 24 items and comes back 2 s later on the same port: every request waits while one
    probe at a time checks the server, then the run goes on; no item fails, none is asked twice."""
    s = server("--delay", "0.02")
    m = adapter(s.url, max_retries=2, outage_window_s=60)

    def restart():
        time.sleep(2.0)
        s.start()  # same port

    watcher = _kill_when(s, tmp_path, 24, then=restart)
    run(cfg(tmp_path), m)
    watcher.join()
    state = manifest(tmp_path)
    assert state["status"] == "complete" and state["n_predictions"] == 120
    assert state["inference_errors"]["n"] == 0
    [outage] = state["model_runtime"]["outages"]
    assert outage["back"] and outage["waited_s"] >= 1.5
    # One probe at a time while the server was gone: the attempts that failed are the few requests in flight
    # when it died, plus the probes (backing off to 0.2 s over 2 s: about a dozen), not a retry storm.
    # every item answered once (one log line may be lost to the kill, between the reply and its log line)
    assert 119 <= len(s.requests(kind="item", status=200)) <= 120
    failed_attempts = m.calls - len(s.requests())
    assert failed_attempts <= 4 + outage["probes"] and outage["probes"] <= 25


def test_a_server_gone_for_longer_than_the_window_stops_the_run(tmp_path, server):
    s = server("--delay", "0.02")
    m = adapter(s.url, max_retries=5, outage_window_s=1.0)
    watcher = _kill_when(s, tmp_path, 24)
    t0 = time.monotonic()
    with pytest.raises(ServerUnreachable, match=r"did not answer again within 1 s"):
        run(cfg(tmp_path), m)
    watcher.join()
    assert time.monotonic() - t0 < 30
    state = manifest(tmp_path)
    assert state["status"] == "failed" and s.url in state["error"] and "outage_window_s" in state["error"]
    assert state["inference_errors"]["n"] == 0  # the outage stopped the run; no item was failed for it
    kept = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(kept) >= 24
    s.start()  # back: the same command resumes
    run(cfg(tmp_path), adapter(s.url))
    state = manifest(tmp_path)
    assert state["status"] == "complete" and state["resume"]["reused"] == len(kept)


def test_a_key_refused_mid_run_stops_it_at_once_and_is_written_nowhere(tmp_path, server, monkeypatch, caplog):
    """A key revoked after 20 requests, by a proxy that echoes the Authorization header: the run stops on the
    first 401 (not one per remaining item) and the key appears in no output, message or log line."""
    s = server("--api-key", KEY, "--echo-auth", "--auth-fail-after", "20")
    monkeypatch.setenv("CGEVAL_TEST_KEY", KEY)
    m = adapter(s.url, api_key_env="CGEVAL_TEST_KEY")
    with pytest.raises(ServerAuthError) as err:
        run(cfg(tmp_path), m)
    assert KEY not in str(err.value) and "[API key redacted]" in str(err.value)
    assert 1 <= len(s.requests(status=401)) <= 4  # the requests in flight at most
    assert KEY not in every_text(tmp_path) and KEY not in caplog.text
    assert manifest(tmp_path)["status"] == "failed"


def test_the_servers_reason_and_address_reach_errors_jsonl(tmp_path, server):
    """A FastAPI-style {"detail": ...} refusal of one item: that item fails with the server's words."""
    s = server("--reject", "Does this head CT show an intracranial hemorrhage?")
    run(cfg(tmp_path), adapter(s.url))
    state = manifest(tmp_path)
    assert state["status"] == "incomplete" and state["inference_errors"]["n"] == 5
    rows = [json.loads(line) for line in (tmp_path / "errors.jsonl").read_text().splitlines()]
    assert len(rows) == 5 and all("the image of this request is too large" in r["error"] and s.url in r["error"]
                        and "HTTP 400" in r["error"] for r in rows)


# ------------------------------------------------------------------ every option letter scored


def _expected(row: dict, prompt: str) -> dict:
    return {l: letter_logprob(prompt, l) for l in row["option_scores"]}


def test_likelihood_through_the_server_scores_every_letter(tmp_path, server):
    """The server ranks most letters below its top 20 tokens; every letter is still scored, with the same
    value the model gives it (log of p("A") + p(" A")), so no item is left unscored."""
    from cgeval.data.loader import load_medmat

    s = server("--max-logprobs", "20")
    m = adapter(s.url)
    run(cfg(tmp_path, "likelihood"), m)
    state = manifest(tmp_path)
    assert state["status"] == "complete" and state["unscored"]["n_items_with_unscored_options"] == 0
    assert state["model_runtime"]["letter_token_ids"]["A"] == [30, 60]
    items = {it.item_id: it for it in load_medmat(SAMPLE_ROOT, io_workers=1)[0]}
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120
    for row in rows:
        expected = _expected(row, items[row["item_id"]].prompt)
        assert row["option_scores"] == pytest.approx(expected, abs=1e-9)
        assert row["pred"] == max(expected, key=expected.get)


def test_top_k_scoring_leaves_letters_unscored_and_says_so(tmp_path, server, capsys):
    """What a top-k read gives against the same server: letters outside the top 20 unscored, counted, warned."""
    s = server()
    run(cfg(tmp_path, "likelihood"), adapter(s.url, letter_scoring="top_k"))
    u = manifest(tmp_path)["unscored"]
    assert u["n_items_with_unscored_options"] > 60 and u["n_items_without_any_score"] > 0
    out = capsys.readouterr().out
    assert f"warning {u['n_items_with_unscored_options']} items have option letters the model could not score" in out


@pytest.mark.parametrize("flag", ["--no-tokenize", "--ignore-logprob-token-ids"])
def test_a_server_that_cannot_score_every_letter_stops_at_the_preflight(tmp_path, server, flag):
    s = server(flag)
    with pytest.raises(UnsupportedScoring, match="letter_scoring=top_k"):
        run(cfg(tmp_path, "likelihood"), adapter(s.url))
    assert len(s.requests(kind="item")) == 0


def test_likelihood_from_the_command_line(tmp_path, server):
    s = server()
    proc = subprocess.run([sys.executable, "-m", "cgeval", "model=openai_server", f"model.openai.base_url={s.url}",
                           "model.model_id=org/model-7b", "model.openai.api_key_env=null", "scoring=likelihood",
                           "progress=false", f"hydra.run.dir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "could not score" not in proc.stdout
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and all(None not in r["option_scores"].values() for r in rows)


# ------------------------------------------------------------------ the resume key


def test_a_server_moved_to_another_port_reuses_every_finished_item(tmp_path, server):
    first = server()
    run(cfg(tmp_path), adapter(first.url))
    first.kill()
    second = server()
    assert second.port != first.port
    run(cfg(tmp_path), adapter(second.url, max_concurrency=2, timeout=30.0))
    state = manifest(tmp_path)
    assert state["status"] == "complete" and state["resume"]["reused"] == 120 and state["resume"]["to_score"] == 0
    assert state["resume"]["stale_rows"] == 0 and not list(tmp_path.glob("predictions.stale-*"))
    assert state["model_runtime"]["base_url"] == second.url
    assert second.requests(path="/v1/chat/completions") == []


# ------------------------------------------------------------------ as the judge of another model's replies


def test_a_text_only_server_judges_the_replies_the_rules_cannot_read_and_a_dead_one_costs_no_row(tmp_path, server):
    from cgeval.models.mock import MockModel

    s = server("--text-only")
    with pytest.raises(ServerRejected, match="not a multimodal model"):
        adapter(s.url).preflight("generate")  # a request with an image is refused by this server
    judge = adapter(s.url)
    readable = [["^S0[2-6]-", "{gold}"]]  # 50 replies the rules read; 70 refusals they cannot
    judged = cfg(tmp_path / "judged", scoring=ScoringConfig(judge={"name": "srv"}))
    run(judged, MockModel(reply="refuse", script=readable), judge=judge)
    state = manifest(tmp_path / "judged")
    assert state["status"] == "complete"
    assert (state["judge"]["asked"], state["judge"]["failed"]) == (70, 0) and state["judge"]["model"]["backend"] == "openai"
    # one probe refused (the image), then the judge's text-only probe and its 70 questions, none refused
    assert len(s.requests(kind="item", status=200)) == 70 and len(s.requests(kind="probe", status=200)) == 1
    assert len(s.requests(status=400)) == 1
    rows = [json.loads(line) for line in (tmp_path / "judged/predictions.jsonl").read_text().splitlines()]
    asked = [r for r in rows if r["judge_response"] is not None]
    assert len(asked) == 70 and all(r["judge_response"] in "ABCD" for r in asked)
    # the server's letter decides where it is one of the item's options (a "D" for a 3-option item is not)
    assert all(r["decided_by"] == ("judge" if r["judge_response"] in r["options"] else "unanswered") for r in asked)

    dead = adapter(f"http://127.0.0.1:{free_port()}/v1")
    run(cfg(tmp_path / "dead", scoring=ScoringConfig(judge={"name": "srv"})), MockModel(reply="refuse", script=readable),
        judge=dead)
    state = manifest(tmp_path / "dead")
    assert state["status"] == "incomplete" and state["judge"]["failed"] == 70
    assert state["judge"]["errors"]["by_type"] == {"ServerUnreachable": 70}
    rows = [json.loads(line) for line in (tmp_path / "dead/predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 120 and sum(r["decided_by"] == "unanswered" for r in rows) == 70
    assert all("ServerUnreachable" in r["judge_error"] for r in rows if r["decided_by"] == "unanswered")
