"""Hugging Face transformers back end: batched generation and option-letter likelihoods for any image-text model.

torch and transformers are imported when an adapter is built, not when this module is imported.

Batching does not change an answer: prompts are padded on the LEFT (so the last position of every row is its
real last token), the attention mask covers the padding, and each image is processed on its own (the
processors handle per-image sizes / grids). In float32 (the CPU default) batched and single-item scores agree to
about 1e-6 (tested). In bfloat16 (the GPU default) they agree only to its rounding, about 1e-3 in log-probability,
which can flip a near-tie: for bit-exact comparisons across batch sizes use ``dtype: float32`` or batch size 1.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..data.records import LETTERS, Item
from .hub import ensure_hub_reachable
from .media import ImageLoadError, image_size, load_item_images
from .prompt import PromptTemplate, chat_messages
from .weights import weights_fingerprint

__all__ = ["HFAdapter", "ImageLoadError", "LetterTokenError", "ModelLoadError", "PreparedBatch", "letter_token_ids"]

DTYPES = ("auto", "float32", "bfloat16", "float16")

# Every generation setting that can change which token is chosen, set to its neutral value. A checkpoint's
# generation_config.json is otherwise merged into every ``generate`` call: Qwen2-VL / Qwen2.5-VL (and models
# fine-tuned from them, e.g. Lingshu) ship ``repetition_penalty: 1.05``, which silently penalises the option
# letters (they all occur in the prompt), and a checkpoint may also carry beams, n-gram bans, minimum lengths or
# suppressed tokens. vLLM's offline engine ignores those files for SamplingParams we build ourselves, so without
# this the hf and vllm back ends would answer differently. Only the stop tokens (eos / pad) are taken from it.
NEUTRAL_DECODING: dict[str, Any] = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "num_return_sequences": 1,
    "penalty_alpha": None,  # contrastive search when set with top_k > 1
    "repetition_penalty": 1.0,
    "encoder_repetition_penalty": 1.0,
    "no_repeat_ngram_size": 0,
    "encoder_no_repeat_ngram_size": 0,
    "min_length": 0,
    "min_new_tokens": None,
    "bad_words_ids": None,
    "sequence_bias": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "forced_bos_token_id": None,
    "forced_eos_token_id": None,
    "exponential_decay_length_penalty": None,
    "guidance_scale": None,
    "constraints": None,
    "force_words_ids": None,
    "dola_layers": None,
    "renormalize_logits": False,
    "watermarking_config": None,
}
# Sampling filters: all off for greedy decoding; for sampling only temperature and top_p (from our config) apply,
# never a checkpoint's top_k (Qwen2-VL ships top_k: 1, which would make "sampling" greedy).
SAMPLING_FILTERS = ("temperature", "top_k", "top_p", "min_p", "typical_p", "top_h", "epsilon_cutoff", "eta_cutoff")


def decoding_settings(max_new_tokens: int, do_sample: bool, temperature: float, top_p: float) -> dict[str, Any]:
    """The complete set of ``generate`` keyword arguments that decide the reply (see `NEUTRAL_DECODING`).

    Keys the installed transformers' ``GenerationConfig`` does not know are dropped (``generate`` would otherwise
    hand them to the model's forward)."""
    from transformers import GenerationConfig

    settings: dict[str, Any] = {"max_new_tokens": int(max_new_tokens), "do_sample": bool(do_sample),
                                **NEUTRAL_DECODING, **{k: None for k in SAMPLING_FILTERS}}
    if do_sample:
        settings.update(temperature=float(temperature), top_p=float(top_p))
    known = GenerationConfig()
    return {k: v for k, v in settings.items() if k in ("max_new_tokens", "do_sample") or hasattr(known, k)}


def stop_token_ids(generation_config: Any, tokenizer: Any) -> list[int] | None:
    """Every EOS id the checkpoint's generation_config names plus the tokenizer's, sorted; None if neither has one."""
    ids: set[int] = set()
    for value in (getattr(generation_config, "eos_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if value is None:
            continue
        ids.update(int(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
    return sorted(ids) or None


class ModelLoadError(RuntimeError):
    """The model or its processor could not be loaded (no weights at the path, hub unreachable, wrong class)."""


class LetterTokenError(ValueError):
    """The tokenizer has no single token for an option letter, so letter likelihoods are undefined."""


def sha256_text(text: str | None) -> str | None:
    return None if text is None else hashlib.sha256(text.encode()).hexdigest()[:16]


def letter_token_ids(tokenizer, letters: Sequence[str] = LETTERS) -> dict[str, tuple[int, ...]]:
    """For each letter, the ids of the single tokens that spell it as the start of a reply.

    A reply may begin with the bare letter ("A", what ChatML templates ending in "assistant\\n" lead to) or
    with a space-prefixed one (" A" / "▁A", what "ASSISTANT:" or "[/INST]" lead to). Both variants that encode
    to exactly one token (after dropping a lone leading space piece some SentencePiece tokenizers emit) are
    kept, and the letter's score is the log of their summed probability: the probability that the reply
    starts with that letter, whichever way the tokenizer writes it. The rule is the same for every letter,
    so it favours none.
    """
    out: dict[str, tuple[int, ...]] = {}
    for letter in letters:
        ids: list[int] = []
        for text in (letter, " " + letter):
            toks = tokenizer.encode(text, add_special_tokens=False)
            toks = [t for t in toks if tokenizer.decode([t]).strip()]
            if len(toks) == 1 and tokenizer.decode(toks).strip() == letter and toks[0] not in ids:
                ids.append(toks[0])
        if not ids:
            raise LetterTokenError(f"the tokenizer has no single token for option letter {letter!r}")
        out[letter] = tuple(ids)
    return out


@dataclass(frozen=True)
class PreparedBatch:
    """A batch's model inputs (images decoded, processed and tokenized, on the model's device), made by
    `HFAdapter.prepare`, possibly on a background thread while the previous batch runs on the device."""

    item_ids: tuple[str, ...]
    inputs: Any  # transformers' BatchFeature


IMAGE_PROCESSOR_BACKENDS = {True: "torchvision", False: "pil"}


class HFAdapter:
    """A transformers image-text model, asked one batch at a time.

    ``path`` (local weights) wins over ``model_id`` (hub id, at ``revision``). ``dtype``/``device`` "auto" mean
    bf16 on a GPU, fp32 on the CPU; ``device_map`` (e.g. "auto") spreads a model over several GPUs instead.
    ``prompt`` optionally overrides the shared prompt ({"template": ..., "system": ...}); ``chat_template``
    optionally replaces the checkpoint's own template (e.g. LLaVA-Med's original ``[INST]`` format). Both
    are recorded, with their hashes, in ``describe()``.

    Speed settings (recorded by ``runtime()``, not in the resume key, except the image processor, which changes
    pixel values by resampling rounding and is in ``describe()``):
    ``prefetch_batches`` batches ahead are prepared (decoded, processed, tokenized) on ``preprocess_workers``
    background threads while the device runs the current one (0: one after the other); ``fast_image_processor``
    picks transformers' torch-based image processor (true, the default; on the model's GPU when it has one) or
    the PIL / NumPy one (false), null keeps whatever transformers picks; ``group_by_length`` batches items of
    similar image size and prompt length together (less padding; the run writes its rows in the same canonical
    order either way).
    """

    def __init__(
        self,
        name: str,
        model_id: str | None = None,
        revision: str | None = None,
        path: str | None = None,
        backends: Sequence[str] = ("hf",),
        model_class: str = "AutoModelForImageTextToText",
        dtype: str = "auto",
        device: str = "auto",
        device_map: str | dict | None = None,
        attn_implementation: str | None = None,
        max_new_tokens: int = 16,
        do_sample: bool = False,
        temperature: float = 1.0,
        top_p: float = 1.0,
        seed: int = 0,
        trust_remote_code: bool = False,
        prompt: dict | None = None,
        chat_template: str | None = None,
        pad_to_square: bool = False,
        processor_kwargs: dict | None = None,
        image_workers: int = 4,
        prefetch_batches: int = 1,
        preprocess_workers: int = 1,
        fast_image_processor: bool | None = True,
        group_by_length: bool = True,
        tiny_replica: bool = False,
    ):
        import torch
        import transformers

        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        self.name = name
        self.model_id = model_id
        self.revision = revision
        self.path = path
        self.backends = list(backends)
        self.max_new_tokens = int(max_new_tokens)
        self.do_sample = bool(do_sample)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.seed = int(seed)
        self.trust_remote_code = bool(trust_remote_code)
        self.prompt = PromptTemplate(**prompt) if prompt else PromptTemplate()
        self.pad_to_square = bool(pad_to_square)
        self.processor_kwargs = dict(processor_kwargs or {})
        self.image_workers = int(image_workers)
        if int(prefetch_batches) < 0 or int(preprocess_workers) < 1:
            raise ValueError(f"prefetch_batches must be >= 0 and preprocess_workers >= 1, got {prefetch_batches} "
                             f"and {preprocess_workers}")
        self.prefetch_batches = int(prefetch_batches)
        self.preprocess_workers = int(preprocess_workers)
        self.group_by_length = bool(group_by_length)
        self.tiny_replica = bool(tiny_replica)
        self.device_map = device_map
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        if dtype == "auto":
            on_cpu = device_map == "cpu" or (device == "cpu" and device_map is None)
            dtype = "float32" if on_cpu else "bfloat16"
        self.dtype = dtype
        self.torch_dtype = getattr(torch, dtype)

        source = path if path is not None else model_id
        if source is None:
            raise ModelLoadError(f"model {name!r}: set model_id (a hub id) or path (a local folder)")
        load_kwargs: dict[str, Any] = {}
        if path is None and revision is not None:
            load_kwargs["revision"] = revision
        # Always passed, so false means false: left unset, transformers asks on a terminal whether to run a
        # folder's custom code (auto_map). Recorded in describe().
        load_kwargs["trust_remote_code"] = self.trust_remote_code
        model_cls = getattr(transformers, model_class, None)
        if model_cls is None or not hasattr(model_cls, "from_pretrained"):
            raise ModelLoadError(f"model {name!r}: transformers has no model class {model_class!r}")
        model_kwargs: dict[str, Any] = {"dtype": self.torch_dtype, **load_kwargs}
        if device_map is not None:
            model_kwargs["device_map"] = device_map
        self.attn_implementation = attn_implementation
        if attn_implementation is not None:
            model_kwargs["attn_implementation"] = attn_implementation
        if path is None:  # no network: fail in seconds, not after minutes of hub retries
            ensure_hub_reachable(name, model_id, revision)
        try:
            # The config first: AutoProcessor swallows the config's refusal to run custom code into a vaguer error.
            transformers.AutoConfig.from_pretrained(source, **load_kwargs)
            self.processor = transformers.AutoProcessor.from_pretrained(source, **load_kwargs,
                                                                       **self.processor_kwargs)
            if fast_image_processor is not None and hasattr(self.processor, "image_processor"):
                # Only the image processor: passing a backend to AutoProcessor would reach the video processor
                # too, which has no PIL variant.
                wanted = IMAGE_PROCESSOR_BACKENDS[bool(fast_image_processor)]
                if getattr(self.processor.image_processor, "backend", None) != wanted:
                    self.processor.image_processor = transformers.AutoImageProcessor.from_pretrained(
                        source, backend=wanted, **load_kwargs)
            self.model = model_cls.from_pretrained(source, **model_kwargs)
        except (OSError, ValueError, KeyError, ImportError) as e:
            where = f"local path {path}" if path is not None else f"hub id {model_id} (revision {revision or 'latest'})"
            raise ModelLoadError(f"model {name!r}: cannot load {model_class} from {where}: {e}") from e
        self.weights_fingerprint = weights_fingerprint(path)  # a local folder: its weights, for the resume key
        if device_map is None:
            self.model.to(device)
        self.model.eval()
        image_processor = getattr(self.processor, "image_processor", None)
        self.image_processor_backend = getattr(image_processor, "backend", None)
        # The torch-based processor works on the model's GPU when it has one (a model spread by device_map: its
        # first device); the PIL one always on the CPU.
        model_device = getattr(self.model, "device", None)
        on_gpu = model_device is not None and getattr(model_device, "type", "cpu") != "cpu"
        self.processor_device = str(model_device) if on_gpu and self.image_processor_backend == "torchvision" else None
        self._owner_thread = threading.get_ident()
        self._thread_local = threading.local()
        self._pad_tokens = 0
        self._all_tokens = 0

        self.tokenizer = self.processor.tokenizer
        self.tokenizer.padding_side = "left"  # the last position is then every row's real last token
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.chat_template_source = "config" if chat_template is not None else "checkpoint"
        self.chat_template = chat_template if chat_template is not None else self.processor.chat_template
        if self.chat_template is None:
            raise ModelLoadError(f"model {name!r}: the processor has no chat template; set chat_template in the config")
        self._check_template_renders()
        self.letter_ids = letter_token_ids(self.tokenizer)
        # LLaVA's expand2square fills with the vision tower's own mean colour (truncated, as the original does).
        mean = getattr(getattr(self.processor, "image_processor", None), "image_mean", None) or (0.5, 0.5, 0.5)
        self.pad_fill = tuple(int(255 * m) for m in mean)
        self._keeps_last_logits = "logits_to_keep" in _forward_params(self.model)
        self.decoding = decoding_settings(self.max_new_tokens, self.do_sample, self.temperature, self.top_p)
        # When generation stops is the one thing taken from the checkpoint: every EOS its generation_config names
        # and the tokenizer's own, passed explicitly and recorded. (A conversion whose generation_config names a
        # stale EOS would otherwise generate past the end of its answer; vLLM stops on the same union.)
        self.eos_token_id = stop_token_ids(getattr(self.model, "generation_config", None), self.tokenizer)

    # --- inputs -----------------------------------------------------------------------------------------

    def _check_template_renders(self) -> None:
        """Render the chat template once with a stand-in item, so a template that cannot take this prompt (one
        that refuses a system turn, say) stops the run before inference instead of failing every item."""
        probe = Item(item_id="template-probe", subset=None, dataset=0, modality="", area="", task="", image="",
                     image_path="", prompt="Which option?\nA: yes\nB: no", question="Which option?",
                     options=(("A", "yes"), ("B", "no")), gold="A", answer_text="yes")
        try:
            self.prompt_text(probe)
        except Exception as e:  # noqa: BLE001 - jinja's TemplateError, or raise_exception from the template
            raise ModelLoadError(f"model {self.name!r}: the chat template ({self.chat_template_source}) does not "
                                 f"render this prompt: {type(e).__name__}: {e}") from e

    def prompt_text(self, item: Item) -> str:
        """The item's full prompt after the chat template (image placeholder not yet expanded)."""
        return self.processor.apply_chat_template(chat_messages(item, self.prompt), chat_template=self.chat_template,
                                                  add_generation_prompt=True, tokenize=False)

    def _own_processor(self):
        """The processor for this thread: the adapter's own on the thread that built it, a private copy on any
        other (a prefetch worker), since a Rust tokenizer that sets padding must not be shared across threads."""
        if threading.get_ident() == self._owner_thread:
            return self.processor
        mine = getattr(self._thread_local, "processor", None)
        if mine is None:
            import copy

            mine = self._thread_local.processor = copy.deepcopy(self.processor)
        return mine

    def order_keys(self, items: Sequence[Item]) -> list[tuple] | None:
        """Sort keys that put items of similar input length next to each other (the run sorts its batches by
        them when ``group_by_length`` is on): the image's pixel count, which decides the number of image tokens
        of the dynamic-resolution processors (Qwen2-VL, InternVL's tiles); the run then sorts by prompt length.
        The sizes come from the file headers; an unreadable one sorts first and fails later, in its batch."""
        if not self.group_by_length:
            return None
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=max(1, self.image_workers)) as pool:
            sizes = list(pool.map(lambda it: image_size(it.image_path), items))
        return [(w * h, w, h) for w, h in sizes]

    def prepare(self, batch: Sequence[Item]) -> PreparedBatch:
        """Decode, process and tokenize a batch (the CPU's part of the work), ready for `generate` or
        `option_logprobs`; thread-safe, so the run can prepare the next batches while this one runs."""
        return PreparedBatch(tuple(it.item_id for it in batch), self.encode(batch))

    def _inputs(self, batch: Sequence[Item], prepared: PreparedBatch | None):
        if prepared is None:
            return self.encode(batch)
        if prepared.item_ids != tuple(it.item_id for it in batch):
            raise ValueError(f"{self.name}: prepared inputs for {len(prepared.item_ids)} other items passed with a batch "
                             f"of {len(batch)}")
        return prepared.inputs

    def _count_padding(self, enc) -> None:
        mask = enc.get("attention_mask")
        if mask is not None:
            self._pad_tokens += int((mask == 0).sum())
            self._all_tokens += int(mask.numel())

    def encode(self, batch: Sequence[Item]):
        processor = self._own_processor()
        texts = [self.prompt_text(it) for it in batch]
        # RGB (grey-scale CT / X-ray / MRI become three equal channels), padded to a square on request;
        # an unreadable image raises ImageLoadError naming the item.
        images = load_item_images(batch, self.pad_to_square, workers=self.image_workers, fill=self.pad_fill)
        bos = self.tokenizer.bos_token
        # A template that writes BOS itself must not get a second one from the tokenizer.
        add_special = not (bos is not None and texts[0].startswith(bos))
        # One list of images per prompt: the form every processor accepts (Mllama and Gemma 3 require it). A batch
        # of text-only items (questions put to a judge) goes without images; a batch mixing both is refused.
        with_image = [im is not None for im in images]
        if any(with_image) and not all(with_image):
            raise ValueError(f"model {self.name!r}: a batch mixes items with and without an image")
        pictures = {"images": [[im] for im in images]} if any(with_image) else {}
        extra = {"device": self.processor_device} if self.processor_device and any(with_image) else {}
        enc = processor(text=texts, **pictures, padding=True, return_tensors="pt",
                        add_special_tokens=add_special, **extra)
        return enc.to(device=self.model.device, dtype=self.torch_dtype)

    # --- the adapter interface --------------------------------------------------------------------------

    def generate(self, batch: Sequence[Item], prepared: PreparedBatch | None = None) -> list[str]:
        import torch

        if not batch:
            return []
        enc = self._inputs(batch, prepared)
        self._count_padding(enc)
        # Every answer-deciding setting is passed explicitly, so a checkpoint's generation_config cannot
        # add a repetition penalty, beams or a top_k behind our back (see NEUTRAL_DECODING).
        kwargs: dict[str, Any] = {**self.decoding, "pad_token_id": self.tokenizer.pad_token_id,
                                  "eos_token_id": self.eos_token_id}
        if self.do_sample:
            torch.manual_seed(self.seed)
        with torch.inference_mode():
            out = self.model.generate(**enc, **kwargs)
        new_tokens = out[:, enc["input_ids"].shape[1]:]
        return [t.strip() for t in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]

    def option_logprobs(self, batch: Sequence[Item], prepared: PreparedBatch | None = None) -> list[dict[str, float]]:
        """One forward pass; log-softmax of the next-token logits at the last position, per item's own letters."""
        import torch

        if not batch:
            return []
        enc = self._inputs(batch, prepared)
        self._count_padding(enc)
        extra = {"logits_to_keep": 1} if self._keeps_last_logits else {}
        with torch.inference_mode():
            logits = self.model(**enc, use_cache=False, **extra).logits[:, -1, :]
        logp = torch.log_softmax(logits.float(), dim=-1).cpu()
        out = []
        for row, item in zip(logp, batch):
            out.append({l: float(torch.logsumexp(row[list(self.letter_ids[l])], dim=0)) for l in item.letters})
        return out

    def describe(self) -> dict:
        import transformers

        return {
            "backend": "hf",
            "model_id": self.model_id,
            "revision": self.revision,
            "resolved_commit": getattr(self.model.config, "_commit_hash", None),
            "path": self.path,
            "weights_fingerprint": self.weights_fingerprint,
            "model_class": type(self.model).__name__,
            **({"tiny_replica": True} if self.tiny_replica else {}),
            "dtype": self.dtype,
            "device": self.device,
            "device_map": self.device_map,
            "attn_implementation": self.attn_implementation,
            "max_new_tokens": self.max_new_tokens,
            "do_sample": self.do_sample,
            **({"temperature": self.temperature, "top_p": self.top_p, "seed": self.seed} if self.do_sample else {}),
            "decoding": self.decoding,
            "eos_token_id": self.eos_token_id,
            "trust_remote_code": self.trust_remote_code,
            "pad_to_square": self.pad_to_square,
            "processor_kwargs": self.processor_kwargs,
            **({"image_processor": {"class": type(self.processor.image_processor).__name__,
                                    "backend": self.image_processor_backend}}
               if hasattr(self.processor, "image_processor") else {}),
            "prompt": self.prompt.describe(),
            "chat_template_source": self.chat_template_source,
            "chat_template_sha256": sha256_text(self.chat_template),
            "letter_token_ids": {l: list(ids) for l, ids in self.letter_ids.items()},
            "transformers_version": transformers.__version__,
        }

    def runtime(self) -> dict:
        """Settings that decide speed, not answers, and the share of padding in the batches run so far."""
        return {"prefetch_batches": self.prefetch_batches, "preprocess_workers": self.preprocess_workers,
                "image_processor_device": self.processor_device or "cpu", "group_by_length": self.group_by_length,
                "padding_fraction": round(self._pad_tokens / self._all_tokens, 4) if self._all_tokens else None}


def _forward_params(model) -> set[str]:
    import inspect

    return set(inspect.signature(model.forward).parameters)
