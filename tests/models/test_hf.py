"""The transformers back end on tiny real-architecture models (LLaVA and Qwen2-VL), on the CPU."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from PIL import Image

from cgeval.config import CONF_DIR
from cgeval.models.base import ModelAdapter
from cgeval.models.factory import UnsupportedBackend, build_adapter
from cgeval.models.hf import (
    HFAdapter,
    ImageLoadError,
    LetterTokenError,
    ModelLoadError,
    letter_token_ids,
)
from cgeval.models.media import expand_to_square
from cgeval.models.tiny import (
    TINY_VERSION,
    UnknownTinyModel,
    ensure_tiny,
    tiny_model_dir,
)
from cgeval.run import score_batch

CONF = CONF_DIR
MODEL_CONFIGS = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
FACTORY = "cgeval.models.factory.build_adapter"
TINY_CONFIGS = {"tiny_llava", "tiny_qwen2_vl"}


def _compose_model(name: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"model={name}", *overrides])


# --- batching never changes an answer ---------------------------------------------------------------------


def test_batched_greedy_generation_equals_item_by_item(tiny, mixed_batch):
    batched = tiny.generate(mixed_batch)
    single = [tiny.generate([it])[0] for it in mixed_batch]
    assert len(batched) == len(mixed_batch)
    assert batched == single
    assert all(isinstance(r, str) for r in batched) and any(batched)


def test_batched_and_single_likelihoods_agree(tiny, mixed_batch):
    batched = tiny.option_logprobs(mixed_batch)
    single = [tiny.option_logprobs([it])[0] for it in mixed_batch]
    for b, s in zip(batched, single):
        assert b.keys() == s.keys()
        for letter in b:
            assert b[letter] == pytest.approx(s[letter], abs=1e-5)


def test_batch_order_does_not_change_scores(tiny, mixed_batch):
    forward = tiny.option_logprobs(mixed_batch)
    backward = tiny.option_logprobs(mixed_batch[::-1])[::-1]
    for f, b in zip(forward, backward):
        assert all(f[l] == pytest.approx(b[l], abs=1e-5) for l in f)


# --- likelihood scoring -----------------------------------------------------------------------------------


def test_likelihood_scores_exactly_the_items_own_letters(tiny, mixed_batch):
    assert {it.n_options for it in mixed_batch} >= {2, 4}  # 2- and 4-option items share one batch
    scores = tiny.option_logprobs(mixed_batch)
    for item, s in zip(mixed_batch, scores):
        assert tuple(s) == item.letters
        assert all(math.isfinite(v) and v < 0 for v in s.values())
        # probabilities of distinct next tokens: their total cannot exceed 1
        assert sum(math.exp(v) for v in s.values()) <= 1 + 1e-6


def test_likelihood_mode_picks_the_best_option(tiny, mixed_batch):
    rows = score_batch(tiny, mixed_batch, "likelihood")
    for item, row in zip(mixed_batch, rows):
        scores = row["option_scores"]
        assert set(scores) == set(item.letters)
        assert row["pred"] == max(scores, key=scores.get)
        assert row["parse_rule"] == "likelihood"


def test_letter_logprob_is_the_log_softmax_of_the_last_position(tiny, mixed_batch):
    """Recompute one item's scores from a plain full forward pass (no logits_to_keep)."""
    item = mixed_batch[0]
    enc = tiny.encode([item])
    with torch.inference_mode():
        logits = tiny.model(**enc).logits[0, -1].float()
    logp = torch.log_softmax(logits, dim=-1)
    expected = {l: float(torch.logsumexp(logp[list(tiny.letter_ids[l])], 0)) for l in item.letters}
    got = tiny.option_logprobs([item])[0]
    assert got == pytest.approx(expected, abs=1e-5)


def test_letter_tokens_are_single_tokens_spelling_the_letter(tiny):
    for letter, ids in tiny.letter_ids.items():
        assert ids and all(tiny.tokenizer.decode([i]).strip() == letter for i in ids)
    all_ids = [i for ids in tiny.letter_ids.values() for i in ids]
    assert len(all_ids) == len(set(all_ids))


class _SentencePieceLike:
    """Encodes like a Llama/Mistral SentencePiece tokenizer: a prefix space, and a lone '▁' before ' A'."""

    vocab = {"▁": 1, "▁A": 2, "▁B": 3, "A": 4, "▁C": 5, "<0x44>": 6}  # no "D" piece: it falls back to bytes

    def encode(self, text, add_special_tokens=False):
        piece = self.vocab.get("▁" + text.strip())
        pieces = [piece] if piece is not None else [1, 6, 6]
        return [1, *pieces] if text.startswith(" ") else pieces

    def decode(self, ids):
        inv = {v: k for k, v in self.vocab.items()}
        return "".join(inv[i] for i in ids).replace("▁", " ")


def test_letter_token_ids_drops_a_lone_prefix_space_piece_and_deduplicates():
    assert letter_token_ids(_SentencePieceLike(), "ABC") == {"A": (2,), "B": (3,), "C": (5,)}
    with pytest.raises(LetterTokenError, match="'D'"):
        letter_token_ids(_SentencePieceLike(), "ABCD")


# --- images -----------------------------------------------------------------------------------------------


def _size(path: str) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_mixed_image_sizes_in_one_batch(tiny_adapters, mixed_batch):
    assert len({_size(it.image_path) for it in mixed_batch}) == len(mixed_batch)
    qwen = tiny_adapters["tiny_qwen2_vl"]
    grids = qwen.encode(mixed_batch)["image_grid_thw"].tolist()
    assert len(grids) == len(mixed_batch) and len({tuple(g) for g in grids}) > 2  # per-image grids
    llava = tiny_adapters["tiny_llava"]
    assert llava.encode(mixed_batch)["pixel_values"].shape[0] == len(mixed_batch)


def test_prompts_are_left_padded(tiny, mixed_batch):
    enc = tiny.encode(mixed_batch)
    mask = enc["attention_mask"]
    assert bool(mask[:, -1].all())  # every row's last position is a real token
    assert not bool(mask[:, 0].all())  # and the prompts do differ in length


def test_unreadable_image_is_a_named_error_with_the_item_id(tiny, mixed_batch, tmp_path):
    import dataclasses

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    item = dataclasses.replace(mixed_batch[0], image_path=str(bad))
    with pytest.raises(ImageLoadError, match=item.item_id):
        tiny.generate([mixed_batch[1], item])


def test_pad_to_square_centres_the_image_on_the_mean_colour(tiny_cache, mixed_batch):
    adapter = build_adapter(name="padded", path=str(tiny_model_dir("tiny_llava", tiny_cache)), pad_to_square=True)
    mean = adapter.processor.image_processor.image_mean
    assert adapter.pad_fill == tuple(int(255 * m) for m in mean)
    wide = Image.new("RGB", (40, 10), (255, 0, 0))
    square = expand_to_square(wide, adapter.pad_fill)
    assert square.size == (40, 40)
    assert square.getpixel((0, 0)) == adapter.pad_fill and square.getpixel((20, 20)) == (255, 0, 0)
    item = next(it for it in mixed_batch if _size(it.image_path) == (200, 64))
    plain = build_adapter(name="plain", path=str(tiny_model_dir("tiny_llava", tiny_cache)))
    assert not torch.equal(adapter.encode([item])["pixel_values"], plain.encode([item])["pixel_values"])
    assert adapter.describe()["pad_to_square"] is True


# --- loading, configuration, provenance -------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_tiny_model_is_saved_and_loaded_back_through_from_pretrained(name, tiny_cache, tiny_adapters):
    folder = tiny_model_dir(name, tiny_cache)
    assert folder.name == f"{name}-v{TINY_VERSION}"
    files = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "processor_config.json"} <= files
    assert sum(p.stat().st_size for p in folder.iterdir()) < 1.5 * 2**20
    adapter = tiny_adapters[name]
    assert isinstance(adapter, HFAdapter) and isinstance(adapter, ModelAdapter)
    assert adapter.describe()["path"] == str(folder)
    assert ensure_tiny(name, tiny_cache) == folder  # cached: not rebuilt


def test_tiny_builds_are_deterministic(tiny_cache, tmp_path):
    again = ensure_tiny("tiny_llava", tmp_path)
    for fname in ("model.safetensors", "tokenizer.json"):
        a = (again / fname).read_bytes()
        b = (tiny_model_dir("tiny_llava", tiny_cache) / fname).read_bytes()
        assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest(), fname


def test_unknown_tiny_model_is_a_named_error(tmp_path):
    with pytest.raises(UnknownTinyModel):
        ensure_tiny("tiny_gpt", tmp_path)


def test_describe_records_the_hashes(tiny):
    d = tiny.describe()
    assert d["backend"] == "hf" and d["trust_remote_code"] is False
    assert d["chat_template_sha256"] == hashlib.sha256(tiny.processor.chat_template.encode()).hexdigest()[:16]
    assert d["chat_template_source"] == "checkpoint"
    assert d["prompt"]["default"] is True and len(d["prompt"]["sha256"]) == 16
    assert d["dtype"] == "float32" and d["device"] == "cpu"
    assert d["model_class"] in ("LlavaForConditionalGeneration", "Qwen2VLForConditionalGeneration")
    assert set(d["letter_token_ids"]) == set("ABCD")


def test_prompt_override_and_explicit_chat_template_are_used_and_recorded(tiny_cache, mixed_batch):
    template = OmegaConf.load(CONF / "model" / "llava_med.yaml").chat_template
    adapter = build_adapter(name="llava_med_style", path=str(tiny_model_dir("tiny_llava", tiny_cache)),
                            chat_template=template, prompt={"template": "Q: {question}\n{options}", "system": "Be brief."})
    item = mixed_batch[0]
    text = adapter.prompt_text(item)
    assert text.startswith("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n<image>\nQ: ")
    assert text.endswith(" [/INST]") and item.options[0][1] in text
    ids = adapter.encode([item])["input_ids"][0].tolist()
    assert ids.count(adapter.tokenizer.bos_token_id) == 1  # the template's BOS, not a second one
    d = adapter.describe()
    assert d["chat_template_source"] == "config" and d["prompt"]["default"] is False
    assert d["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()[:16]
    assert len(adapter.generate([item])) == 1


def test_sampling_is_seeded_and_recorded(tiny_cache, mixed_batch):
    kw = dict(name="s", path=str(tiny_model_dir("tiny_qwen2_vl", tiny_cache)), do_sample=True, max_new_tokens=6)
    a, b = build_adapter(**kw, seed=3), build_adapter(**kw, seed=3)
    assert a.generate(mixed_batch[:2]) == b.generate(mixed_batch[:2])
    assert a.describe()["do_sample"] is True and a.describe()["seed"] == 3


def test_missing_weights_is_a_named_error_before_inference(tmp_path):
    with pytest.raises(ModelLoadError, match="local path"):
        HFAdapter(name="x", path=str(tmp_path / "nowhere"))
    with pytest.raises(ModelLoadError, match="model_id"):
        HFAdapter(name="x")


def test_unknown_model_class_is_a_named_error(tiny_cache):
    with pytest.raises(ModelLoadError, match="NoSuchModel"):
        HFAdapter(name="x", path=str(tiny_model_dir("tiny_llava", tiny_cache)), model_class="NoSuchModel")


def test_factory_rejects_backends_the_model_does_not_list(tiny_cache):
    with pytest.raises(UnsupportedBackend, match="vllm"):
        build_adapter(backend="vllm", backends=["hf"], name="x", path="unused")
    with pytest.raises(UnsupportedBackend, match="tpu"):
        build_adapter(backend="tpu", name="x")


def test_factory_passes_only_the_chosen_backends_section(tiny_cache):
    adapter = build_adapter(name="x", path=str(tiny_model_dir("tiny_llava", tiny_cache)), backends=["hf", "vllm"],
                            hf={"max_new_tokens": 3}, vllm={"tensor_parallel_size": 8})
    assert adapter.max_new_tokens == 3 and adapter.backends == ["hf", "vllm"]


@pytest.mark.parametrize("name", MODEL_CONFIGS)
def test_every_model_config_composes_with_the_keys_it_needs(name):
    m = _compose_model(name).model
    assert m.name == name and "_target_" in m
    if m._target_ not in (FACTORY, "cgeval.models.tiny.load_tiny"):
        return  # baselines and stand-ins: no weights, no back end
    for key in ("model_id", "revision", "backend", "backends", "prompt", "max_new_tokens"):
        assert key in m, f"{name}: no {key}"
    assert m.backend in m.backends and set(m.backends) <= {"hf", "vllm", "openai"}
    assert m.revision is None and m.prompt is None
    OmegaConf.to_container(m, resolve=True)
    if "hf" not in m.backends:
        return
    assert "path" in m and m.path is None and "dtype" in m
    if name in TINY_CONFIGS:
        assert m._target_ == "cgeval.models.tiny.load_tiny" and m.tiny == name
    else:
        import transformers

        assert m._target_ == FACTORY
        assert m.model_id and "/" in m.model_id and m.trust_remote_code is False
        assert hasattr(transformers, m.hf.model_class), m.hf.model_class


def test_the_models_users_ask_for_have_hf_configs():
    wanted = {"llava_med", "llava_v1_5_7b", "qwen2_vl_7b", "qwen2_5_vl_7b", "lingshu_7b", "huatuogpt_vision_7b",
              "medgemma_4b", "llama3_2_vision_11b", "internvl3_8b"}
    assert wanted <= set(MODEL_CONFIGS)
    assert all("hf" in _compose_model(n).model.backends for n in wanted)


def test_llava_med_config_reproduces_the_original_preprocessing():
    m = _compose_model("llava_med").model
    assert m.model_id == "chaoyinshe/llava-med-v1.5-mistral-7b-hf" and m.pad_to_square is True
    assert "[INST]" in m.chat_template and m.hf.model_class == "LlavaForConditionalGeneration"


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_tiny_configs_instantiate_through_hydra(name, tiny_cache, tiny_adapters, mixed_batch):
    cfg = _compose_model(name, f"model.cache_dir={tiny_cache}")
    adapter = instantiate(cfg.model)
    assert isinstance(adapter, HFAdapter) and adapter.name == name
    assert adapter.describe()["path"] == str(tiny_model_dir(name, tiny_cache))
    item = mixed_batch[:1]
    assert adapter.option_logprobs(item)[0] == pytest.approx(tiny_adapters[name].option_logprobs(item)[0], abs=1e-6)


def test_model_backend_override_reaches_the_factory():
    cfg = _compose_model("qwen2_vl_7b", "model.backend=vllm")
    assert cfg.model.backend == "vllm" and cfg.model._target_ == "cgeval.models.factory.build_adapter"


# --- decoding is what describe() says, whatever the checkpoint's generation_config carries ----------------


def _with_generation_config(src: Path, dst: Path, **settings) -> Path:
    """A copy of a tiny checkpoint whose generation_config.json carries ``settings`` (same weights)."""
    import json
    import shutil

    shutil.copytree(src, dst)
    cfg_path = dst / "generation_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(settings)
    cfg_path.write_text(json.dumps(cfg))
    return dst


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_checkpoint_generation_config_cannot_change_greedy_answers(name, tiny_cache, tiny_adapters, mixed_batch,
                                                                   tmp_path):
    # Qwen2-VL-Instruct style (do_sample, top_k 1, repetition_penalty), made strong enough to bite on random
    # weights, plus beams and an n-gram ban: none of it may leak into "greedy".
    folder = _with_generation_config(tiny_model_dir(name, tiny_cache), tmp_path / name, do_sample=True,
                                     temperature=0.01, top_k=1, top_p=0.001, repetition_penalty=3.0,
                                     no_repeat_ngram_size=1, num_beams=2, min_new_tokens=8)
    poisoned = build_adapter(name=name, path=str(folder), max_new_tokens=8)
    assert poisoned.model.generation_config.repetition_penalty == 3.0  # the file was read
    assert poisoned.generate(mixed_batch) == tiny_adapters[name].generate(mixed_batch)
    d = poisoned.describe()["decoding"]
    assert d["do_sample"] is False and d["num_beams"] == 1 and d["repetition_penalty"] == 1.0
    assert d["no_repeat_ngram_size"] == 0 and d["top_k"] is None and d["max_new_tokens"] == 8


def test_greedy_generation_is_the_argmax_of_the_logits(tiny_adapters, mixed_batch):
    """The first generated token of every item is the argmax of the same forward pass likelihood mode reads."""
    llava = tiny_adapters["tiny_llava"]
    enc = llava.encode(mixed_batch)
    with torch.inference_mode():
        first = llava.model(**enc).logits[:, -1].argmax(-1)
        out = llava.model.generate(**enc, **llava.decoding, pad_token_id=llava.tokenizer.pad_token_id)
    assert out[:, enc["input_ids"].shape[1]].tolist() == first.tolist()


def test_sampling_uses_only_the_configured_filters():
    from cgeval.models.hf import decoding_settings

    s = decoding_settings(32, True, 0.7, 0.9)
    assert (s["temperature"], s["top_p"], s["top_k"], s["repetition_penalty"]) == (0.7, 0.9, None, 1.0)
    g = decoding_settings(32, False, 0.7, 0.9)
    assert g["do_sample"] is False and g["temperature"] is None and g["top_p"] is None


def test_greedy_generate_emits_no_generation_warnings(tiny_cache, mixed_batch, tmp_path, recwarn, caplog):
    folder = _with_generation_config(tiny_model_dir("tiny_qwen2_vl", tiny_cache), tmp_path / "q", do_sample=True,
                                     temperature=0.01, top_k=1, top_p=0.001, repetition_penalty=1.05)
    adapter = build_adapter(name="q", path=str(folder), max_new_tokens=4)
    caplog.clear()
    recwarn.clear()
    adapter.generate(mixed_batch[:2])
    messages = [str(w.message) for w in recwarn] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "temperature" in m or "top_p" in m or "top_k" in m or "generation" in m]


# --- describe() holds everything that decides an answer ---------------------------------------------------


def test_processor_kwargs_and_attention_are_part_of_the_run_key(tiny_cache, tiny_adapters, mixed_batch):
    from cgeval.store import run_key

    folder = str(tiny_model_dir("tiny_qwen2_vl", tiny_cache))
    plain = tiny_adapters["tiny_qwen2_vl"]
    pixels = {"size": {"shortest_edge": 112 * 112, "longest_edge": 112 * 112}}
    larger = build_adapter(name="tiny_qwen2_vl", path=folder, max_new_tokens=8, hf={"processor_kwargs": pixels})
    item = [next(it for it in mixed_batch if _size(it.image_path) == (33, 33))]
    # the kwargs do change what the model sees ...
    assert plain.encode(item)["image_grid_thw"].tolist() != larger.encode(item)["image_grid_thw"].tolist()
    # ... so a resumed run must not reuse answers given without them
    assert larger.describe()["processor_kwargs"] == pixels
    assert run_key(plain, "generate/strict") != run_key(larger, "generate/strict")
    eager = build_adapter(name="tiny_qwen2_vl", path=folder, max_new_tokens=8, attn_implementation="eager")
    assert eager.describe()["attn_implementation"] == "eager"
    assert run_key(plain, "likelihood/strict") != run_key(eager, "likelihood/strict")


# --- stop tokens and checkpoint quirks ---------------------------------------------------------------------


def test_stop_token_ids_are_the_union_of_generation_config_and_tokenizer():
    from types import SimpleNamespace

    from cgeval.models.hf import stop_token_ids

    tok = SimpleNamespace(eos_token_id=151645)
    assert stop_token_ids(SimpleNamespace(eos_token_id=[151645, 151643]), tok) == [151643, 151645]
    assert stop_token_ids(SimpleNamespace(eos_token_id=2), tok) == [2, 151645]  # a stale conversion default
    assert stop_token_ids(None, tok) == [151645]
    assert stop_token_ids(SimpleNamespace(eos_token_id=None), SimpleNamespace(eos_token_id=None)) is None


def _copy_tiny(tiny_cache, tmp_path, name="tiny_llava") -> Path:
    import shutil

    dst = tmp_path / name
    shutil.copytree(tiny_model_dir(name, tiny_cache), dst)
    return dst


def test_a_stale_generation_config_eos_does_not_hide_the_tokenizers(tiny_cache, tmp_path, mixed_batch):
    import json

    folder = _copy_tiny(tiny_cache, tmp_path)
    gen = json.loads((folder / "generation_config.json").read_text())
    gen["eos_token_id"] = 7  # some other id, as a conversion's leftover generation_config may name
    (folder / "generation_config.json").write_text(json.dumps(gen))
    adapter = build_adapter(name="x", path=str(folder), max_new_tokens=4)
    assert adapter.tokenizer.eos_token_id in adapter.eos_token_id and 7 in adapter.eos_token_id
    assert adapter.describe()["eos_token_id"] == adapter.eos_token_id
    assert len(adapter.generate(mixed_batch[:2])) == 2


def test_a_chat_template_that_cannot_render_the_prompt_stops_before_inference(tiny_cache):
    template = OmegaConf.load(CONF / "model" / "huatuogpt_vision_7b.yaml").chat_template
    with pytest.raises(ModelLoadError, match="no system turn"):
        build_adapter(name="x", path=str(tiny_model_dir("tiny_llava", tiny_cache)), chat_template=template,
                      prompt={"system": "You are a radiologist."})


def test_huatuogpt_config_reproduces_the_authors_inference(tiny_cache, tmp_path, mixed_batch):
    """The authors' cli.py prompt, pad-to-square, and the processor values the 7B conversion leaves unset
    (patch_size null): on a tiny LLaVA whose processor_config has the same gap, loaded through the config's keys."""
    import json

    from cgeval.models.prompt import PromptTemplate

    m = OmegaConf.to_container(_compose_model("huatuogpt_vision_7b").model, resolve=True)
    assert m["model_id"] == "FreedomIntelligence/HuatuoGPT-Vision-7B-hf" and m["pad_to_square"] is True
    folder = _copy_tiny(tiny_cache, tmp_path)
    proc = json.loads((folder / "processor_config.json").read_text())
    proc.update(patch_size=None, num_additional_image_tokens=0, vision_feature_select_strategy=None)
    (folder / "processor_config.json").write_text(json.dumps(proc))
    keys = {k: m[k] for k in ("chat_template", "pad_to_square", "backends", "prompt")}
    adapter = build_adapter(name="huatuo_style", path=str(folder), max_new_tokens=4, hf=m["hf"] | {"device": "cpu"},
                            **keys)
    item = mixed_batch[0]
    question = PromptTemplate().render(item).strip()
    assert adapter.prompt_text(item) == f"<|user|>\n<image>\n{question}\n<|assistant|>\n"
    assert adapter.pad_to_square is True
    enc = adapter.encode([item])
    n_image_tokens = int((enc["input_ids"] == adapter.model.config.image_token_id).sum())
    vision = adapter.model.config.vision_config
    assert n_image_tokens == (vision.image_size // vision.patch_size) ** 2  # CLS dropped ('default' strategy)
    assert len(adapter.generate([item])) == 1 and set(adapter.option_logprobs([item])[0]) == set(item.letters)

    bare = build_adapter(name="unpatched", path=str(folder), max_new_tokens=4, chat_template=m["chat_template"])
    with pytest.raises(TypeError):  # what the conversion does without the override: <image> cannot be expanded
        bare.encode([item])


def test_weights_in_a_local_folder_are_part_of_the_description(tiny_cache, tmp_path):
    """Re-training into the same folder changes what describe() (the resume key) holds; a copy elsewhere with the
    same weights does not."""
    import torch
    from safetensors.torch import load_file, save_file

    from cgeval.models.weights import weights_fingerprint

    folder = _copy_tiny(tiny_cache, tmp_path)
    before = build_adapter(name="x", path=str(folder)).describe()["weights_fingerprint"]
    assert before and before == weights_fingerprint(tiny_model_dir("tiny_llava", tiny_cache))
    weights = load_file(folder / "model.safetensors")
    name = sorted(weights)[0]
    weights[name] = weights[name] + torch.ones_like(weights[name])  # "re-trained": same shapes, new values
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    after = build_adapter(name="x", path=str(folder)).describe()["weights_fingerprint"]
    assert after != before
    assert weights_fingerprint(None) is None and weights_fingerprint(tmp_path / "nowhere") is None


def test_letter_scores_sum_the_bare_and_space_prefixed_letter_tokens(tiny, mixed_batch):
    """The tiny models' byte-level BPE spells "A" and " A" ("ĠA") as two tokens: a letter's likelihood is the
    probability of either, with ids read from the vocabulary here, not from the adapter."""
    vocab = tiny.tokenizer.get_vocab()
    expected_ids = {l: (vocab[l], vocab["Ġ" + l]) for l in "ABCD"}
    assert all(a != b for a, b in expected_ids.values())
    assert {l: tuple(ids) for l, ids in tiny.letter_ids.items()} == expected_ids
    item = next(it for it in mixed_batch if it.n_options == 4)
    enc = tiny.encode([item])
    with torch.inference_mode():
        logp = torch.log_softmax(tiny.model(**enc).logits[0, -1].float(), dim=-1)
    got = tiny.option_logprobs([item])[0]
    for l in item.letters:
        bare, spaced = (float(logp[i]) for i in expected_ids[l])
        assert got[l] == pytest.approx(math.log(math.exp(bare) + math.exp(spaced)), abs=1e-5)
        assert got[l] > max(bare, spaced)  # both variants count
