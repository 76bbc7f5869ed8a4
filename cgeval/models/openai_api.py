"""The OpenAI-compatible back end: any chat-completions server (``vllm serve``, SGLang, hosted APIs).

Each item is one request: the image as a base64 data URL, then the item's text, in the same messages the
other back ends build (`chat_messages`); the server applies the model's chat template. Requests run on a
bounded thread pool and replies come back in input order.

**Preflight.** Before the first batch the run calls `OpenAIAdapter.preflight`: one small request (a 64 x 64
grey image and a one-line question, one token) that shows, before anything fans out, whether the server
answers at ``base_url`` (`ServerUnreachable`), accepts the key (`ServerAuthError`), serves the model and takes
the request (`ServerRejected`, with the server's own reason and the names it serves) and, for likelihood
scoring, returns logprobs for every option letter (`UnsupportedScoring`).

**Outages.** A request that finds the server gone (no connection, a dropped connection, a timeout) does not
retry on its own: it pauses every request of the run, and one thread probes the server with one small request
at a time (backing off up to ``retry_max_delay``, at most every 10 s) until it answers or ``outage_window_s``
has passed since the outage began (default 300 s, the time a server restart may take). When it answers, the
paused requests go on; when the window closes, `ServerUnreachable` stops the run, whose finished predictions
a resume reuses. Other answers are retried per request with exponential backoff and jitter: a 408, 409, 429
or 5xx (a server's ``Retry-After`` is honoured up to ``retry_max_delay``). A request that still fails, or is
refused (another 4xx), is that item's `APIRequestError`, naming the item, the server and the server's own
reason (``{"error": {"message": ...}}`` or a FastAPI ``{"detail": ...}``). A 401 or 403 stops the run at once
(`ServerAuthError`): a refused key is the same for every item. Retries are ours, not the SDK's (its
``max_retries`` is 0), so that attempts are counted, logged and bounded the same way everywhere.

**Likelihood.** One token with ``logprobs=True``. With ``letter_scoring: all`` (the default) the request names
the token ids of every option letter (``logprob_token_ids``, with ``return_tokens_as_token_ids``) and the server
returns the log-probability of each of them, wherever they rank: the same ids and the same rule as the hf and
vllm back ends ("A" and " A" where each is one token; a letter's score is the log-sum-exp over its ids). The ids
come from the server's ``/tokenize`` endpoint. vLLM's OpenAI server has both (0.32 and later;
tests/models/test_vllm_server.py runs a real 0.32.0 server); a server without them stops at the preflight with
`UnsupportedScoring`. An equal ``logit_bias`` on the letters cannot replace
this: vLLM reports log-probabilities from the logits before any bias (its default ``--logprobs-mode
raw_logprobs``), so a bias changes the sampled token but not which tokens the top-k holds. ``letter_scoring:
top_k`` reads the letters from the first token's ``top_logprobs`` entries instead (any server that returns
logprobs, e.g. a hosted API); a letter outside the top k then scores ``-inf``, which the run writes as
unscored, counts and warns about.

**BOS.** vLLM's chat endpoint adds no special tokens to the rendered template; the hf back end adds the
tokenizer's unless the template writes BOS. The preflight decides it the hf way through ``/tokenize`` and sends
``add_special_tokens`` (`OpenAIAdapter._decide_bos`), so a llava-hf prompt keeps its BOS.

``describe()`` (hashed into the resume key) holds what decides an answer: the model's identity (``model_id``,
``served_model``, ``revision``), the prompt and chat template, decoding and scoring settings. Where the server
runs (``base_url``), the key's variable, concurrency, timeouts, retries and the outage window only decide how
the answers travel; `OpenAIAdapter.runtime` reports them (with what the preflight learnt about the server) for
the manifest, and changing them does not discard finished predictions.

A ``vllm serve`` / SGLang server fills unset request fields from the checkpoint's generation_config (Qwen2-VL:
``repetition_penalty`` 1.05), which the hf and vllm back ends do not apply. Start vLLM with
``--generation-config vllm`` or set ``extra_body: {repetition_penalty: 1.0}`` for answers comparable with them;
that field is not sent by default because hosted APIs reject it.

The API key is read once, in the constructor, from the environment variable named by ``api_key_env``; it is
handed to the SDK client and kept nowhere else: not in `describe`, ``repr`` or any log line, and it is cut out
of every error text the adapter builds (some proxies echo the Authorization header in their 401 message).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from ..data.records import LETTERS, Item
from .base import BackendUnavailable, ItemFailure, UnsupportedScoring
from .media import ImageLoadError, load_rgb
from .prompt import TEXT_ONLY, PromptTemplate, chat_messages, is_text_only

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'cgeval[openai]'  (from a checkout: pip install -e '.[openai]')"
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx
AUTH_STATUS = frozenset({401, 403})
LETTER_SCORING = ("all", "top_k")
PROBE_MAX_INTERVAL_S = 10.0  # the longest pause between two probes of a server that stopped answering
REDACTED = "[API key redacted]"


class OpenAINotInstalled(ImportError):
    """``backend: openai`` was selected but the ``openai`` extra is not installed."""


class MissingAPIKey(RuntimeError):
    """The environment variable named by ``api_key_env`` is not set."""


class APIRequestError(RuntimeError):
    """One item's request that still failed after its retries (or failed in a way retrying cannot fix)."""

    def __init__(self, item_id: str, status: int | None, attempts: int, detail: str, base_url: str = ""):
        self.item_id = item_id
        self.status = status
        self.attempts = attempts
        self.base_url = base_url
        what = f"HTTP {status}" if status is not None else "no response"
        where = f" to {base_url}" if base_url else ""
        super().__init__(f"request for item {item_id}{where} failed after {attempts} attempt(s): {what}: {detail}")


class ServerError(BackendUnavailable):
    """The server cannot answer any item: the run stops (its finished predictions stay for a resume)."""

    def __init__(self, message: str, base_url: str = ""):
        self.base_url = base_url
        super().__init__(message)


class ServerUnreachable(ServerError):
    """No answer from the server: at the preflight, or for longer than the outage window during the run."""


class ServerAuthError(ServerError):
    """The server refused the API key (HTTP 401 or 403)."""


class ServerRejected(ServerError):
    """The server refused the preflight request (a model it does not serve, a field it does not take, ...)."""


def import_openai():
    try:
        import openai
    except ImportError as e:
        raise OpenAINotInstalled(
            f"model back end 'openai' needs the openai extra, which is not installed: {INSTALL_HINT}. "
            f"(import openai failed: {e})"
        ) from e
    return openai


# ---------------------------------------------------------------- request construction (pure)


def image_data_url(image: Image.Image, image_format: str = "png", jpeg_quality: int = 95) -> str:
    fmt = image_format.lower()
    buf = io.BytesIO()
    if fmt == "png":
        image.save(buf, format="PNG")
        mime = "image/png"
    elif fmt in ("jpeg", "jpg"):
        image.save(buf, format="JPEG", quality=jpeg_quality)
        mime = "image/jpeg"
    else:
        raise ValueError(f"image_format must be 'png' or 'jpeg', got {image_format!r}")
    return f"data:{mime};base64,{base64.b64encode(buf.getvalue()).decode('ascii')}"


def api_messages(item: Item, template: PromptTemplate, data_url: str | None) -> list[dict]:
    """`chat_messages` with the image placeholder carrying the image as an ``image_url`` data URL."""
    messages = chat_messages(item, template)
    for message in messages:
        if isinstance(message["content"], list):
            message["content"] = [
                {"type": "image_url", "image_url": {"url": data_url}} if part.get("type") == "image" else part
                for part in message["content"]
            ]
    return messages


def generation_request(model: str, messages: list[dict], max_tokens: int, seed: int | None) -> dict:
    req = {"model": model, "messages": messages, "temperature": 0.0, "max_tokens": max_tokens}
    if seed is not None:
        req["seed"] = seed
    return req


def likelihood_request(model: str, messages: list[dict], top_logprobs: int, seed: int | None) -> dict:
    return {**generation_request(model, messages, 1, seed), "logprobs": True, "top_logprobs": top_logprobs}


def letter_ids_fields(ids: Sequence[int]) -> dict:
    """The request fields that ask for the log-probability of exactly these tokens, reported by id (vLLM)."""
    return {"logprob_token_ids": sorted(set(ids)), "return_tokens_as_token_ids": True}


def backoff_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                  rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1``: the server's Retry-After if it gave one, else
    ``base * 2**attempt`` with full jitter over its upper half; never more than ``cap``."""
    if retry_after is not None and retry_after >= 0:
        return min(retry_after, cap)
    exp = min(base * 2**attempt, cap)
    return exp * (0.5 + 0.5 * (rng or random).random())


def _retry_after_seconds(headers: Mapping[str, str] | None) -> float | None:
    if not headers:
        return None
    value = headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date; fall back to our own backoff


def server_reason(exc: Any) -> str:
    """The server's own words for a refused request: ``{"error": {"message": ...}}`` (OpenAI, vLLM),
    ``{"detail": "..."}`` or a FastAPI validation list (``transformers serve``, other FastAPI servers),
    ``{"message": ...}``, else the body as text."""
    body = getattr(exc, "body", None)  # the SDK hands over body["error"] where there is one
    text = None
    if isinstance(body, Mapping):
        for key in ("message", "detail", "error", "msg"):
            value = body.get(key)
            if isinstance(value, str) and value.strip():
                text = value.strip()
            elif isinstance(value, Mapping) and isinstance(value.get("message"), str):
                text = value["message"]
            elif isinstance(value, list) and value:  # FastAPI: [{"loc": [...], "msg": ..., "type": ...}]
                text = "; ".join(
                    f"{'.'.join(str(p) for p in d.get('loc', []))}: {d.get('msg')}" if isinstance(d, Mapping)
                    else str(d) for d in value)
            if text:
                break
        if text is None:
            text = json.dumps(body, default=str)
    elif isinstance(body, str) and body.strip():
        text = body.strip()
    if not text:
        response = getattr(exc, "response", None)
        try:
            text = response.text.strip() if response is not None else ""
        except Exception:  # noqa: BLE001 - a body that cannot be read
            text = ""
    return (text or getattr(exc, "message", "") or type(exc).__name__)[:1000]


# ---------------------------------------------------------------- result handling (pure)


def reply_text(completion: Any) -> str:
    """The reply without surrounding whitespace, as the hf and vllm back ends record it (a reply to
    ``... ASSISTANT:`` starts with a space token)."""
    if not completion.choices:
        return ""
    return (completion.choices[0].message.content or "").strip()


class ReplyWithoutLogprobs(RuntimeError):
    """One reply came back without logprobs (filtered, or with no choice) from a server that returns them:
    a failure of that item, counted and retried on resume, not of the run."""


def _logprob_content(completion: Any):
    choice = completion.choices[0] if completion.choices else None
    return choice.logprobs.content if choice is not None and choice.logprobs is not None else None


def _first_token_entries(completion: Any, server_returns_logprobs: bool) -> list[tuple[str, float]]:
    """``(token, logprob)`` of the first generated token's listed alternatives, then of the token itself."""
    content = _logprob_content(completion)
    if not content:
        choice = completion.choices[0] if completion.choices else None
        finish = getattr(choice, "finish_reason", None)
        if choice is None or finish == "content_filter" or server_returns_logprobs:
            raise ReplyWithoutLogprobs(f"a reply without logprobs (finish_reason={finish!r}, "
                                       f"{'no choice' if choice is None else 'one choice'})")
        raise UnsupportedScoring(
            "the server returned no logprobs for the chat completion, so option likelihoods cannot be read; "
            "use scoring=generate with this server (vLLM and SGLang servers return them)"
        )
    first = content[0]
    entries = [(t.token, t.logprob) for t in (first.top_logprobs or [])]
    if first.logprob is not None:
        entries.append((first.token, first.logprob))
    return entries


def letter_scores(completion: Any, letters: Sequence[str], server_returns_logprobs: bool = False) -> dict[str, float]:
    """``{letter: logprob}`` from the first generated token's top logprobs, matched by the token's text ("A",
    " A", "▁A"); absent letters score ``-inf``.

    A reply without logprobs is `ReplyWithoutLogprobs` (one item) when it was filtered or has no choice, or when
    the server is known to return them (``server_returns_logprobs``); otherwise the server does not return them
    at all: `UnsupportedScoring`, which stops the run."""
    seen: dict[str, float] = {}
    for token, logprob in _first_token_entries(completion, server_returns_logprobs):
        seen.setdefault(token, float(logprob))  # the sampled token is usually among the top ones too
    scores = {}
    for letter in letters:
        values = [lp for tok, lp in seen.items() if _token_text(tok) == letter]
        scores[letter] = _logsumexp(values) if values else -math.inf
    return scores


def letter_scores_by_id(completion: Any, letters: Sequence[str], letter_ids: Mapping[str, Sequence[int]],
                        server_returns_logprobs: bool = False) -> dict[str, float]:
    """``{letter: logsumexp of its token ids' logprobs}`` from a reply to a request with `letter_ids_fields`:
    entries come back as ``token_id:<id>``. An id that did not come back is left out; a letter with none of
    its ids back scores ``-inf`` (written as unscored by the run). A server that honours the ids but writes the
    tokens as text is read by their text, as `letter_scores` does."""
    entries = _first_token_entries(completion, server_returns_logprobs)
    by_id: dict[int, float] = {}
    for token, logprob in entries:
        if isinstance(token, str) and token.startswith("token_id:"):
            try:
                by_id.setdefault(int(token[len("token_id:"):]), float(logprob))
            except ValueError:
                continue
    if entries and not by_id:
        return letter_scores(completion, letters, server_returns_logprobs)
    scores = {}
    for letter in letters:
        values = [by_id[t] for t in letter_ids[letter] if t in by_id and not math.isnan(by_id[t])]
        scores[letter] = _logsumexp(values) if values else -math.inf
    return scores


def _token_text(token: str) -> str:
    """A returned token as text: servers send decoded text (" A") or, some, the raw piece ("▁A", "ĠA")."""
    return token.replace("\u2581", " ").replace("\u0120", " ").strip()


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


# ---------------------------------------------------------------- outages


class OutageGate:
    """Every request passes through here. The first request that finds the server gone becomes the prober;
    every other request waits, and none is sent, until the probe reports the server back (they go on) or gone
    for good (each raises the same error). An error set with `fail` (a refused key) stops every request."""

    def __init__(self, probe_until_back: Callable[[str], BaseException | None]):
        self._probe_until_back = probe_until_back
        self._cond = threading.Condition()
        self._probing = False
        self._epoch = 0  # outages over so far
        self._failure: BaseException | None = None

    def enter(self) -> int:
        """Wait while the server is being probed; the outage count, to hand to `outage`."""
        with self._cond:
            while self._probing:
                self._cond.wait()
            if self._failure is not None:
                raise self._failure
            return self._epoch

    def fail(self, exc: BaseException) -> BaseException:
        """Stop every request with ``exc`` (the first such error wins); returns the error to raise."""
        with self._cond:
            if self._failure is None:
                self._failure = exc
            self._cond.notify_all()
            return self._failure

    def outage(self, epoch: int, what: str) -> None:
        """A request sent at ``epoch`` found the server gone: return once it answers again, or raise."""
        with self._cond:
            if self._failure is not None:
                raise self._failure
            if self._probing or self._epoch != epoch:  # another request is probing, or an outage just ended
                while self._probing:
                    self._cond.wait()
                if self._failure is not None:
                    raise self._failure
                return
            self._probing = True
        failure: BaseException | None = None
        try:
            failure = self._probe_until_back(what)
        except BaseException as exc:  # noqa: BLE001 - whatever stopped the prober stops everyone
            failure = exc
        finally:
            with self._cond:
                self._probing = False
                self._epoch += 1
                if failure is not None and self._failure is None:
                    self._failure = failure
                self._cond.notify_all()
        if failure is not None:
            raise self._failure


# ---------------------------------------------------------------- the adapter


class OpenAIAdapter:
    """Chat completions against an OpenAI-compatible server.

    Takes the common model config keys (``name``, ``model_id``, ``max_new_tokens``, ``prompt``,
    ``pad_to_square``, ``backends``, ...) and its own: ``base_url``, ``served_model`` (the model name the
    server knows, default ``model_id``), ``api_key_env`` (the *name* of the variable holding the key; ``null``
    for a local server without auth), ``max_concurrency``, ``timeout`` (seconds a request), ``max_retries``,
    ``retry_base_delay`` / ``retry_max_delay`` (seconds), ``outage_window_s`` (how long to wait for a server
    that stopped answering), ``image_format`` (png or jpeg), ``letter_scoring`` (``all`` or ``top_k``),
    ``top_logprobs`` (the k of ``top_k``), ``extra_body`` (server-specific request fields). A config
    ``chat_template`` is sent as the request's ``chat_template`` field (vLLM / SGLang servers), so the server
    renders the prompt as the other back ends do. ``http_client`` injects an ``httpx.Client`` (tests).
    Keys that mean nothing to a remote server (``dtype``, ``device``, ...) are ignored and listed in `describe`.
    """

    def __init__(
        self,
        name: str,
        model_id: str,
        base_url: str = "http://localhost:8000/v1",
        served_model: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        revision: str | None = None,
        backend: str = "openai",
        backends: Sequence[str] | None = None,
        max_new_tokens: int = 16,
        prompt: Mapping[str, Any] | None = None,
        pad_to_square: bool = False,
        seed: int | None = 0,
        max_concurrency: int = 16,
        timeout: float = 120.0,
        max_retries: int = 5,
        retry_base_delay: float = 1.0,
        retry_max_delay: float = 60.0,
        outage_window_s: float = 300.0,
        image_format: str = "png",
        letter_scoring: str = "all",
        top_logprobs: int = 20,
        extra_body: Mapping[str, Any] | None = None,
        chat_template: str | None = None,
        http_client: Any = None,
        **ignored: Any,
    ):
        if backends is not None and "openai" not in backends:
            raise ValueError(f"model {name!r} does not list 'openai' among its back ends {list(backends)}")
        if max_concurrency < 1 or max_retries < 0 or max_new_tokens < 1:
            raise ValueError("max_concurrency and max_new_tokens must be >= 1 and max_retries >= 0")
        if outage_window_s < 0:
            raise ValueError(f"outage_window_s must be >= 0 seconds, got {outage_window_s}")
        if letter_scoring not in LETTER_SCORING:
            raise ValueError(f"letter_scoring must be one of {LETTER_SCORING}, got {letter_scoring!r}")
        image_data_url(Image.new("RGB", (1, 1)), image_format)  # reject a bad format now, not mid-run
        openai = import_openai()

        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise MissingAPIKey(
                    f"model {name!r}: environment variable {api_key_env} is not set; set it to the server's key "
                    f"(any value, e.g. EMPTY, for a server without auth) or set model.openai.api_key_env=null"
                )
        else:
            api_key = "EMPTY"  # the SDK insists on a key; a server without auth ignores it

        self.name = name
        self.model_id = model_id
        self.revision = revision
        self.base_url = base_url.rstrip("/")
        self.served_model = served_model or model_id
        self.api_key_env = api_key_env
        self.max_new_tokens = max_new_tokens
        self.template = PromptTemplate(**(prompt or {}))
        self.pad_to_square = pad_to_square
        self.seed = seed
        self.max_concurrency = max_concurrency
        self.preferred_batch_size = 4 * max_concurrency  # keeps every connection busy between flushes
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_base_delay = retry_base_delay
        self.retry_max_delay = retry_max_delay
        self.outage_window_s = float(outage_window_s)
        self.image_format = image_format
        self.letter_scoring = letter_scoring
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        if chat_template is not None:
            # The config's template (e.g. LLaVA-Med's [INST] format) travels with every request, as the other
            # back ends apply it; vLLM and SGLang servers take a request-level `chat_template`.
            self.extra_body.setdefault("chat_template", chat_template)
        self.ignored_config = sorted(ignored)
        self._returns_logprobs = False  # set once a reply carries logprobs
        self.calls = 0  # HTTP attempts made, retries and probes included
        self._calls_lock = threading.Lock()
        self.letter_ids: dict[str, tuple[int, ...]] = {}  # from the server's /tokenize (letter_scoring=all)
        self._ids_lock = threading.Lock()
        self.server: dict[str, Any] = {}  # what the preflight learnt about the server (for the manifest)
        # BOS as the hf back end adds it (`_decide_bos`, at the preflight): request fields and how they were decided
        self._bos_fields: dict[str, Any] = {}
        self.bos: dict[str, Any] = {"add_special_tokens": None, "decided_by": "not yet (the preflight decides)"}
        self.outages: list[dict[str, Any]] = []  # every outage the run waited through
        self.text_only_probe = False  # set by preflight(text_only=True): probes carry no image (a judge)
        self._gate = OutageGate(self._probe_until_back)

        for client_log in ("httpx", "httpx2"):  # one INFO line per request would bury the run's own messages
            if logging.getLogger(client_log).level == logging.NOTSET:
                logging.getLogger(client_log).setLevel(logging.WARNING)
        self._openai = openai
        self._client = openai.OpenAI(api_key=api_key, base_url=self.base_url, timeout=timeout, max_retries=0,
                                     http_client=http_client)

    # -------- errors and secrets

    def _redact(self, text: str) -> str:
        """``text`` without the API key in it (some servers echo the Authorization header back)."""
        key = getattr(self._client, "api_key", None)
        if key and len(key) >= 4:
            text = text.replace(key, REDACTED)
        return text

    def _reason(self, exc: Any) -> str:
        return self._redact(server_reason(exc))

    def _connection_text(self, exc: BaseException) -> str:
        cause = exc.__cause__ or exc.__context__
        text = f"{type(exc).__name__}: {exc}" + (f" ({type(cause).__name__}: {cause})" if cause else "")
        return self._redact(text)[:500]

    def _auth_error(self, status: int, reason: str) -> ServerAuthError:
        source = f"the key in ${self.api_key_env}" if self.api_key_env else "no key (api_key_env: null)"
        return ServerAuthError(
            f"the server at {self.base_url} refused {source}: HTTP {status}: {reason}. Set "
            f"{'the variable' if self.api_key_env else 'model.openai.api_key_env'} to a key it accepts; "
            "the run stopped (its finished predictions are kept for a resume)", self.base_url)

    def _count(self) -> None:
        with self._calls_lock:
            self.calls += 1

    # -------- one request, with retries and outage handling

    def _create(self, label: str, request: dict, extra: Mapping[str, Any] | None = None) -> Any:
        openai = self._openai
        body = {**self._bos_fields, **self.extra_body, **(extra or {})} or None
        attempt = 0
        while True:
            epoch = self._gate.enter()  # waits while the server is being probed; raises once it is given up
            self._count()
            retry_after = None
            try:
                return self._client.chat.completions.create(**request, extra_body=body)
            except openai.APIStatusError as e:
                status, reason = e.status_code, self._reason(e)
                if status in AUTH_STATUS:
                    raise self._gate.fail(self._auth_error(status, reason)) from None
                if not (status in RETRYABLE_STATUS or status >= 500) or attempt >= self.max_retries:
                    raise APIRequestError(label, status, attempt + 1, reason, self.base_url) from None
                retry_after = _retry_after_seconds(e.response.headers if e.response is not None else None)
                what = f"HTTP {status}: {reason}"
            except openai.APIConnectionError as e:  # no connection, a dropped one, a timeout
                what = self._connection_text(e)
                self._gate.outage(epoch, what)  # back once the server answers again; raises if it never does
                if attempt >= self.max_retries:
                    raise APIRequestError(label, None, attempt + 1, what, self.base_url) from None
                attempt += 1
                log.warning("%s: item %s: %s; retry %d/%d", self.name, label, what, attempt, self.max_retries)
                continue
            delay = backoff_delay(attempt, self.retry_base_delay, self.retry_max_delay, retry_after)
            attempt += 1
            log.warning("%s: item %s: %s; retry %d/%d in %.2fs", self.name, label, what, attempt,
                        self.max_retries, delay)
            time.sleep(delay)

    def _probe_request(self) -> dict:
        """A small request that every working server answers: a 64 x 64 grey image (none for a judge, which is
        asked text only), a one-line question, one token; through the same prompt template and request fields as
        the items."""
        text_only = self.text_only_probe
        url = None if text_only else image_data_url(Image.new("RGB", (64, 64), (128, 128, 128)), self.image_format)
        item = Item(item_id="preflight", subset=None, dataset=0, modality="", area="", task="", image="",
                    image_path="", prompt="Which letter comes first in the alphabet?\nA: A\nB: B\n"
                    "Answer with the option's letter from the given choices directly.",
                    question="Which letter comes first in the alphabet?", options=(("A", "A"), ("B", "B")),
                    gold="A", answer_text="A", meta={TEXT_ONLY: True} if text_only else {})
        return generation_request(self.served_model, api_messages(item, self.template, url), 1, self.seed)

    def _probe_until_back(self, what: str) -> BaseException | None:
        """Probe the server with one small request at a time until it answers (None) or the outage window
        closes (`ServerUnreachable`); runs in the one thread that found the server gone."""
        openai = self._openai
        started = time.monotonic()
        deadline = started + self.outage_window_s
        log.warning("%s: the server at %s stopped answering (%s); all requests paused, probing it one request at "
                    "a time for up to %.0f s (model.openai.outage_window_s)", self.name, self.base_url, what,
                    self.outage_window_s)
        attempt, last = 0, what
        request = self._probe_request()
        while True:
            now = time.monotonic()
            if now >= deadline:
                self.outages.append({"waited_s": round(now - started, 3), "probes": attempt, "back": False})
                return ServerUnreachable(
                    f"the server at {self.base_url} stopped answering ({what}) and did not answer again within "
                    f"{self.outage_window_s:.0f} s (model.openai.outage_window_s; {attempt} probes, last: {last}); "
                    "the run stopped, its finished predictions are kept: run the same command to resume",
                    self.base_url)
            self._count()
            try:
                self._client.with_options(timeout=max(0.5, min(self.timeout, deadline - now))).chat.completions \
                    .create(**request, extra_body=self.extra_body or None)
                back = True
            except openai.APIStatusError as e:
                if e.status_code in AUTH_STATUS:
                    return self._auth_error(e.status_code, self._reason(e))
                back = not (e.status_code in RETRYABLE_STATUS or e.status_code >= 500)  # it answers
                last = f"HTTP {e.status_code}: {self._reason(e)}"
            except openai.APIConnectionError as e:
                back, last = False, self._connection_text(e)
            attempt += 1
            if back:
                waited = time.monotonic() - started
                self.outages.append({"waited_s": round(waited, 3), "probes": attempt, "back": True})
                log.warning("%s: the server at %s answers again after %.1f s; resuming", self.name, self.base_url,
                            waited)
                return None
            delay = backoff_delay(attempt - 1, self.retry_base_delay, min(self.retry_max_delay, PROBE_MAX_INTERVAL_S))
            time.sleep(max(0.0, min(delay, deadline - time.monotonic())))

    # -------- the preflight

    def preflight(self, mode: str, text_only: bool = False) -> None:
        """One request before the run fans out: the server answers, takes the key, serves the model and takes
        the request, and (``mode="likelihood"``) returns a log-probability for every option letter. Raises
        `ServerUnreachable`, `ServerAuthError`, `ServerRejected` or `UnsupportedScoring`, each naming the
        server and giving its reason; a 429 / 5xx answer (a busy or starting server) is retried as usual.
        ``text_only``: this adapter is asked text only (a judge), so neither this probe nor a later outage probe
        carries an image (a text-only model's server would refuse it)."""
        self.text_only_probe = bool(text_only)
        openai = self._openai
        request = self._probe_request()
        extra: dict[str, Any] = {}
        if mode == "likelihood":
            request = {**request, "logprobs": True}
            if self.letter_scoring == "all":
                ids = self._letter_token_ids(LETTERS)
                extra = letter_ids_fields([t for letter in ("A", "B") for t in ids[letter]])
            else:
                request["top_logprobs"] = self.top_logprobs
        attempt = 0
        while True:
            self._count()
            try:
                completion = self._client.chat.completions.create(**request,
                                                                  extra_body={**self.extra_body, **extra} or None)
                break
            except openai.APIStatusError as e:
                status, reason = e.status_code, self._reason(e)
                if status in AUTH_STATUS:
                    raise self._auth_error(status, reason) from None
                if (status in RETRYABLE_STATUS or status >= 500) and attempt < self.max_retries:
                    delay = backoff_delay(attempt, self.retry_base_delay, self.retry_max_delay,
                                          _retry_after_seconds(e.response.headers if e.response is not None else None))
                    log.warning("%s: preflight: HTTP %d from %s (%s); retry %d/%d in %.2fs", self.name, status,
                                self.base_url, reason, attempt + 1, self.max_retries, delay)
                    attempt += 1
                    time.sleep(delay)
                    continue
                raise self._rejected(status, reason, extra) from None
            except openai.APIConnectionError as e:
                raise ServerUnreachable(
                    f"no answer from the server at {self.base_url} ({self._connection_text(e)}): is it running, "
                    "and is model.openai.base_url right?", self.base_url) from None
        self.server = self._served_model_info()
        self._decide_bos(request["messages"])
        if mode != "likelihood":
            return
        content = _logprob_content(completion)
        if not content:
            raise UnsupportedScoring(
                f"the server at {self.base_url} returned no logprobs for the chat completion, so option "
                "likelihoods cannot be read; use scoring=generate with this server (vLLM and SGLang servers return "
                "them)")
        self._returns_logprobs = True
        if self.letter_scoring == "all":
            scores = letter_scores_by_id(completion, ("A", "B"), self.letter_ids, True)
            if not all(math.isfinite(v) for v in scores.values()):
                raise UnsupportedScoring(
                    f"the server at {self.base_url} did not return the log-probabilities of the option letters' "
                    "tokens it was asked for (logprob_token_ids, vLLM 0.32 or later), so letters outside its top "
                    "logprobs could not be scored; set model.openai.letter_scoring=top_k to read only the top "
                    "logprobs (letters outside them stay unscored, counted and reported)")

    def _rejected(self, status: int, reason: str, extra: Mapping[str, Any]) -> BaseException:
        hint = ""
        if status == 404:
            served = self._served_model_names()
            if served and self.served_model not in served:
                hint = (f"; it serves {', '.join(served[:10])}: set model.openai.served_model (or model.model_id) "
                        "to one of them")
        if extra and status in (400, 422):
            return UnsupportedScoring(
                f"the server at {self.base_url} refused a likelihood request that names the option letters' tokens "
                f"(logprob_token_ids): HTTP {status}: {reason}. Use vLLM 0.32 or later, or set "
                "model.openai.letter_scoring=top_k to read only the top logprobs (letters outside them stay "
                "unscored, counted and reported)")
        return ServerRejected(f"the server at {self.base_url} refused the first request (model "
                              f"{self.served_model!r}): HTTP {status}: {reason}{hint}", self.base_url)

    def _served_models(self) -> list[Any]:
        try:
            self._count()
            return list(self._client.models.list())
        except Exception:  # noqa: BLE001 - a server without /models: nothing to report
            return []

    def _served_model_names(self) -> list[str]:
        return [str(getattr(m, "id", "")) for m in self._served_models()]

    def _served_model_info(self) -> dict:
        for m in self._served_models():
            if getattr(m, "id", None) == self.served_model:
                info = m.model_dump() if hasattr(m, "model_dump") else {}
                keep = ("id", "root", "owned_by", "max_model_len", "parent")
                return {"model": {k: info.get(k) for k in keep if info.get(k) is not None}}
        return {}

    # -------- option letters as token ids

    def _letter_token_ids(self, letters: Sequence[str]) -> dict[str, tuple[int, ...]]:
        """Each letter's token ids, from the server's /tokenize, by the rule of the hf back end: "A" and " A"
        where each is one token (a lone leading space piece dropped) that reads as the letter."""
        with self._ids_lock:
            for letter in letters:
                if letter not in self.letter_ids:
                    self.letter_ids[letter] = self._tokenize_letter(letter)
            return {letter: self.letter_ids[letter] for letter in letters}

    def _tokenize(self, body: Mapping[str, Any], key_refusal_stops: bool = True) -> tuple[Any, str | None]:
        """POST ``body`` to the server's ``/tokenize`` (vLLM's, beside ``/v1``): ``(reply, None)``, or ``(None,
        why)`` when the server refuses it (no such endpoint: not a vLLM server). No answer at all stops the run as
        everywhere else, and so does a refused key unless ``key_refusal_stops`` is false (a gateway that guards
        paths it does not serve with a 401 / 403 after the chat endpoint took the key)."""
        openai = self._openai
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        self._count()
        try:
            reply = self._client.post(f"{root}/tokenize", cast_to=object,
                                      body={"model": self.served_model, **body})
        except openai.APIStatusError as e:
            if e.status_code in AUTH_STATUS and key_refusal_stops:
                raise self._auth_error(e.status_code, self._reason(e)) from None
            return None, f"{root}/tokenize: HTTP {e.status_code}: {self._reason(e)}"
        except openai.APIConnectionError as e:
            raise ServerUnreachable(f"no answer from the server at {root}/tokenize "
                                    f"({self._connection_text(e)})", self.base_url) from None
        tokens = reply.get("tokens") if isinstance(reply, Mapping) else None
        if not isinstance(tokens, list):
            return None, f"{root}/tokenize answered without a token list"
        return reply, None

    def _decide_bos(self, messages: list[dict]) -> None:
        """Whether the server must add the tokenizer's special tokens (BOS) to the rendered chat template, by
        the hf back end's rule: add them unless the template writes BOS itself. vLLM's chat endpoint never adds
        them (``add_special_tokens`` false), so a template that relies on the tokenizer's BOS (llava-hf's
        ``USER: ... ASSISTANT:``) would reach the model without one, and its answers and scores would differ
        from the hf and vllm back ends'. Decided once, through ``/tokenize``: the preflight's messages rendered
        without special tokens, and what the tokenizer adds to an empty text. ``model.openai.extra_body``'s own
        ``add_special_tokens`` wins; a server without ``/tokenize`` is left to its own default (recorded)."""
        if "add_special_tokens" in self.extra_body:
            self.bos = {"add_special_tokens": bool(self.extra_body["add_special_tokens"]),
                        "decided_by": "model.openai.extra_body"}
            return
        template = {"chat_template": self.extra_body["chat_template"]} if "chat_template" in self.extra_body else {}
        rendered, why = self._tokenize({"messages": messages, "add_generation_prompt": True,
                                        "add_special_tokens": False, **template}, key_refusal_stops=False)
        added, why_added = (self._tokenize({"prompt": "", "add_special_tokens": True}, key_refusal_stops=False)
                            if rendered is not None else (None, None))
        if rendered is None or added is None:
            self.bos = {"add_special_tokens": None, "decided_by": f"the server's default ({why or why_added})"}
            log.info("%s: %s; BOS is left to the server's default", self.name, why or why_added)
            return
        special, prompt = list(added["tokens"]), list(rendered["tokens"])
        add = bool(special) and prompt[:1] != special[:1]
        self._bos_fields = {"add_special_tokens": True} if add else {}
        self.bos = {"add_special_tokens": add, "tokenizer_adds": special,
                    "decided_by": "/tokenize: " + ("the template does not start with the tokenizer's BOS" if add else
                                                   "the template writes BOS itself" if special else
                                                   "the tokenizer adds no special tokens")}

    def _tokenize_letter(self, letter: str) -> tuple[int, ...]:
        root = self.base_url[: -len("/v1")] if self.base_url.endswith("/v1") else self.base_url
        ids: list[int] = []
        for text in (letter, " " + letter):
            reply, why = self._tokenize({"prompt": text, "add_special_tokens": False, "return_token_strs": True})
            if reply is None:
                raise UnsupportedScoring(
                    f"scoring=likelihood needs the option letters' token ids, and the server at {self.base_url} "
                    f"did not give them ({why}; vLLM's server has this endpoint); set "
                    "model.openai.letter_scoring=top_k to read only the top logprobs (letters outside them stay "
                    "unscored, counted and reported)")
            tokens = reply["tokens"]
            pieces = reply.get("token_strs")
            if isinstance(pieces, list) and len(pieces) == len(tokens):
                kept = [(t, p) for t, p in zip(tokens, pieces) if _token_text(str(p))]
                if len(kept) == 1 and _token_text(str(kept[0][1])) == letter and kept[0][0] not in ids:
                    ids.append(int(kept[0][0]))
            elif len(tokens) == 1 and tokens[0] not in ids:
                ids.append(int(tokens[0]))
        if not ids:
            raise UnsupportedScoring(f"the model's tokenizer (via {root}/tokenize) has no single token for option "
                                     f"letter {letter!r}")
        return tuple(ids)

    # -------- batches

    def _run(self, batch: Sequence[Item], build, extra_for=None) -> list[Any]:
        """One request an item on at most ``max_concurrency`` threads; results in input order."""

        def one(item: Item) -> Any:
            try:
                url = (None if is_text_only(item)  # a question put to a judge: its text alone
                       else image_data_url(load_rgb(item.image_path, self.pad_to_square), self.image_format))
                extra = extra_for(item) if extra_for else None
                return self._create(item.item_id, build(api_messages(item, self.template, url)), extra)
            except (APIRequestError, ImageLoadError, OSError, ValueError) as e:  # this item's request or image
                return ItemFailure(e)

        if len(batch) <= 1 or self.max_concurrency == 1:
            return [one(it) for it in batch]
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(batch)))
        try:
            return list(pool.map(one, batch))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # on an unexpected error, start no more requests

    def generate(self, batch: Sequence[Item]) -> list[str]:
        build = lambda msgs: generation_request(self.served_model, msgs, self.max_new_tokens, self.seed)
        return [c if isinstance(c, ItemFailure) else reply_text(c) for c in self._run(batch, build)]

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        by_id = self.letter_scoring == "all"
        if by_id:
            self._letter_token_ids(sorted({l for it in batch for l in it.letters}))
            build = lambda msgs: {**generation_request(self.served_model, msgs, 1, self.seed), "logprobs": True}
            extra_for = lambda it: letter_ids_fields([t for l in it.letters for t in self.letter_ids[l]])
        else:
            build = lambda msgs: likelihood_request(self.served_model, msgs, self.top_logprobs, self.seed)
            extra_for = None
        completions = self._run(batch, build, extra_for)
        # Once any reply has carried logprobs, one without them is that item's failure, not the server's.
        self._returns_logprobs = self._returns_logprobs or any(
            not isinstance(c, ItemFailure) and _logprob_content(c) for c in completions)
        out: list[Any] = []
        for it, c in zip(batch, completions):
            if isinstance(c, ItemFailure):
                out.append(c)
                continue
            try:
                out.append(letter_scores_by_id(c, it.letters, self.letter_ids, self._returns_logprobs) if by_id
                           else letter_scores(c, it.letters, self._returns_logprobs))
            except ReplyWithoutLogprobs as e:
                out.append(ItemFailure(e))
        return out

    def describe(self) -> dict:
        """The model's identity and everything that decides an answer (hashed into the resume key); where the
        server runs is not part of it (`runtime`)."""
        likelihood = ({"method": "chat logprobs of the first token: every option letter's token ids "
                                 "(logprob_token_ids), log-sum-exp over a letter's ids"} if self.letter_scoring == "all"
                      else {"method": "chat logprobs of the first token: the top-k entries that spell a letter",
                            "top_logprobs": self.top_logprobs})
        return {
            "kind": "model",
            "backend": "openai",
            "model_id": self.model_id,
            "revision": self.revision,
            "served_model": self.served_model,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy (temperature 0)",
            "seed": self.seed,
            "pad_to_square": self.pad_to_square,
            "image_format": self.image_format,
            "prompt": self.template.describe(),
            "likelihood": {"letter_scoring": self.letter_scoring, **likelihood},
            "bos": "the hf back end's rule (the tokenizer's special tokens unless the template writes BOS), "
                   "decided at the preflight through the server's /tokenize",
            "extra_body": {k: v for k, v in self.extra_body.items() if k != "chat_template"},
            "chat_template_sha256": (hashlib.sha256(self.extra_body["chat_template"].encode()).hexdigest()[:16]
                                     if "chat_template" in self.extra_body else None),
            "ignored_config": self.ignored_config,
        }

    def runtime(self) -> dict:
        """How the answers travel, not what they are: for the manifest, not the resume key."""
        return {"base_url": self.base_url, "api_key_env": self.api_key_env,  # the variable's name only
                "max_concurrency": self.max_concurrency, "timeout_s": self.timeout, "max_retries": self.max_retries,
                "retry_base_delay_s": self.retry_base_delay, "retry_max_delay_s": self.retry_max_delay,
                "outage_window_s": self.outage_window_s, "server": self.server, "bos": dict(self.bos),
                "letter_token_ids": {l: list(ids) for l, ids in sorted(self.letter_ids.items())},
                "outages": list(self.outages), "http_attempts": self.calls}

    def __repr__(self) -> str:
        return f"OpenAIAdapter(name={self.name!r}, model={self.served_model!r}, base_url={self.base_url!r})"
