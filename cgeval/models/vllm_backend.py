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

BOS: vLLM's offline ``LLM.chat`` has tokenized the rendered template with ``add_special_tokens`` True for
multimodal models in some releases and False in others (vllm-project/vllm#55197, #55288), so a template that writes
BOS itself (Gemma 3, Llama 3.2 Vision, LLaVA-Med's ``[INST]`` template) got two, or a template that relies on the
tokenizer's BOS (llava-hf's ``USER: ... ASSISTANT:``) got none. The adapter decides it by the hf back end's rule
(the rendered template starts with BOS: add none; otherwise let the tokenizer add its own) and passes it as
``tokenization_kwargs`` on every call, so both back ends see the same tokens whatever the vLLM release.

``describe()`` (hashed into the resume key) holds what decides an answer; engine settings that only decide speed
or memory (`RUNTIME_ENGINE_KEYS`) are reported by `VLLMAdapter.runtime` instead, so changing them does not throw
away finished predictions. (Like the hf back end's batch size, they can move logits by float rounding only.)

vLLM is an optional extra, imported only when this adapter is constructed; the request construction and
result handling below are plain functions, tested on CPU with stand-in output objects.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

from PIL import Image

from ..data.records import LETTERS, Item
from .hf import LetterTokenError, letter_token_ids, sha256_text
from .media import image_uuid, load_item_images
from .prompt import PromptTemplate, chat_messages
from .weights import weights_fingerprint

log = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'cgeval[vllm]'  (from a checkout: pip install -e '.[vllm]')"

# Engine arguments that change throughput or memory, not answers: kept out of the resume key.
RUNTIME_ENGINE_KEYS = frozenset({"gpu_memory_utilization", "max_num_seqs", "max_num_batched_tokens",
                                 "enforce_eager", "enable_prefix_caching", "swap_space", "cpu_offload_gb",
                                 "disable_log_stats", "compilation_config", "enable_chunked_prefill",
                                 "mm_processor_cache_gb"})
# Set explicitly so that no default from a checkpoint's generation_config (Qwen2-VL ships
# repetition_penalty 1.05) can reach a request, whichever vLLM release merges what.
NEUTRAL_PENALTIES = {"repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "min_tokens": 0}


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


def vllm_messages(item: Item, template: PromptTemplate, image: Image.Image | None,
                  uuid: str | None = None) -> list[dict]:
    """`chat_messages` with the image placeholder carrying the item's image, as vLLM's ``LLM.chat`` takes it;
    ``uuid`` (`image_uuid`) names the image, so vLLM's multimodal caches key on it instead of hashing the pixels
    (a text-only item has no placeholder, and no image)."""
    messages = chat_messages(item, template)
    part_of_image = {"type": "image_pil", "image_pil": image, **({"uuid": uuid} if uuid is not None else {})}
    for message in messages:
        if isinstance(message["content"], list):
            message["content"] = [dict(part_of_image) if part.get("type") == "image" else part
                                  for part in message["content"]]
    return messages


def generation_params(max_new_tokens: int, seed: int) -> dict:
    """Greedy decoding with no penalties; the seed is passed although greedy decoding does not draw."""
    return {"temperature": 0.0, "max_tokens": max_new_tokens, "seed": seed, **NEUTRAL_PENALTIES}


def likelihood_params(letter_ids: Mapping[str, Sequence[int]], seed: int) -> dict:
    """One greedy token, with the log-probabilities of every option-letter token returned."""
    return {"temperature": 0.0, "max_tokens": 1, "seed": seed, **NEUTRAL_PENALTIES,
            "logprob_token_ids": sorted({t for ids in letter_ids.values() for t in ids})}


def template_writes_bos(rendered: str, bos_token: str | None) -> bool:
    """Whether a rendered chat template already starts with BOS (then the tokenizer must not add another)."""
    return bool(bos_token) and rendered.lstrip().startswith(bos_token)


def chat_add_special_tokens(tokenizer: Any, chat_template: str | None, template: PromptTemplate) -> bool | None:
    """The hf back end's rule for one rendering of the template: add the tokenizer's special tokens unless the
    template writes BOS itself. The template is the config's, else the tokenizer's; where neither is known here
    (a VLM whose template lives only in its processor) the answer is None: leave it to vLLM. A template that
    does not render with these stand-in messages is judged by its text (does it mention ``bos_token``)."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question?"}]}]
    if template.system:
        messages.insert(0, {"role": "system", "content": [{"type": "text", "text": template.system}]})
    bos = getattr(tokenizer, "bos_token", None)
    source = chat_template if chat_template is not None else getattr(tokenizer, "chat_template", None)
    if source is None:
        return None
    try:
        rendered = tokenizer.apply_chat_template(messages, chat_template=source, tokenize=False,
                                                 add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that wants other message shapes: judge by its text
        return "bos_token" not in source
    return not template_writes_bos(rendered, bos)


# ---------------------------------------------------------------- result handling (pure)


def image_attention(llm: Any) -> str | None:
    """For a model trained with bidirectional attention over each image's tokens (vLLM's "mm-prefix" models:
    Gemma 3), how this engine attends over them: "bidirectional", or "causal" where the attention back end cannot
    (vLLM's CPU attention); None for every other model, or when the installed vLLM does not say."""
    try:
        if not llm.llm_engine.model_config.is_mm_prefix_lm:
            return None
        from vllm.platforms import current_platform

        if current_platform.is_cpu():
            from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

            return "bidirectional" if CPUAttentionBackend.supports_mm_prefix() else "causal"
        return "bidirectional"
    except (AttributeError, ImportError):
        return None


def _check_count(outputs: Sequence[Any], batch: Sequence[Item]) -> None:
    if len(outputs) != len(batch):
        raise RuntimeError(f"vLLM returned {len(outputs)} outputs for {len(batch)} requests")


def replies_from_outputs(outputs: Sequence[Any], batch: Sequence[Item]) -> list[str]:
    """The text of each request's first completion, stripped as the hf back end strips its replies; an output
    without a completion is an empty reply, which the scorer counts as a parse failure."""
    _check_count(outputs, batch)
    return [out.outputs[0].text.strip() if out.outputs else "" for out in outputs]


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
        mm_processor_cache_gb: float | None = 4.0,
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
        # "auto" means what it means on the hf back end on a GPU: bfloat16. (vLLM's own "auto" keeps a checkpoint's
        # float16, llava-1.5's for one, so the two back ends would otherwise compute in different precisions.)
        self.dtype = "bfloat16" if dtype in (None, "auto") else dtype
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
        self._prompts: dict[str, str | None] = {}

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
        # The multimodal processor cache (vLLM >= 0.10): an image asked again (the rotations of a circular run)
        # is not processed again. Its key is the image's uuid (`image_uuid`), passed with every image.
        engine_args_cls = getattr(self._vllm, "EngineArgs", None)
        engine_fields = ({f.name for f in dataclasses.fields(engine_args_cls)}
                         if dataclasses.is_dataclass(engine_args_cls) else set())
        self.image_uuids = "mm_processor_cache_gb" in engine_fields
        if mm_processor_cache_gb is not None and self.image_uuids:
            self.engine_args["mm_processor_cache_gb"] = float(mm_processor_cache_gb)
        self.engine_args.update(engine_kwargs or {})

        self.weights_fingerprint = weights_fingerprint(path)  # a local folder: its weights, for the resume key
        self.llm = self._vllm.LLM(**self.engine_args)
        # Resolved now, so the manifest records them; a model whose letters are not single tokens can still
        # generate, and fails only when asked for likelihoods.
        self._letter_ids: dict[str, tuple[int, ...]] | None = None
        self._letter_error: LetterTokenError | None = None
        tokenizer = self.llm.get_tokenizer()
        try:
            self._letter_ids = letter_token_ids(tokenizer)
        except LetterTokenError as e:
            self._letter_error = e
        self.add_special_tokens = chat_add_special_tokens(tokenizer, chat_template, self.template)
        self.image_attention = image_attention(self.llm)
        if self.image_attention == "causal":
            log.warning("%s: this vLLM engine (CPU attention) attends causally over the image tokens, which the "
                        "model was trained to attend to bidirectionally (Gemma 3); its scores differ from the hf "
                        "back end's and from vLLM on a GPU", name)
        import inspect

        self._chat_takes_tokenization_kwargs = "tokenization_kwargs" in inspect.signature(self.llm.chat).parameters
        if self.add_special_tokens is None:
            log.warning("%s: no chat template to check for BOS here; BOS handling is vLLM's own", name)
        elif not self._chat_takes_tokenization_kwargs:
            log.warning("%s: this vLLM's LLM.chat takes no tokenization_kwargs; BOS handling is vLLM's own "
                        "(add_special_tokens=%s wanted)", name, self.add_special_tokens)
            self.add_special_tokens = None

    @property
    def letter_ids(self) -> dict[str, tuple[int, ...]]:
        if self._letter_ids is None:
            assert self._letter_error is not None
            raise self._letter_error
        return self._letter_ids

    def _chat(self, batch: Sequence[Item], params: Any) -> list[Any]:
        images = load_item_images(batch, self.pad_to_square, self.image_workers)  # each file decoded once
        conversations = [vllm_messages(it, self.template, im,
                                       image_uuid(it.image_path, self.pad_to_square)
                                       if self.image_uuids and im is not None else None)
                         for it, im in zip(batch, images)]
        extra = ({"tokenization_kwargs": {"add_special_tokens": self.add_special_tokens}}
                 if self.add_special_tokens is not None else {})
        outputs = self.llm.chat(conversations, params, use_tqdm=self.use_tqdm, chat_template=self.chat_template,
                                **extra)
        # The text vLLM rendered from the chat template (image placeholders as the template writes them), for
        # the predictions' ``prompt``; releases that keep only the token ids leave it None.
        self._prompts = {it.item_id: getattr(out, "prompt", None) for it, out in zip(batch, outputs)}
        return outputs

    def prompt_text(self, item: Item) -> str | None:
        """The prompt vLLM rendered for ``item`` in the latest call that asked it (None before that)."""
        return self._prompts.get(item.item_id)

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
            "weights_fingerprint": self.weights_fingerprint,
            "trust_remote_code": self.trust_remote_code,
            "max_new_tokens": self.max_new_tokens,
            "decoding": {"greedy": True, **NEUTRAL_PENALTIES},
            "add_special_tokens": "vllm default" if self.add_special_tokens is None else self.add_special_tokens,
            "pad_to_square": self.pad_to_square,
            "chat_template_source": "config" if self.chat_template is not None else "checkpoint",
            "chat_template_sha256": sha256_text(self.chat_template),
            **({"image_attention": self.image_attention} if self.image_attention else {}),
            "prompt": self.template.describe(),
            "engine": {k: v for k, v in self.engine_args.items() if k != "model" and k not in RUNTIME_ENGINE_KEYS},
            "likelihood": {"method": "logprob_token_ids, one generated token",
                           "letter_token_ids": ({l: list(ids) for l, ids in self._letter_ids.items()}
                                                if self._letter_ids else None),
                           "unavailable": None if self._letter_error is None else str(self._letter_error)},
            "ignored_config": self.ignored_config,
        }

    def runtime(self) -> dict:
        """Engine settings that decide speed and memory, not answers: for the manifest, not the resume key."""
        return {k: v for k, v in self.engine_args.items() if k in RUNTIME_ENGINE_KEYS}

    def __repr__(self) -> str:
        return f"VLLMAdapter(name={self.name!r}, model={self.engine_args['model']!r})"
