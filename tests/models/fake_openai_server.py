"""A small OpenAI-compatible server for tests, speaking HTTP on loopback the way vLLM's server does.

``python tests/models/fake_openai_server.py --port 0 [options]`` prints ``listening on PORT`` and serves until
killed. Endpoints: ``POST /v1/chat/completions``, ``GET /v1/models``, ``POST /tokenize`` (vLLM's, at the root).

Its "model" is a fixed function of the request's last text (`logprobs_for`): a log-softmax over a 300-token
vocabulary in which the option letters ("A".."Z" and " A".." Z", one token each) rank mostly below many word
tokens, so that a top-k read misses letters. Likelihood requests get the first token's logprobs as vLLM gives
them: the top ``top_logprobs`` (at most ``--max-logprobs``) or, with ``logprob_token_ids``, exactly those ids
(tokens written ``token_id:N`` with ``return_tokens_as_token_ids``); generation requests get the best letter.

Options make it misbehave as real servers do: ``--api-key`` (401 without it; ``--echo-auth`` puts the
Authorization header in the 401 message, as some proxies do; ``--auth-fail-after N`` starts refusing the key
after N chat requests), ``--no-logprobs``, ``--no-tokenize``, ``--ignore-logprob-token-ids`` (an older vLLM),
``--reject TEXT`` (a FastAPI-style ``{"detail": ...}`` 400 for requests whose text holds TEXT), ``--text-only`` (a
text-only model: a 400 for any request carrying an image, as vLLM answers), ``--delay S``.
Every request is appended to ``--log FILE`` as one JSON line (path, status, kind), for the tests to count.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import string
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LETTER_IDS = {c: 30 + i for i, c in enumerate(string.ascii_uppercase)}  # "A" -> 30
SPACE_LETTER_IDS = {c: 60 + i for i, c in enumerate(string.ascii_uppercase)}  # " A" -> 60
VOCAB = 300


def token_piece(tid: int) -> str:
    """The raw piece of a token (byte-level BPE style: a leading space is "Ġ")."""
    for c, i in LETTER_IDS.items():
        if i == tid:
            return c
    for c, i in SPACE_LETTER_IDS.items():
        if i == tid:
            return "\u0120" + c
    return f"w{tid}"


def token_text(tid: int) -> str:
    return token_piece(tid).replace("\u0120", " ")


def tokenize(text: str) -> list[int]:
    if len(text) == 1 and text in LETTER_IDS:
        return [LETTER_IDS[text]]
    if len(text) == 2 and text[0] == " " and text[1] in SPACE_LETTER_IDS:
        return [SPACE_LETTER_IDS[text[1]]]
    return [100 + (ord(ch) % 200) for ch in text]  # one made-up token a character


def logprobs_for(text: str) -> list[float]:
    """The model: log-probabilities of every token as the first reply token, a fixed function of ``text``."""
    rng = random.Random(hashlib.sha256(text.encode()).hexdigest())
    logits = [rng.gauss(0.0, 1.0) + (3.0 if i >= 100 else 0.0) for i in range(VOCAB)]
    for ids in (LETTER_IDS, SPACE_LETTER_IDS):
        for tid in ids.values():
            logits[tid] = rng.gauss(0.5, 1.5)
    top = max(logits)
    log_z = top + math.log(sum(math.exp(v - top) for v in logits))
    return [v - log_z for v in logits]


def letter_logprob(text: str, letter: str) -> float:
    """What a server that scores every letter should report for ``letter``: log(p("A") + p(" A"))."""
    lp = logprobs_for(text)
    return math.log(math.exp(lp[LETTER_IDS[letter]]) + math.exp(lp[SPACE_LETTER_IDS[letter]]))


def request_text(body: dict) -> str:
    """The last text part of the last message (the item's prompt)."""
    content = body["messages"][-1]["content"]
    if isinstance(content, str):
        return content
    return [p["text"] for p in content if p.get("type") == "text"][-1]


class State:
    def __init__(self, args):
        self.args = args
        self.chat_requests = 0
        self.lock = threading.Lock()


def make_handler(state: State):
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # replies go out at once, not after a delayed ACK

        def log_message(self, *a):  # quiet
            pass

        def _send(self, status: int, payload: dict, kind: str) -> None:
            # Logged before the reply goes out: a client that has its answer finds the request in the log (written
            # after, a test reading the log right after a refusal could race the server's thread and miss it).
            if args.log:
                with state.lock, open(args.log, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"t": time.time(), "path": self.path, "status": status, "kind": kind}) + "\n")
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self, kind: str) -> bool:
            if not args.api_key or not self.path.startswith("/v1"):  # vLLM guards /v1 only
                return True
            header = self.headers.get("Authorization", "")
            revoked = args.auth_fail_after is not None and kind == "chat" and state.chat_requests > args.auth_fail_after
            if header == f"Bearer {args.api_key}" and not revoked:
                return True
            message = f"invalid credentials: Authorization: {header}" if args.echo_auth else "Unauthorized"
            self._send(401, {"detail": message} if args.echo_auth else {"error": message}, kind)
            return False

        def do_GET(self):
            if self.path.rstrip("/") == "/v1/models":
                if self._authorized("models"):
                    self._send(200, {"object": "list", "data": [{
                        "id": args.served_model, "object": "model", "created": 0, "owned_by": "fake",
                        "root": f"/weights/{args.served_model}", "max_model_len": 4096}]}, "models")
                return
            self._send(404, {"detail": "Not Found"}, "other")

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self._send(400, {"detail": "body is not JSON"}, "other")
                return
            if self.path == "/tokenize":
                if args.no_tokenize:
                    self._send(404, {"detail": "Not Found"}, "tokenize")
                    return
                # vLLM's two forms: a text, or chat messages rendered by the template (this one writes no BOS, and
                # its tokenizer adds no special tokens)
                toks = tokenize(body["prompt"] if "prompt" in body else request_text(body))
                self._send(200, {"count": len(toks), "max_model_len": 4096, "tokens": toks,
                                 "token_strs": [token_piece(t) for t in toks] if body.get("return_token_strs")
                                 else None}, "tokenize")
                return
            if self.path != "/v1/chat/completions":
                self._send(404, {"detail": "Not Found"}, "other")
                return
            with state.lock:
                state.chat_requests += 1
            if not self._authorized("chat"):
                return
            self.chat(body)

        def chat(self, body: dict) -> None:
            text = request_text(body)
            kind = "probe" if "Which letter comes first" in text else "item"
            if args.delay:
                time.sleep(args.delay)
            if body.get("model") != args.served_model:
                self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                           "type": "NotFoundError", "param": "model", "code": 404}}, kind)
                return
            content = body["messages"][-1]["content"]
            if args.text_only and not isinstance(content, str) and any(p.get("type") == "image_url" for p in content):
                self._send(400, {"error": {"message": f"{args.served_model} is not a multimodal model",
                                           "type": "BadRequestError", "code": 400}}, kind)
                return
            if args.reject and args.reject in text:
                self._send(400, {"detail": f"the image of this request is too large ({args.reject})"}, kind)
                return
            ids = None if args.ignore_logprob_token_ids else body.get("logprob_token_ids")
            if ids and not body.get("logprobs"):
                self._send(400, {"error": {"message": "when using `logprob_token_ids`, `logprobs` must be set to "
                                                      "true.", "type": "BadRequestError", "code": 400}}, kind)
                return
            k = int(body.get("top_logprobs") or 0)
            if k > args.max_logprobs:
                self._send(400, {"error": {"message": f"Requested sample logprobs of {k}, which is greater than "
                                                      f"max allowed: {args.max_logprobs}", "code": 400}}, kind)
                return
            lp = logprobs_for(text)
            letters = [LETTER_IDS[c] for c in "ABCD"]
            if body.get("max_tokens") == 1 and body.get("logprobs"):
                sampled = max(range(VOCAB), key=lambda t: lp[t])
            else:  # a generated answer: the likeliest letter among A-D
                sampled = max(letters, key=lambda t: lp[t])
            as_ids = bool(body.get("return_tokens_as_token_ids"))
            name = (lambda t: f"token_id:{t}") if as_ids else token_text
            logprobs = None
            if body.get("logprobs") and not args.no_logprobs:
                listed = list(ids) if ids else sorted(range(VOCAB), key=lambda t: -lp[t])[:k]
                logprobs = {"content": [{"token": name(sampled), "logprob": lp[sampled], "bytes": None,
                                         "top_logprobs": [{"token": name(t), "logprob": max(lp[t], -9999.0),
                                                           "bytes": None} for t in listed]}]}
            choice = {"index": 0, "finish_reason": "length" if body.get("max_tokens") == 1 else "stop",
                      "message": {"role": "assistant", "content": token_text(sampled)}, "logprobs": logprobs}
            self._send(200, {"id": "fake", "object": "chat.completion", "created": 0, "model": args.served_model,
                             "choices": [choice]}, kind)

    return Handler


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--served-model", default="org/model-7b")
    p.add_argument("--api-key")
    p.add_argument("--echo-auth", action="store_true")
    p.add_argument("--auth-fail-after", type=int)
    p.add_argument("--no-logprobs", action="store_true")
    p.add_argument("--no-tokenize", action="store_true")
    p.add_argument("--ignore-logprob-token-ids", action="store_true")
    p.add_argument("--max-logprobs", type=int, default=20)
    p.add_argument("--reject")
    p.add_argument("--text-only", action="store_true")
    p.add_argument("--delay", type=float, default=0.0)
    p.add_argument("--log")
    args = p.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(State(args)))
    server.daemon_threads = True
    print(f"listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    sys.exit(main())
