"""The OpenAI-compatible back end: any chat-completions server (``vllm serve``, SGLang, hosted APIs).

Each item is one request: the image as a base64 data URL, then the item's text, in the same messages the
other back ends build (`chat_messages`); the server applies the model's chat template. Requests run on a
bounded thread pool and replies come back in input order.

Retries are ours, not the SDK's (its ``max_retries`` is set to 0), so that attempts are counted, logged and
bounded the same way everywhere: a 408, 409, 429 or 5xx answer, a timeout or a dropped connection is retried
with exponential backoff and jitter (a server's ``Retry-After`` is honoured up to ``retry_max_delay``). A
request that still fails raises `APIRequestError` naming the item and the status; other 4xx fail at once.

Likelihood scoring asks for one token with ``logprobs=True, top_logprobs=k``. A letter's score is the
log-sum-exp of the top-k entries whose text, stripped of whitespace, is the letter ("A", " A"); a letter not
among the top k scores ``-inf``. A server that returns no logprobs raises `UnsupportedScoring`.

``describe()`` (hashed into the resume key) holds what decides an answer; ``max_concurrency``, ``timeout`` and
``max_retries`` only decide speed and patience and are reported by `OpenAIAdapter.runtime` instead, so changing
them does not discard finished predictions. ``base_url`` stays in the key: another server may serve another
model under the same name.

A ``vllm serve`` / SGLang server fills unset request fields from the checkpoint's generation_config (Qwen2-VL:
``repetition_penalty`` 1.05), which the hf and vllm back ends do not apply. Start vLLM with
``--generation-config vllm`` or set ``extra_body: {repetition_penalty: 1.0}`` for answers comparable with them;
that field is not sent by default because hosted APIs reject it.

The API key is read once, in the constructor, from the environment variable named by ``api_key_env``; it is
handed to the SDK client and kept nowhere else: not in `describe`, ``repr`` or any log line.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import math
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from ..data.records import Item
from .base import ItemFailure, UnsupportedScoring
from .media import load_rgb
from .prompt import PromptTemplate, chat_messages

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'cgeval[openai]'  (from a checkout: pip install -e '.[openai]')"
RETRYABLE_STATUS = frozenset({408, 409, 429})  # and every 5xx


class OpenAINotInstalled(ImportError):
    """``backend: openai`` was selected but the ``openai`` extra is not installed."""


class MissingAPIKey(RuntimeError):
    """The environment variable named by ``api_key_env`` is not set."""


class APIRequestError(RuntimeError):
    """A request that still failed after its retries (or failed in a way retrying cannot fix)."""

    def __init__(self, item_id: str, status: int | None, attempts: int, detail: str):
        self.item_id = item_id
        self.status = status
        self.attempts = attempts
        what = f"HTTP {status}" if status is not None else "no response"
        super().__init__(f"request for item {item_id} failed after {attempts} attempt(s): {what}: {detail}")


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


def api_messages(item: Item, template: PromptTemplate, data_url: str) -> list[dict]:
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


# ---------------------------------------------------------------- result handling (pure)


def reply_text(completion: Any) -> str:
    if not completion.choices:
        return ""
    return completion.choices[0].message.content or ""


class ReplyWithoutLogprobs(RuntimeError):
    """One reply came back without logprobs (filtered, or with no choice) from a server that returns them:
    a failure of that item, counted and retried on resume, not of the run."""


def _logprob_content(completion: Any):
    choice = completion.choices[0] if completion.choices else None
    return choice.logprobs.content if choice is not None and choice.logprobs is not None else None


def letter_scores(completion: Any, letters: Sequence[str], server_returns_logprobs: bool = False) -> dict[str, float]:
    """``{letter: logprob}`` from the first generated token's top logprobs; absent letters score ``-inf``.

    A reply without logprobs is `ReplyWithoutLogprobs` (one item) when it was filtered or has no choice, or when
    the server is known to return them (``server_returns_logprobs``); otherwise the server does not return them
    at all: `UnsupportedScoring`, which stops the run."""
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
    candidates = [(t.token, t.logprob) for t in (first.top_logprobs or [])] + [(first.token, first.logprob)]
    seen: dict[str, float] = {}
    for token, logprob in candidates:
        seen.setdefault(token, float(logprob))  # the sampled token is usually among the top ones too
    scores = {}
    for letter in letters:
        values = [lp for tok, lp in seen.items() if _token_text(tok) == letter]
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


# ---------------------------------------------------------------- the adapter


class OpenAIAdapter:
    """Chat completions against an OpenAI-compatible server.

    Takes the common model config keys (``name``, ``model_id``, ``max_new_tokens``, ``prompt``,
    ``pad_to_square``, ``backends``, ...) and its own: ``base_url``, ``served_model`` (the model name the
    server knows, default ``model_id``), ``api_key_env`` (the *name* of the variable holding the key; ``null``
    for a local server without auth), ``max_concurrency``, ``timeout`` (seconds a request), ``max_retries``,
    ``retry_base_delay`` / ``retry_max_delay`` (seconds), ``image_format`` (png or jpeg), ``top_logprobs``,
    ``extra_body`` (server-specific request fields). A config ``chat_template`` is sent as the request's
    ``chat_template`` field (vLLM / SGLang servers), so the server renders the prompt as the other back ends do.
    ``http_client`` injects an ``httpx.Client`` (tests).
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
        image_format: str = "png",
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
        image_data_url(Image.new("RGB", (1, 1)), image_format)  # reject a bad format now, not mid-run
        openai = import_openai()

        if api_key_env:
            api_key = os.environ.get(api_key_env)
            if not api_key:
                raise MissingAPIKey(
                    f"model {name!r}: environment variable {api_key_env} is not set; set it to the server's key "
                    f"(any value, e.g. EMPTY, for a server without auth) or set model.api_key_env=null"
                )
        else:
            api_key = "EMPTY"  # the SDK insists on a key; a server without auth ignores it

        self.name = name
        self.model_id = model_id
        self.revision = revision
        self.base_url = base_url
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
        self.image_format = image_format
        self.top_logprobs = top_logprobs
        self.extra_body = dict(extra_body or {})
        if chat_template is not None:
            # The config's template (e.g. LLaVA-Med's [INST] format) travels with every request, as the other
            # back ends apply it; vLLM and SGLang servers take a request-level `chat_template`.
            self.extra_body.setdefault("chat_template", chat_template)
        self.ignored_config = sorted(ignored)
        self._returns_logprobs = False  # set once a reply carries logprobs
        self.calls = 0  # HTTP attempts made, retries included
        self._calls_lock = threading.Lock()

        self._errors = openai
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0,
                                     http_client=http_client)

    # -------- one request, with retries

    def _create(self, item: Item, request: dict) -> Any:
        openai = self._errors
        for attempt in range(self.max_retries + 1):
            with self._calls_lock:
                self.calls += 1
            retry_after = None
            try:
                return self._client.chat.completions.create(**request, extra_body=self.extra_body or None)
            except openai.APIStatusError as e:
                status, detail = e.status_code, e.message
                if not (status in RETRYABLE_STATUS or status >= 500) or attempt == self.max_retries:
                    raise APIRequestError(item.item_id, status, attempt + 1, detail) from e
                retry_after = _retry_after_seconds(e.response.headers if e.response is not None else None)
            except openai.APIConnectionError as e:  # timeouts included
                status, detail = None, f"{type(e).__name__}: {e}"
                if attempt == self.max_retries:
                    raise APIRequestError(item.item_id, None, attempt + 1, detail) from e
            delay = backoff_delay(attempt, self.retry_base_delay, self.retry_max_delay, retry_after)
            log.warning("%s: item %s: %s; retry %d/%d in %.2fs", self.name, item.item_id,
                        f"HTTP {status}" if status is not None else detail, attempt + 1, self.max_retries, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _run(self, batch: Sequence[Item], build) -> list[Any]:
        """One request an item on at most ``max_concurrency`` threads; results in input order."""

        def one(item: Item) -> Any:
            try:
                url = image_data_url(load_rgb(item.image_path, self.pad_to_square), self.image_format)
                return self._create(item, build(api_messages(item, self.template, url)))
            except (APIRequestError, OSError, ValueError) as e:  # this item's request or image, after retries
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
        build = lambda msgs: likelihood_request(self.served_model, msgs, self.top_logprobs, self.seed)
        completions = self._run(batch, build)
        # Once any reply has carried logprobs, one without them is that item's failure, not the server's.
        self._returns_logprobs = self._returns_logprobs or any(
            not isinstance(c, ItemFailure) and _logprob_content(c) for c in completions)
        out: list[Any] = []
        for it, c in zip(batch, completions):
            if isinstance(c, ItemFailure):
                out.append(c)
                continue
            try:
                out.append(letter_scores(c, it.letters, self._returns_logprobs))
            except ReplyWithoutLogprobs as e:
                out.append(ItemFailure(e))
        return out

    def describe(self) -> dict:
        return {
            "kind": "model",
            "backend": "openai",
            "model_id": self.model_id,
            "revision": self.revision,
            "served_model": self.served_model,
            "base_url": self.base_url,
            "api_key_env": self.api_key_env,  # the variable's name only, never its value
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy (temperature 0)",
            "seed": self.seed,
            "pad_to_square": self.pad_to_square,
            "image_format": self.image_format,
            "prompt": self.template.describe(),
            "likelihood": {"method": "chat logprobs of the first token", "top_logprobs": self.top_logprobs},
            "extra_body": {k: v for k, v in self.extra_body.items() if k != "chat_template"},
            "chat_template_sha256": (hashlib.sha256(self.extra_body["chat_template"].encode()).hexdigest()[:16]
                                     if "chat_template" in self.extra_body else None),
            "ignored_config": self.ignored_config,
        }

    def runtime(self) -> dict:
        """Settings that decide speed and patience, not answers: for the manifest, not the resume key."""
        return {"max_concurrency": self.max_concurrency, "timeout_s": self.timeout, "max_retries": self.max_retries,
                "retry_base_delay_s": self.retry_base_delay, "retry_max_delay_s": self.retry_max_delay}

    def __repr__(self) -> str:
        return f"OpenAIAdapter(name={self.name!r}, model={self.served_model!r}, base_url={self.base_url!r})"
