"""Tiny random-weight models of real architectures, so the whole HF path runs (and is tested) on a CPU.

``tiny_llava`` is a `LlavaForConditionalGeneration` (CLIP vision tower + Llama text model) and ``tiny_qwen2_vl``
a `Qwen2VLForConditionalGeneration`, each with hidden size 64 and 2 layers, a byte-level BPE tokenizer trained
here on the embedded sample's own questions (chat-template special tokens and the image token included, the
option letters A-D and common words single tokens), a chat template in the style of the real model, and the
real processor classes. Nothing is downloaded: every config is written out in this file.

A tiny model is built once (torch seed fixed), saved with ``save_pretrained`` into
``<cache_dir>/<name>-v<TINY_VERSION>``, and then loaded back through the *same* `HFAdapter` ``from_pretrained``
path a real checkpoint takes. The weights are random: answers are noise, but they are deterministic noise, and
batching must not change them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from ..data.records import LETTERS
from ..data.sample import SAMPLE_ROOT

TINY_VERSION = 1  # bump when a builder changes, so stale caches are never reused
DEFAULT_CACHE_DIR = Path("~/.cache/cgeval/tiny")
SEED = 0
VOCAB_SIZE = 768

# Text the tokenizer must hold as single tokens: the letters bare and after a space (templates end in
# "ASSISTANT:" or "assistant\n", so a reply may start either way), and common answer words.
_ANSWER_LINES = [f"{a} {b}" for a in ("Answer:", "The answer is", "ASSISTANT:", "Option") for b in LETTERS]
_ANSWER_LINES += [f"{letter}. {letter}: {letter}) {letter}" for letter in LETTERS]

LLAVA_CHAT_TEMPLATE = (
    # llava-hf/llava-1.5 style: "USER: <image>\n{text} ASSISTANT:"; the tokenizer adds <s>.
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'][0]['text'] + '\n' }}"
    "{% else %}{{ message['role'].upper() + ': ' }}"
    "{% for content in message['content'] %}{% if content['type'] == 'image' %}{{ '<image>\n' }}{% endif %}{% endfor %}"
    "{% for content in message['content'] %}{% if content['type'] == 'text' %}{{ content['text'] + ' ' }}{% endif %}{% endfor %}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ 'ASSISTANT:' }}{% endif %}"
)

QWEN2_VL_CHAT_TEMPLATE = (
    # Qwen2-VL-Instruct style ChatML with the vision markers around each image.
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' }}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'image' %}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{% elif content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class UnknownTinyModel(ValueError):
    """No tiny builder of that name."""


def _sample_texts() -> Iterator[str]:
    """The embedded sample's questions and answers: the words the tiny models will see."""
    for folder in ("Aggregated_Subsets", "Original_Medical_Datasets"):
        for path in sorted((SAMPLE_ROOT / folder).glob("*.json")):
            for rec in json.loads(path.read_text(encoding="utf-8")):
                yield rec["Question-choice"]
                yield f"{rec['Answer-choice']}. {rec['Answer']}"


def _train_tokenizer(special_tokens: list[str], chat_lines: list[str]):
    """A byte-level BPE (every byte is a token, so nothing is ever unknown) trained on the sample's text."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        min_frequency=1,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = list(_sample_texts()) + _ANSWER_LINES * 20 + chat_lines * 20
    tok.train_from_iterator(corpus, trainer)
    for letter in LETTERS:  # the likelihood scorer relies on these
        for text in (letter, " " + letter):
            ids = tok.encode(text, add_special_tokens=False).ids
            assert len(ids) == 1, f"tiny tokenizer splits {text!r} into {ids}"
    return tok


def _build_llava(out: Path) -> None:
    import torch
    from tokenizers.processors import TemplateProcessing
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, GenerationConfig, LlamaConfig,
                              LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor,
                              PreTrainedTokenizerFast)

    specials = ["<unk>", "<s>", "</s>", "<pad>", "<image>"]
    tok = _train_tokenizer(specials, ["USER:", "ASSISTANT:"])
    ids = {t: tok.token_to_id(t) for t in specials}
    tok.post_processor = TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", ids["<s>"])])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        extra_special_tokens={"image_token": "<image>"}, padding_side="left", model_max_length=1024,
    )
    image_size, patch = 56, 14
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=patch,
                               vision_feature_select_strategy="default", num_additional_image_tokens=1,
                               chat_template=LLAVA_CHAT_TEMPLATE)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=patch,
                                       projection_dim=32),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                                num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                max_position_embeddings=1024, bos_token_id=ids["<s>"],
                                eos_token_id=ids["</s>"], pad_token_id=ids["<pad>"]),
        image_token_index=ids["<image>"],
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(bos_token_id=ids["<s>"], eos_token_id=ids["</s>"],
                                               pad_token_id=ids["<pad>"], do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _build_qwen2_vl(out: Path) -> None:
    import torch
    from transformers import (GenerationConfig, PreTrainedTokenizerFast, Qwen2VLConfig,
                              Qwen2VLForConditionalGeneration, Qwen2VLImageProcessor, Qwen2VLProcessor,
                              Qwen2VLVideoProcessor)

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                "<|image_pad|>", "<|video_pad|>"]
    tok = _train_tokenizer(specials, ["<|im_start|>system\nYou are a helpful assistant.", "<|im_start|>user\n",
                                      "<|im_start|>assistant\n"])
    ids = {t: tok.token_to_id(t) for t in specials}
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens={"image_token": "<|image_pad|>", "video_token": "<|video_pad|>"},
        padding_side="left", model_max_length=1024,
    )
    patch, merge, temporal = 14, 2, 2
    factor = patch * merge
    pixels = {"shortest_edge": (2 * factor) ** 2, "longest_edge": (4 * factor) ** 2}  # 2x2 to 4x4 merged tokens
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(size=pixels, patch_size=patch, merge_size=merge,
                                              temporal_patch_size=temporal),
        video_processor=Qwen2VLVideoProcessor(size=pixels, patch_size=patch, merge_size=merge,
                                              temporal_patch_size=temporal),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_CHAT_TEMPLATE,
    )
    config = Qwen2VLConfig(
        vision_config={"depth": 2, "embed_dim": 32, "hidden_size": 64, "num_heads": 2, "mlp_ratio": 2,
                       "patch_size": patch, "spatial_merge_size": merge, "temporal_patch_size": temporal},
        text_config={"vocab_size": len(tokenizer), "hidden_size": 64, "intermediate_size": 128,
                     "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                     "max_position_embeddings": 1024, "bos_token_id": None,
                     "eos_token_id": ids["<|im_end|>"], "pad_token_id": ids["<|endoftext|>"],
                     # head_dim 16: the temporal/height/width rotary sections must sum to 16 / 2.
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}},
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
    )
    torch.manual_seed(SEED)
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(eos_token_id=ids["<|im_end|>"], pad_token_id=ids["<|endoftext|>"],
                                               do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)


TINY_BUILDERS: dict[str, Callable[[Path], None]] = {
    "tiny_llava": _build_llava,
    "tiny_qwen2_vl": _build_qwen2_vl,
}


def tiny_model_dir(name: str, cache_dir: str | Path | None = None) -> Path:
    if name not in TINY_BUILDERS:
        raise UnknownTinyModel(f"no tiny model {name!r}; choose from {sorted(TINY_BUILDERS)}")
    return _cache_root(cache_dir) / f"{name}-v{TINY_VERSION}"


def ensure_tiny(name: str, cache_dir: str | Path | None = None) -> Path:
    """The folder of tiny model ``name``, built first if it is not there yet. Returns the folder."""
    return _ensure_built(tiny_model_dir(name, cache_dir), TINY_BUILDERS[name])


def _cache_root(cache_dir: str | Path | None) -> Path:
    if cache_dir is None:
        cache_dir = os.environ.get("CGEVAL_TINY_CACHE") or DEFAULT_CACHE_DIR
    return Path(cache_dir).expanduser()


def replica_dir(model_id: str, cache_dir: str | Path | None = None) -> Path:
    """Where the tiny replica of hub checkpoint ``model_id`` is cached (see `cgeval.models.tiny_hub`)."""
    from .tiny_hub import HUB_REPLICAS, REPLICA_VERSION

    if model_id not in HUB_REPLICAS:
        raise UnknownTinyModel(f"model.tiny=true: cgeval has no tiny replica of {model_id!r}; it has one for "
                               f"{sorted(HUB_REPLICAS)}")
    return _cache_root(cache_dir) / f"replica-{HUB_REPLICAS[model_id].name}-v{REPLICA_VERSION}"


def ensure_replica(model_id: str, cache_dir: str | Path | None = None) -> Path:
    """The folder of ``model_id``'s tiny replica (same classes, processor settings, special tokens and chat
    template as the checkpoint; random tiny weights), built first if it is not there yet."""
    from .tiny_hub import HUB_REPLICAS

    target = replica_dir(model_id, cache_dir)
    replica = HUB_REPLICAS[model_id]
    return _ensure_built(target, lambda out: replica.builder(out, **replica.options))


def _ensure_built(target: Path, build: Callable[[Path], None]) -> Path:
    if (target / "config.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build in a scratch folder beside the target and rename it into place, so that a concurrent run
    # never loads a half-written folder; whoever renames second simply keeps the first copy.
    scratch = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        build(scratch)
        scratch.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            os.rename(scratch, target)
        except OSError:
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def load_tiny(tiny: str, cache_dir: str | None = None, path: str | None = None, **model_cfg):
    """Hydra target of ``conf/model/tiny_*.yaml``: build the tiny model if missing, then load it through the
    same factory (and so the same ``from_pretrained`` path) a real checkpoint takes. An explicit ``path`` wins."""
    from .factory import build_adapter

    folder = path if path is not None else str(ensure_tiny(tiny, cache_dir))
    return build_adapter(path=folder, **model_cfg)
