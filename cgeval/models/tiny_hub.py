"""Tiny random-weight replicas of the hub checkpoints our model configs name (``model.tiny=true``).

For every hub model cgeval ships a config for, a builder here writes a folder that a real checkpoint's loader
cannot tell apart by kind: the same model class, the same text-backbone family, the same processor class with
the settings that decide how many tokens an image becomes (LLaVA's 576 CLIP patches, Qwen2-VL's dynamic 14-px
patches merged 2 x 2 between 3,136 and 12,845,056 pixels, Gemma 3's 256 soft tokens between ``<start_of_image>``
and ``<end_of_image>`` with pan-and-scan off, Mllama's 4 tiles and cross-attention, InternVL's 448-px tiles of
256 tokens, up to 12 plus a thumbnail), a tokenizer holding the real special tokens, and the checkpoint's own
published chat template (`cgeval.models.chat_templates`). Only the sizes are tiny: hidden 64, 1-2 layers, head
dimension 32 (vLLM's CPU attention needs >= 32), a 768-token byte-level BPE trained on the sample's text.

Where a vision tower at the real resolution would be costly, the tiny one works at a coarser patch size but
keeps the number of tokens the *text* model sees, which is what prompts, padding and batching depend on
(Gemma 3: 896-px input as in the real processor, 28-px patches pooled 2 x 2 to the real 256 tokens; Mllama:
the real 4 tiles and aspect-ratio set at 56 px a tile, since its image reaches the text model through
cross-attention, not as prompt tokens). Each builder says what it changes.

The folder is saved with ``save_pretrained`` and loaded back by the same adapter and ``from_pretrained`` path the
real checkpoint takes; the config's own settings (chat_template, pad_to_square, processor_kwargs, dtype, prompt)
all apply unchanged. Builds are deterministic (fixed torch seed) and cached like the other tiny models.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import chat_templates as T

HIDDEN, HEADS, KV_HEADS, HEAD_DIM = 64, 2, 1, 32
REPLICA_VERSION = 4  # bump when a builder changes, so stale cached replicas are never reused


@dataclass(frozen=True)
class HubReplica:
    """How to build the tiny replica of one hub checkpoint."""

    name: str  # the cache folder's name (tiny-<name>-v<version>)
    builder: Callable[..., None]
    options: dict[str, Any] = field(default_factory=dict)
    summary: str = ""


def _tokenizer(specials: list[str], chat_lines: list[str], *, bos: str | None, eos: str, pad: str,
               unk: str | None = None, extra: dict[str, str] | None = None, add_bos: bool = False,
               padding_side: str = "left", plain_tokens: tuple[str, ...] = ()):
    """A fast tokenizer over the tiny BPE with the family's real special tokens (see `tiny._train_tokenizer`).

    ``plain_tokens`` are ordinary (not special) vocabulary entries spelled as the real vocabulary spells them,
    for loaders that look them up by text (vLLM's Gemma 3 reads the ids of one to four newlines)."""
    from tokenizers import AddedToken
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    from .tiny import _train_tokenizer

    tok = _train_tokenizer(specials, chat_lines)
    if plain_tokens:
        tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in plain_tokens])
    if add_bos:  # SentencePiece-style Llama / Mistral / Gemma tokenizers put BOS before every encoded text
        bos_id = tok.token_to_id(bos)
        tok.post_processor = TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                special_tokens=[(bos, bos_id)])
    kwargs: dict[str, Any] = {"eos_token": eos, "pad_token": pad}
    if bos is not None:
        kwargs["bos_token"] = bos
    if unk is not None:
        kwargs["unk_token"] = unk
    return PreTrainedTokenizerFast(tokenizer_object=tok, extra_special_tokens=extra or {},
                                   padding_side=padding_side, model_max_length=8192, **kwargs)


def _chatml_tokenizer(specials: list[str], system_prompt: str, extra: dict[str, str]):
    """A ChatML (Qwen-style ``<|im_start|>role``) tokenizer: no BOS, ``<|im_end|>`` ends a turn, ``<|endoftext|>``
    pads; the default system prompt's text is in the BPE's training lines."""
    return _tokenizer(specials, [f"<|im_start|>system\n{system_prompt}", "<|im_start|>user\n", "<|im_start|>assistant\n"],
                      bos=None, eos="<|im_end|>", pad="<|endoftext|>", extra=extra)


def _text_config(kind: str, tokenizer, **extra) -> dict[str, Any]:
    """The tiny text backbone of one family (a dict the composite configs take as ``text_config``)."""
    base = {"model_type": kind, "vocab_size": len(tokenizer), "hidden_size": HIDDEN, "intermediate_size": 128,
            "num_hidden_layers": 2, "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
            "head_dim": HEAD_DIM, "max_position_embeddings": 8192, "tie_word_embeddings": False,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    base.update(extra)
    return base


def _save(out: Path, model, processor, tokenizer, stop_ids: list[int]) -> None:
    from transformers import GenerationConfig

    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=stop_ids,
                                               pad_token_id=tokenizer.pad_token_id, do_sample=False)
    model.save_pretrained(out)
    processor.save_pretrained(out)


def _seeded(model_cls, config):
    import torch

    from .tiny import SEED

    torch.manual_seed(SEED)
    return model_cls(config).eval()


# --- LLaVA (CLIP ViT-L/14 at 336 px + Llama / Mistral / Qwen2) ----------------------------------------------


def build_llava(out: Path, backbone: str, chat_template: str | None, processor_patch_size: bool = True) -> None:
    """LlavaForConditionalGeneration with a CLIP tower at the real 336 px / 14 px patches: 576 image tokens
    ('default' strategy: CLS dropped) after the processor expands ``<image>``.

    ``backbone`` is the text model family (llama: llava-1.5; mistral: LLaVA-Med v1.5; qwen2: HuatuoGPT-Vision).
    ``processor_patch_size=False`` leaves patch_size out of processor_config.json, as HuatuoGPT-Vision's 7B
    conversion does (its model config supplies it through ``hf.processor_kwargs``).
    """
    from transformers import (CLIPImageProcessor, CLIPVisionConfig, LlavaConfig, LlavaForConditionalGeneration,
                              LlavaProcessor)

    if backbone == "qwen2":  # Qwen2 has no BOS; its template is plain text around <image>
        tokenizer = _tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>"],
                               ["<|user|>\n", "<|assistant|>\n"], bos=None, eos="<|endoftext|>",
                               pad="<|endoftext|>", extra={"image_token": "<image>"})
    else:  # Llama / Mistral SentencePiece vocabularies: <unk> <s> </s>, BOS added by the tokenizer
        tokenizer = _tokenizer(["<unk>", "<s>", "</s>", "<image>", "<pad>"], ["USER:", "ASSISTANT:", "[INST]", "[/INST]"],
                               bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", extra={"image_token": "<image>"},
                               add_bos=True)
    image_size, patch = 336, 14
    image_processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                         crop_size={"height": image_size, "width": image_size},
                                         image_mean=[0.48145466, 0.4578275, 0.40821073],
                                         image_std=[0.26862954, 0.26130258, 0.27577711])
    kwargs: dict[str, Any] = {"vision_feature_select_strategy": "default", "num_additional_image_tokens": 1}
    if processor_patch_size:
        kwargs["patch_size"] = patch
    else:
        kwargs = {}  # the processor then cannot expand <image> by itself; the model config says how
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, chat_template=chat_template,
                               **kwargs)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=image_size, patch_size=patch,
                                       projection_dim=32),
        text_config=_text_config(backbone, tokenizer),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        projector_hidden_act="gelu",
    )
    model = _seeded(LlavaForConditionalGeneration, config)
    _save(out, model, processor, tokenizer, [tokenizer.eos_token_id])
    _published_tower_layout(out, model)


def _published_tower_layout(out: Path, model) -> None:
    """Rename a CLIP / SigLIP tower's weights to the published checkpoints' layout (``vision_tower.vision_model.*``).

    transformers 5 saves a LLaVA's or Gemma 3's language model and projector under the published names but the
    tower as ``vision_tower.embeddings...``, a layout no published checkpoint has and vLLM cannot load. The renamed
    folder is read back and must give every tensor of the model exactly (nothing left randomly initialised)."""
    import torch
    from safetensors.torch import load_file, save_file

    path = out / "model.safetensors"
    tensors = load_file(path)
    renamed = {("vision_tower.vision_model." + k[len("vision_tower."):]
                if k.startswith("vision_tower.") and not k.startswith("vision_tower.vision_model.") else k): v
               for k, v in tensors.items()}
    save_file(renamed, path, metadata={"format": "pt"})
    back = type(model).from_pretrained(out, dtype=torch.float32).state_dict()
    mine = model.state_dict()
    if back.keys() != mine.keys() or any(not torch.equal(back[k], mine[k]) for k in mine):
        raise RuntimeError(f"tiny replica in {out}: the published weight layout does not load back to the same weights")


# --- Qwen2-VL / Qwen2.5-VL -------------------------------------------------------------------------------------

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
                 "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
                 "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]


def build_qwen_vl(out: Path, version: str, chat_template: str) -> None:
    """Qwen2-VL (``version="2"``) or Qwen2.5-VL (``"2.5"``) with the real processor settings: 14-px patches,
    2 x 2 merge, temporal patch 2, between 3,136 and 12,845,056 pixels. Qwen2.5-VL's tower has its window
    attention (window 112, one full-attention block) and SwiGLU MLP, as the real one."""
    import transformers as tf

    tokenizer = _chatml_tokenizer(QWEN_SPECIALS, "You are a helpful assistant.",
                                  {"image_token": "<|image_pad|>", "video_token": "<|video_pad|>",
                                   "vision_bos_token": "<|vision_start|>", "vision_eos_token": "<|vision_end|>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIALS}
    patch, merge, temporal = 14, 2, 2
    pixels = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 16384}  # min_pixels 3136, max_pixels 12845056
    ip = tf.Qwen2VLImageProcessor(size=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=temporal,
                                  image_mean=[0.48145466, 0.4578275, 0.40821073],
                                  image_std=[0.26862954, 0.26130258, 0.27577711])
    vp = tf.Qwen2VLVideoProcessor(size=pixels, patch_size=patch, merge_size=merge, temporal_patch_size=temporal)
    rope = {"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [4, 6, 6]}  # sums to head_dim / 2
    text = _text_config("qwen2_vl_text" if version == "2" else "qwen2_5_vl_text", tokenizer, rope_parameters=rope,
                        bos_token_id=None, eos_token_id=ids["<|im_end|>"])
    if version == "2":
        vision = {"depth": 2, "embed_dim": 32, "hidden_size": HIDDEN, "num_heads": 1, "mlp_ratio": 2,
                  "patch_size": patch, "spatial_merge_size": merge, "temporal_patch_size": temporal}
        processor = tf.Qwen2VLProcessor(image_processor=ip, video_processor=vp, tokenizer=tokenizer,
                                        chat_template=chat_template)
        config_cls, model_cls = tf.Qwen2VLConfig, tf.Qwen2VLForConditionalGeneration
    else:
        vision = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 1, "out_hidden_size": HIDDEN,
                  "hidden_act": "silu", "patch_size": patch, "spatial_merge_size": merge,
                  "temporal_patch_size": temporal, "window_size": 112, "fullatt_block_indexes": [1]}
        processor = tf.Qwen2_5_VLProcessor(image_processor=ip, video_processor=vp, tokenizer=tokenizer,
                                           chat_template=chat_template)
        config_cls, model_cls = tf.Qwen2_5_VLConfig, tf.Qwen2_5_VLForConditionalGeneration
    config = config_cls(vision_config=vision, text_config=text, image_token_id=ids["<|image_pad|>"],
                        video_token_id=ids["<|video_pad|>"], vision_start_token_id=ids["<|vision_start|>"],
                        vision_end_token_id=ids["<|vision_end|>"])
    model = _seeded(model_cls, config)
    _save(out, model, processor, tokenizer, [ids["<|im_end|>"], ids["<|endoftext|>"]])


# --- Gemma 3 (MedGemma) ---------------------------------------------------------------------------------------

GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>", "<start_of_turn>", "<end_of_turn>",
                  "<start_of_image>", "<end_of_image>", "<image_soft_token>"]


def build_gemma3(out: Path, chat_template: str) -> None:
    """Gemma3ForConditionalGeneration: SigLIP tower, 256 soft tokens an image between ``<start_of_image>`` and
    ``<end_of_image>`` (bidirectional attention over them through token_type_ids), pan-and-scan off, the real
    896-px resize. The tower uses 28-px patches (32 x 32, average-pooled 2 x 2 to 16 x 16 = 256 tokens) instead
    of 14-px ones pooled 4 x 4: the same token count for a sixteenth of the cost."""
    import transformers as tf

    tokenizer = _tokenizer(GEMMA_SPECIALS, ["<start_of_turn>user\n", "<start_of_turn>model\n"],
                           bos="<bos>", eos="<eos>", pad="<pad>", unk="<unk>", add_bos=True,
                           plain_tokens=("\n\n\n\n", "\n\n\n", "\n\n", "\n"),
                           extra={"image_token": "<image_soft_token>", "boi_token": "<start_of_image>",
                                  "eoi_token": "<end_of_image>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in GEMMA_SPECIALS}
    image_size, patch, tokens = 896, 28, 256
    ip = tf.Gemma3ImageProcessor(size={"height": image_size, "width": image_size}, do_pan_and_scan=False,
                                 image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5], resample=2)
    processor = tf.Gemma3Processor(image_processor=ip, tokenizer=tokenizer, chat_template=chat_template,
                                   image_seq_length=tokens)
    text = _text_config("gemma3_text", tokenizer, query_pre_attn_scalar=HEAD_DIM, sliding_window=512,
                        layer_types=["sliding_attention", "full_attention"], hidden_activation="gelu_pytorch_tanh",
                        tie_word_embeddings=True)
    vision = {"model_type": "siglip_vision_model", "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 1, "num_attention_heads": 1, "image_size": image_size, "patch_size": patch,
              "vision_use_head": False}
    config = tf.Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=tokens,
                             boi_token_index=ids["<start_of_image>"], eoi_token_index=ids["<end_of_image>"],
                             image_token_index=ids["<image_soft_token>"])
    model = _seeded(tf.Gemma3ForConditionalGeneration, config)
    _save(out, model, processor, tokenizer, [ids["<eos>"], ids["<end_of_turn>"]])
    _published_tower_layout(out, model)


# --- Mllama (Llama 3.2 Vision) --------------------------------------------------------------------------------

LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                   "<|eot_id|>", "<|eom_id|>", "<|python_tag|>", "<|image|>", "<|finetune_right_pad_id|>"]


def build_mllama(out: Path, chat_template: str) -> None:
    """MllamaForConditionalGeneration: one ``<|image|>`` token in the prompt, the image reaching the text model
    through cross-attention layers, tiled by the real rule (up to 4 tiles, the real 8 aspect ratios, a
    cross-attention mask per tile). Tiles are 56 px here instead of 560 (the prompt is unchanged by it)."""
    import transformers as tf

    tokenizer = _tokenizer(LLAMA3_SPECIALS, ["<|start_header_id|>user<|end_header_id|>\n\n",
                                             "<|start_header_id|>assistant<|end_header_id|>\n\n",
                                             "Cutting Knowledge Date: December 2023", "Today Date:"],
                           bos="<|begin_of_text|>", eos="<|eot_id|>", pad="<|finetune_right_pad_id|>",
                           add_bos=True, extra={"image_token": "<|image|>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in LLAMA3_SPECIALS}
    tile, patch, tiles = 56, 14, 4
    ip = tf.MllamaImageProcessor(size={"height": tile, "width": tile}, max_image_tiles=tiles,
                                 image_mean=[0.48145466, 0.4578275, 0.40821073],
                                 image_std=[0.26862954, 0.26130258, 0.27577711])
    processor = tf.MllamaProcessor(image_processor=ip, tokenizer=tokenizer, chat_template=chat_template)
    vision = tf.MllamaVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_global_layers=1,
                                   attention_heads=1, image_size=tile, patch_size=patch, max_num_tiles=tiles,
                                   intermediate_layers_indices=[0], vision_output_dim=64)
    text = tf.MllamaTextConfig(**{k: v for k, v in _text_config("mllama_text_model", tokenizer).items()
                                  if k not in ("model_type", "head_dim", "tie_word_embeddings")},
                               cross_attention_layers=[1],
                               rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    text.eos_token_id = [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]]
    config = tf.MllamaConfig(vision_config=vision, text_config=text, image_token_index=ids["<|image|>"])
    model = _seeded(tf.MllamaForConditionalGeneration, config)
    _save(out, model, processor, tokenizer, [ids["<|end_of_text|>"], ids["<|eom_id|>"], ids["<|eot_id|>"]])


# --- InternVL3 (transformers-native) -----------------------------------------------------------------------------

INTERNVL_SPECIALS = QWEN_SPECIALS + ["<img>", "</img>", "<IMG_CONTEXT>", "<video>"]


def build_internvl(out: Path, chat_template: str) -> None:
    """InternVLForConditionalGeneration (InternViT + Qwen2.5 backbone): the real dynamic tiling (448-px tiles,
    1 to 12 by the closest aspect ratio, plus a thumbnail) and 256 ``<IMG_CONTEXT>`` tokens a tile between
    ``<img>`` and ``</img>`` (1,024 patches pixel-shuffled by 0.5)."""
    import transformers as tf

    tokenizer = _chatml_tokenizer(INTERNVL_SPECIALS, "",
                                  {"start_image_token": "<img>", "end_image_token": "</img>",
                                   "context_image_token": "<IMG_CONTEXT>", "video_token": "<video>"})
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in INTERNVL_SPECIALS}
    tile, patch = 448, 14
    ip = tf.GotOcr2ImageProcessor(size={"height": tile, "width": tile}, crop_to_patches=True, min_patches=1,
                                  max_patches=12, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225])
    vp = tf.InternVLVideoProcessor(size={"height": tile, "width": tile})
    processor = tf.InternVLProcessor(image_processor=ip, tokenizer=tokenizer, video_processor=vp,
                                     image_seq_length=256, chat_template=chat_template)
    vision = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 1,
              "image_size": [tile, tile], "patch_size": [patch, patch], "use_qk_norm": False, "norm_type": "layer_norm"}
    text = _text_config("qwen2", tokenizer, bos_token_id=None, rope_parameters={"rope_type": "default",
                                                                               "rope_theta": 1000000.0})
    config = tf.InternVLConfig(vision_config=vision, text_config=text, image_token_id=ids["<IMG_CONTEXT>"],
                               image_seq_length=256, downsample_ratio=0.5, vision_feature_layer=-1,
                               vision_feature_select_strategy="default")
    model = _seeded(tf.InternVLForConditionalGeneration, config)
    _save(out, model, processor, tokenizer, [ids["<|im_end|>"], ids["<|endoftext|>"]])


# --- the registry: hub id -> replica -------------------------------------------------------------------------------

HUB_REPLICAS: dict[str, HubReplica] = {
    "llava-hf/llava-1.5-7b-hf": HubReplica(
        "llava_v1_5", build_llava, {"backbone": "llama", "chat_template": T.LLAVA_1_5},
        "LlavaForConditionalGeneration, Llama backbone, CLIP 336/14 (576 image tokens)"),
    "chaoyinshe/llava-med-v1.5-mistral-7b-hf": HubReplica(
        "llava_med", build_llava, {"backbone": "mistral", "chat_template": None},
        "LlavaForConditionalGeneration, Mistral backbone, CLIP 336/14 (576 image tokens); template from the config"),
    "FreedomIntelligence/HuatuoGPT-Vision-7B-hf": HubReplica(
        "huatuogpt_vision", build_llava, {"backbone": "qwen2", "chat_template": None, "processor_patch_size": False},
        "LlavaForConditionalGeneration, Qwen2 backbone, CLIP 336/14; processor without patch_size, as the conversion"),
    "Qwen/Qwen2-VL-7B-Instruct": HubReplica(
        "qwen2_vl_instruct", build_qwen_vl, {"version": "2", "chat_template": T.QWEN2_VL},
        "Qwen2VLForConditionalGeneration, real dynamic-resolution processor"),
    "Qwen/Qwen2.5-VL-7B-Instruct": HubReplica(
        "qwen2_5_vl_instruct", build_qwen_vl, {"version": "2.5", "chat_template": T.QWEN2_5_VL},
        "Qwen2_5_VLForConditionalGeneration, window-attention tower, real dynamic-resolution processor"),
    "lingshu-medical-mllm/Lingshu-7B": HubReplica(
        "lingshu", build_qwen_vl, {"version": "2.5", "chat_template": T.LINGSHU},
        "Qwen2_5_VLForConditionalGeneration (Lingshu is a Qwen2.5-VL fine-tune)"),
    "google/medgemma-4b-it": HubReplica(
        "medgemma", build_gemma3, {"chat_template": T.GEMMA3},
        "Gemma3ForConditionalGeneration, 256 image tokens, pan-and-scan off"),
    "meta-llama/Llama-3.2-11B-Vision-Instruct": HubReplica(
        "llama3_2_vision", build_mllama, {"chat_template": T.LLAMA3_2_VISION},
        "MllamaForConditionalGeneration, 4 tiles, cross-attention"),
    "OpenGVLab/InternVL3-8B-hf": HubReplica(
        "internvl3", build_internvl, {"chat_template": T.INTERNVL3},
        "InternVLForConditionalGeneration, 448-px tiles of 256 tokens, Qwen2 backbone"),
}
