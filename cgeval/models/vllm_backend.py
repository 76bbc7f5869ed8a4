"""The vLLM back end: offline ``vllm.LLM``, every item of a batch in one ``LLM.chat`` call.

vLLM schedules and batches the requests itself, so the harness's batch is handed over whole: the larger the
batch, the fuller the engine. Images go in as PIL images inside OpenAI-style messages
(``{"type": "image_pil"}``), so the prompt is the model's own chat template, rendered by vLLM, with the same
messages the other back ends build (`chat_messages`).

Likelihood scoring generates one token and asks vLLM for the log-probabilities of the option-letter tokens
(``SamplingParams.logprob_token_ids``, vLLM >= 0.33): the full-vocabulary log-softmax of the next-token logits,
gathered at the letters' ids, before any sampling restriction; no ``prompt_logprobs``. Letters map to token ids
by the hf back end's rule (`letter_token_ids`: "A" and " A" where single tokens, summed in probability), so
both back ends score the same quantity. A letter whose log-probabilities do not come back scores ``-inf`` and
is listed in `VLLMAdapter.unscored` and logged.

vLLM is an optional extra, imported only when this adapter is constructed; the request construction and
result handling below are plain functions, tested on CPU with stand-in output objects.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from ..data.records import LETTERS, Item
from .hf import LetterTokenError, letter_token_ids, sha256_text
from .media import load_item_images
from .prompt import PromptTemplate, chat_messages

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'cgeval[vllm]'  (from a checkout: pip install -e '.[vllm]')"


class VLLMNotInstalled(ImportError):
    """``backend: vllm`` was selected but the ``vllm`` extra is not installed."""


def import_vllm():
    try:
        import vllm
    except ImportError as e:
        raise VLLMNotInstalled(
            f"model back end 'vllm' needs the vllm extra, which is not installed: {INSTALL_HINT}. "
            f"(import vllm failed: {e})"
        ) from e
    return vllm


# ---------------------------------------------------------------- request construction (pure)


def vllm_messages(item: Item, template: PromptTemplate, image: Image.Image) -> list[dict]:
    """`chat_messages` with the image placeholder carrying the item's image, as vLLM's ``LLM.chat`` takes it."""
    messages = chat_messages(item, template)
    for message in messages:
        if isinstance(message["content"], list):
            message["content"] = [
                {"type": "image_pil", "image_pil": image} if part.get("type") == "image" else part
                for part in message["content"]
            ]
    return messages


def generation_params(max_new_tokens: int, seed: int) -> dict:
    """Greedy decoding; the seed is passed although greedy decoding does not draw."""
    return {"temperature": 0.0, "max_tokens": max_new_tokens, "seed": seed}


def likelihood_params(letter_ids: Mapping[str, Sequence[int]], seed: int) -> dict:
    """One greedy token, with the log-probabilities of every option-letter token returned."""
    return {"temperature": 0.0, "max_tokens": 1, "seed": seed,
            "logprob_token_ids": sorted({t for ids in letter_ids.values() for t in ids})}


# ---------------------------------------------------------------- result handling (pure)


def _check_count(outputs: Sequence[Any], batch: Sequence[Item]) -> None:
    if len(outputs) != len(batch):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(batch)} requests")


def replies_from_outputs(outputs: Sequence[Any], batch: Sequence[Item]) -> list[str]:
    """The text of each request's first completion; an output without a completion is an empty reply,
    which the scorer counts as a parse failure."""
    _check_count(outputs, batch)
    return [out.outputs[0].text if out.outputs else "" for out in outputs]


def _logprob_value(entry: Any) -> float:
    # vLLM gives `Logprob` objects; accept bare floats too.
    return float(getattr(entry, "logprob", entry))


def letter_logprobs(output: Any, letters: Sequence[str],
                    letter_ids: Mapping[str, Sequence[int]]) -> tuple[dict[str, float], list[str]]:
    """``({letter: logprob}, letters not fully scored)`` for one request's first generated token.

    A letter's score is the log-sum-exp over its token ids ("A" and " A" where both are single tokens; the rule
    of `letter_token_ids`, shared with the hf back end). An id whose logprob did not come back (or came back NaN)
    is left out and its letter listed; a letter with none of its ids back scores ``-inf``.
    """
    position: Mapping[int, Any] = {}
    if output.outputs and output.outputs[0].logprobs:
        position = output.outputs[0].logprobs[0] or {}
    scores: dict[str, float] = {}
    missing: list[str] = []
    for letter in letters:
        values = []
        for tid in letter_ids[letter]:
            entry = position.get(tid)
            value = _logprob_value(entry) if entry is not None else math.nan
            if not math.isnan(value):
                values.append(value)
        if len(values) < len(letter_ids[letter]):
            missing.append(letter)
        scores[letter] = _logsumexp(values)
    return scores, missing


def _logsumexp(values: Sequence[float]) -> float:
    if not values:
        return -math.inf
    top = max(values)
    if top == -math.inf:
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))


# ---------------------------------------------------------------- the adapter


class VLLMAdapter:
    """Offline vLLM engine behind the batch-first adapter interface.

    Takes the common model config keys (``name``, ``model_id``, ``revision``, ``path`` for local weights,
    ``dtype``, ``max_new_tokens``, ``trust_remote_code``, ``prompt``, ``pad_to_square``, ``backends``) and the
    vLLM ones below. Keys that mean nothing to vLLM (``device``, ``device_map``, ``model_class``, ...) are
    accepted, ignored and listed under ``ignored_config`` in `describe`.
    """

    # vLLM schedules a large request list itself; the harness still flushes predictions after each call.
    preferred_batch_size = 1024

    def __init__(
        self,
        name: str,
        model_id: str,
        revision: str | None = None,
        path: str | None = None,
        backend: str = "vllm",
        backends: Sequence[str] | None = None,
        dtype: str | None = None,
        max_new_tokens: int = 16,
        trust_remote_code: bool = False,
        prompt: Mapping[str, Any] | None = None,
        pad_to_square: bool = False,
        seed: int = 0,
        tensor_parallel_size: int = 1,
        max_model_len: int | None = 4096,
        gpu_memory_utilization: float = 0.9,
        enable_prefix_caching: bool = True,
        max_num_seqs: int | None = None,
        enforce_eager: bool = False,
        chat_template: str | None = None,
        mm_processor_kwargs: Mapping[str, Any] | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
        image_workers: int = 8,
        use_tqdm: bool = True,
        **ignored: Any,
    ):
        if backends is not None and "vllm" not in backends:
            raise ValueError(f"model {name!r} does not list 'vllm' among its back ends {list(backends)}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self._vllm = import_vllm()

        self.name = name
        self.model_id = model_id
        self.revision = revision
        self.path = path
        self.dtype = dtype or "auto"
        self.max_new_tokens = max_new_tokens
        self.trust_remote_code = trust_remote_code
        self.template = PromptTemplate(**(prompt or {}))
        self.pad_to_square = pad_to_square
        self.seed = seed
        self.chat_template = chat_template
        self.image_workers = image_workers
        self.use_tqdm = use_tqdm
        self.ignored_config = sorted(ignored)
        self.unscored: dict[str, list[str]] = {}

        self.engine_args: dict[str, Any] = {
            "model": path or model_id,
            "revision": None if path else revision,
            "dtype": self.dtype,
            "trust_remote_code": trust_remote_code,
            "seed": seed,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "enable_prefix_caching": enable_prefix_caching,
            "limit_mm_per_prompt": {"image": 1},
            "enforce_eager": enforce_eager,
        }
        if max_num_seqs is not None:
            self.engine_args["max_num_seqs"] = max_num_seqs
        if mm_processor_kwargs:
            self.engine_args["mm_processor_kwargs"] = dict(mm_processor_kwargs)
        self.engine_args.update(engine_kwargs or {})

        self.llm = self._vllm.LLM(**self.engine_args)
        # Resolved now, so the manifest records them; a model whose letters are not single tokens can still
        # generate, and fails only when asked for likelihoods.
        self._letter_ids: dict[str, tuple[int, ...]] | None = None
        self._letter_error: LetterTokenError | None = None
        try:
            self._letter_ids = letter_token_ids(self.llm.get_tokenizer())
        except LetterTokenError as e:
            self._letter_error = e

    @property
    def letter_ids(self) -> dict[str, tuple[int, ...]]:
        if self._letter_ids is None:
            assert self._letter_error is not None
            raise self._letter_error
        return self._letter_ids

    def _chat(self, batch: Sequence[Item], params: Any) -> list[Any]:
        images = load_item_images(batch, self.pad_to_square, self.image_workers)
        conversations = [vllm_messages(it, self.template, im) for it, im in zip(batch, images)]
        return self.llm.chat(conversations, params, use_tqdm=self.use_tqdm, chat_template=self.chat_template)

    def generate(self, batch: Sequence[Item]) -> list[str]:
        if not batch:
            return []
        params = self._vllm.SamplingParams(**generation_params(self.max_new_tokens, self.seed))
        return replies_from_outputs(self._chat(batch, params), batch)

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        if not batch:
            return []
        letter_ids = self.letter_ids
        for it in batch:
            unknown = set(it.letters) - set(letter_ids)
            if unknown:
                raise LetterTokenError(f"item {it.item_id} has option letters {sorted(unknown)} outside {LETTERS}")
        params = self._vllm.SamplingParams(**likelihood_params(letter_ids, self.seed))
        outputs = self._chat(batch, params)
        _check_count(outputs, batch)
        scores = []
        for it, out in zip(batch, outputs):
            s, missing = letter_logprobs(out, it.letters, letter_ids)
            if missing:
                self.unscored[it.item_id] = missing
                log.warning("%s: no logprob for option(s) %s of item %s; scored -inf", self.name, missing, it.item_id)
            scores.append(s)
        return scores

    def describe(self) -> dict:
        return {
            "kind": "model",
            "backend": "vllm",
            "vllm_version": getattr(self._vllm, "__version__", None),
            "model_id": self.model_id,
            "revision": self.revision,
            "path": self.path,
            "trust_remote_code": self.trust_remote_code,
            "max_new_tokens": self.max_new_tokens,
            "decoding": "greedy",
            "pad_to_square": self.pad_to_square,
            "chat_template_source": "config" if self.chat_template is not None else "checkpoint",
            "chat_template_sha256": sha256_text(self.chat_template),
            "prompt": self.template.describe(),
            "engine": {k: v for k, v in self.engine_args.items() if k != "model"},
            "likelihood": {"method": "logprob_token_ids, one generated token",
                           "letter_token_ids": ({l: list(ids) for l, ids in self._letter_ids.items()}
                                                if self._letter_ids else None),
                           "unavailable": None if self._letter_error is None else str(self._letter_error)},
            "ignored_config": self.ignored_config,
        }

    def __repr__(self) -> str:
        return f"VLLMAdapter(name={self.name!r}, model={self.engine_args['model']!r})"
