"""The hf back end's recorded settings, validation messages and batch plumbing, each checked against values worked
out here (from the saved folder's own files, the tokenizer's vocabulary, hand counts), fast enough to run once per
mutant of cgeval/models/hf.py (`python experiments/mutation_score.py --modules models.hf`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from pathlib import Path

import pytest
import torch
import transformers
from PIL import Image

from cgeval.models.hf import (
    NEUTRAL_DECODING,
    SAMPLING_FILTERS,
    HFAdapter,
    ModelLoadError,
    PreparedBatch,
    decoding_settings,
    sha256_text,
)
from cgeval.models.prompt import TEXT_ONLY, PromptTemplate
from cgeval.models.tiny import tiny_model_dir
from cgeval.models.weights import weights_fingerprint

from .test_hf import _copy_tiny


@pytest.fixture(scope="module")
def llava_dir(tiny_cache) -> Path:
    return tiny_model_dir("tiny_llava", tiny_cache)


def _exact(excinfo) -> str:
    return str(excinfo.value)


# --- decoding settings ----------------------------------------------------------------------------------------


def _known(key: str) -> bool:
    return hasattr(transformers.GenerationConfig(), key)


def test_greedy_decoding_settings_are_every_neutral_value_and_no_sampling_filter():
    got = decoding_settings(7, False, 0.3, 0.4)
    assert got["max_new_tokens"] == 7 and got["do_sample"] is False
    assert got["num_beams"] == 1 and got["repetition_penalty"] == 1.0 and got["no_repeat_ngram_size"] == 0
    assert got["top_k"] is None and got["top_p"] is None and got["temperature"] is None
    expected = {"max_new_tokens": 7, "do_sample": False,
                **{k: v for k, v in NEUTRAL_DECODING.items() if _known(k)},
                **{k: None for k in SAMPLING_FILTERS if _known(k)}}
    assert got == expected
    assert all(type(got[k]) is type(expected[k]) for k in expected)  # 1.0 stays a float, 0 an int, None None


def test_sampling_settings_take_only_temperature_and_top_p_from_the_config():
    got = decoding_settings(5, True, 0.7, 0.9)
    assert got["do_sample"] is True and got["max_new_tokens"] == 5
    assert got["temperature"] == 0.7 and got["top_p"] == 0.9
    assert got["top_k"] is None and got["min_p"] is None and got["typical_p"] is None
    assert decoding_settings("3", 1, "0.5", "1")["max_new_tokens"] == 3  # strings from a config file become numbers
    assert decoding_settings("3", 1, "0.5", "1")["temperature"] == 0.5


def test_sha256_text_is_the_first_16_hex_digits_and_none_stays_none():
    assert sha256_text(None) is None
    assert sha256_text("abc") == "ba7816bf8f01cfea"  # sha256("abc") = ba7816bf8f01cfea414140de5dae2223...
    assert sha256_text("") == "e3b0c44298fc1c14"


# --- what describe() and runtime() record -----------------------------------------------------------------------


def _letter_ids(folder: Path) -> dict[str, list[int]]:
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    return {l: [vocab[l], vocab["Ġ" + l]] for l in "ABCD"}


def test_describe_is_exactly_the_settings_that_decide_an_answer(llava_dir):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    template = (llava_dir / "chat_template.jinja").read_text()
    assert adapter.describe() == {
        "backend": "hf",
        "model_id": None,
        "revision": None,
        "resolved_commit": None,
        "path": str(llava_dir),
        "weights_fingerprint": weights_fingerprint(llava_dir),
        "model_class": "LlavaForConditionalGeneration",
        "dtype": "float32",
        "device": "cpu",
        "device_map": None,
        "attn_implementation": None,
        "max_new_tokens": 16,
        "do_sample": False,
        "decoding": decoding_settings(16, False, 1.0, 1.0),
        "eos_token_id": [2],  # the folder's generation_config and tokenizer both say </s> = 2
        "trust_remote_code": False,
        "pad_to_square": False,
        "processor_kwargs": {},
        "image_processor": {"class": "CLIPImageProcessor", "backend": "torchvision"},
        "prompt": PromptTemplate().describe(),
        "chat_template_source": "checkpoint",
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest()[:16],
        "letter_token_ids": _letter_ids(llava_dir),
        "transformers_version": transformers.__version__,
    }


def test_describe_of_a_sampling_replica_with_every_setting_changed(llava_dir):
    template = "{% for m in messages %}{{ m['content'][-1]['text'] }}{% endfor %} ANSWER:"
    adapter = HFAdapter(name="x", path=str(llava_dir), dtype="float32", device="cpu", attn_implementation="eager",
                        max_new_tokens=3, do_sample=True, temperature=0.5, top_p=0.8, seed=7, pad_to_square=True,
                        processor_kwargs={"do_resize": True}, fast_image_processor=False, chat_template=template,
                        prompt={"template": "Q: {question}\n{options}", "system": None}, tiny_replica=True)
    d = adapter.describe()
    assert d["tiny_replica"] is True
    assert (d["temperature"], d["top_p"], d["seed"]) == (0.5, 0.8, 7)
    assert d["max_new_tokens"] == 3 and d["do_sample"] is True and d["decoding"]["temperature"] == 0.5
    assert d["attn_implementation"] == "eager" and d["pad_to_square"] is True
    assert d["processor_kwargs"] == {"do_resize": True}
    assert d["image_processor"] == {"class": "CLIPImageProcessorPil", "backend": "pil"}
    assert d["chat_template_source"] == "config"
    assert d["chat_template_sha256"] == hashlib.sha256(template.encode()).hexdigest()[:16]
    assert d["prompt"] == PromptTemplate(template="Q: {question}\n{options}").describe()
    assert d["prompt"]["default"] is False
    greedy = HFAdapter(name="x", path=str(llava_dir)).describe()
    assert "tiny_replica" not in greedy and not {"temperature", "top_p", "seed"} & set(greedy)


def test_runtime_records_the_speed_settings_and_the_share_of_padding(llava_dir, mixed_batch):
    adapter = HFAdapter(name="x", path=str(llava_dir), prefetch_batches=2, preprocess_workers=3,
                        group_by_length=False)
    assert adapter.runtime() == {"prefetch_batches": 2, "preprocess_workers": 3, "image_processor_device": "cpu",
                                 "group_by_length": False, "padding_fraction": None}
    assert adapter.processor_device is None  # on the CPU the processor picks its own device
    short, long = mixed_batch[2], mixed_batch[0]
    lengths = [adapter.encode([it])["input_ids"].shape[1] for it in (short, long)]  # one item: no padding
    assert lengths[0] != lengths[1]
    adapter.generate([short, long])
    width = max(lengths)
    expected = (2 * width - sum(lengths)) / (2 * width)
    assert adapter.runtime()["padding_fraction"] == round(expected, 4)
    adapter.option_logprobs([short, long])  # counted again: the fraction over both batches is the same
    assert adapter.runtime()["padding_fraction"] == round(expected, 4)
    adapter.option_logprobs([short])  # one more batch with no padding
    assert adapter.runtime()["padding_fraction"] == round((2 * width - sum(lengths)) * 2 / (4 * width + lengths[0]), 4)


def test_speed_settings_keep_their_defaults(llava_dir):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    assert adapter.runtime() == {"prefetch_batches": 1, "preprocess_workers": 1, "image_processor_device": "cpu",
                                 "group_by_length": True, "padding_fraction": None}
    assert adapter.image_workers == 4 and adapter.backends == ["hf"] and adapter.seed == 0


# --- settings refused, with the reason --------------------------------------------------------------------------


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"dtype": "float64"}, "dtype must be one of ('auto', 'float32', 'bfloat16', 'float16'), got 'float64'"),
    ({"max_new_tokens": 0}, "max_new_tokens must be >= 1, got 0"),
    ({"prefetch_batches": -1}, "prefetch_batches must be >= 0 and preprocess_workers >= 1, got -1 and 1"),
    ({"preprocess_workers": 0}, "prefetch_batches must be >= 0 and preprocess_workers >= 1, got 1 and 0"),
])
def test_bad_settings_are_refused_with_the_exact_reason(llava_dir, kwargs, message):
    with pytest.raises(ValueError) as e:
        HFAdapter(name="x", path=str(llava_dir), **kwargs)
    assert _exact(e) == message


def test_the_edges_of_the_allowed_settings_load(llava_dir):
    adapter = HFAdapter(name="x", path=str(llava_dir), max_new_tokens=1, prefetch_batches=0, preprocess_workers=1)
    assert adapter.max_new_tokens == 1 and adapter.prefetch_batches == 0


def test_no_source_and_unknown_classes_are_named_load_errors(llava_dir):
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="x")
    assert _exact(e) == "model 'x': set model_id (a hub id) or path (a local folder)"
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="x", path=str(llava_dir), model_class="NoSuchModel")
    assert _exact(e) == "model 'x': transformers has no model class 'NoSuchModel'"
    with pytest.raises(ModelLoadError) as e:  # a name transformers has, but not a model class
        HFAdapter(name="x", path=str(llava_dir), model_class="is_torch_available")
    assert _exact(e) == "model 'x': transformers has no model class 'is_torch_available'"


def test_a_folder_without_weights_names_the_class_and_the_path(tmp_path):
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="x", path=str(tmp_path / "nowhere"))
    assert _exact(e).startswith(f"model 'x': cannot load AutoModelForImageTextToText from local path "
                                f"{tmp_path / 'nowhere'}: ")


def test_a_folder_with_a_processor_but_no_model_is_a_load_error(tiny_cache, tmp_path):
    folder = _copy_tiny(tiny_cache, tmp_path)
    (folder / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="y", path=str(folder))
    assert _exact(e).startswith(f"model 'y': cannot load AutoModelForImageTextToText from local path {folder}: ")


def test_a_processor_without_a_chat_template_is_a_named_error(tiny_cache, tmp_path):
    folder = _copy_tiny(tiny_cache, tmp_path)
    (folder / "chat_template.jinja").unlink()
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="x", path=str(folder))
    assert _exact(e) == "model 'x': the processor has no chat template; set chat_template in the config"
    given = HFAdapter(name="x", path=str(folder), chat_template="{{ messages[0]['content'][-1]['text'] }}")
    assert given.chat_template_source == "config"


def test_a_template_that_fails_names_its_source(llava_dir):
    with pytest.raises(ModelLoadError) as e:
        HFAdapter(name="x", path=str(llava_dir), chat_template="{{ raise_exception('no way') }}")
    assert _exact(e) == ("model 'x': the chat template (config) does not render this prompt: "
                         "TemplateError: no way")


def test_a_tokenizer_without_a_pad_token_pads_with_its_eos(tiny_cache, tmp_path):
    folder = _copy_tiny(tiny_cache, tmp_path)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["pad_token"] = None
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    adapter = HFAdapter(name="x", path=str(folder))
    assert adapter.tokenizer.pad_token == "</s>" and adapter.tokenizer.padding_side == "left"


# --- dtype and device -------------------------------------------------------------------------------------------


def test_auto_dtype_is_float32_on_the_cpu_and_bfloat16_when_spread_by_a_device_map(llava_dir):
    on_cpu = HFAdapter(name="x", path=str(llava_dir), device="cpu")
    assert on_cpu.dtype == "float32" and on_cpu.model.dtype == torch.float32 and on_cpu.torch_dtype is torch.float32
    mapped_to_cpu = HFAdapter(name="x", path=str(llava_dir), device_map="cpu")
    assert mapped_to_cpu.dtype == "float32" and mapped_to_cpu.describe()["device_map"] == "cpu"
    spread = HFAdapter(name="x", path=str(llava_dir), device="cpu", device_map="auto")
    assert spread.dtype == "bfloat16" and spread.model.dtype == torch.bfloat16
    half = HFAdapter(name="x", path=str(llava_dir), dtype="bfloat16")
    assert half.model.dtype == torch.bfloat16 and half.describe()["dtype"] == "bfloat16"


def test_a_local_folder_ignores_a_revision_and_the_hub(llava_dir, monkeypatch):
    import cgeval.models.hf as hf

    def offline(*args):
        raise AssertionError("a local folder must not touch the hub")

    monkeypatch.setattr(hf, "ensure_hub_reachable", offline)
    adapter = HFAdapter(name="x", path=str(llava_dir), revision="0123abc")
    assert adapter.describe()["revision"] == "0123abc" and adapter.describe()["path"] == str(llava_dir)


def test_a_hub_id_is_checked_for_reachability_with_its_revision(monkeypatch):
    import cgeval.models.hf as hf

    seen = []

    class Offline(ModelLoadError):
        pass

    def unreachable(name, model_id, revision):
        seen.append((name, model_id, revision))
        raise Offline("offline")

    monkeypatch.setattr(hf, "ensure_hub_reachable", unreachable)
    with pytest.raises(Offline):
        HFAdapter(name="m", model_id="org/model", revision="v1")
    assert seen == [("m", "org/model", "v1")]


def test_the_image_processor_backend_is_the_one_asked_for(llava_dir):
    fast = HFAdapter(name="x", path=str(llava_dir), fast_image_processor=True)
    slow = HFAdapter(name="x", path=str(llava_dir), fast_image_processor=False)
    assert (fast.image_processor_backend, type(fast.processor.image_processor).__name__) == (
        "torchvision", "CLIPImageProcessor")
    assert (slow.image_processor_backend, type(slow.processor.image_processor).__name__) == (
        "pil", "CLIPImageProcessorPil")
    default = transformers.AutoImageProcessor.from_pretrained(str(llava_dir))
    kept = HFAdapter(name="x", path=str(llava_dir), fast_image_processor=None)
    assert kept.image_processor_backend == default.backend


def test_pad_fill_is_the_vision_towers_mean_colour_truncated(llava_dir):
    mean = json.loads((llava_dir / "processor_config.json").read_text())["image_processor"]["image_mean"]
    assert mean == [0.48145466, 0.4578275, 0.40821073]
    assert HFAdapter(name="x", path=str(llava_dir)).pad_fill == (122, 116, 104)  # int(255 * m): 122.77 -> 122


# --- batches ----------------------------------------------------------------------------------------------------


def test_order_keys_are_pixel_count_width_height_or_none(llava_dir, mixed_batch):
    sizes = []
    for it in mixed_batch:
        with Image.open(it.image_path) as im:
            sizes.append(im.size)
    grouped = HFAdapter(name="x", path=str(llava_dir), image_workers=2)
    assert grouped.order_keys(mixed_batch) == [(w * h, w, h) for w, h in sizes]
    assert sizes[0] == (40, 150) and grouped.order_keys(mixed_batch[:1]) == [(6000, 40, 150)]
    assert HFAdapter(name="x", path=str(llava_dir), group_by_length=False).order_keys(mixed_batch) is None


def test_prepared_inputs_must_belong_to_the_batch(llava_dir, mixed_batch):
    adapter = HFAdapter(name="x", path=str(llava_dir), max_new_tokens=2)
    prepared = adapter.prepare(mixed_batch[:2])
    assert prepared.item_ids == (mixed_batch[0].item_id, mixed_batch[1].item_id)
    assert adapter.generate(mixed_batch[:2], prepared) == adapter.generate(mixed_batch[:2])
    with pytest.raises(ValueError) as e:
        adapter.option_logprobs(mixed_batch[1:4], prepared)
    assert _exact(e) == "x: prepared inputs for 2 other items passed with a batch of 3"
    other = PreparedBatch((mixed_batch[1].item_id, mixed_batch[0].item_id), prepared.inputs)  # same items, swapped
    with pytest.raises(ValueError):
        adapter.generate(mixed_batch[:2], other)


def test_prepared_inputs_are_used_as_they_are(llava_dir, mixed_batch):
    """The forward pass takes the prepared tensors, not a fresh encoding of the batch."""
    adapter = HFAdapter(name="x", path=str(llava_dir))
    a, b = mixed_batch[2], mixed_batch[0]  # a: 2 options, b: 4
    swapped = PreparedBatch((a.item_id,), adapter.encode([b]))  # b's inputs under a's id
    assert adapter.option_logprobs([a], swapped)[0] == pytest.approx(
        {l: v for l, v in adapter.option_logprobs([b])[0].items() if l in a.letters})


def test_empty_batches_ask_the_model_nothing(llava_dir):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    assert adapter.generate([]) == [] and adapter.option_logprobs([]) == []
    assert adapter.runtime()["padding_fraction"] is None


def test_a_worker_thread_gets_its_own_processor_copy(llava_dir, mixed_batch):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    assert adapter._own_processor() is adapter.processor
    seen = {}

    def work():
        first, second = adapter._own_processor(), adapter._own_processor()
        seen["same_copy"] = first is second
        seen["own"] = first is not adapter.processor
        seen["ids"] = adapter.prepare(mixed_batch[:2]).inputs["input_ids"]

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen["same_copy"] and seen["own"]
    assert torch.equal(seen["ids"], adapter.encode(mixed_batch[:2])["input_ids"])


def _text_only(item):
    return dataclasses.replace(item, image="", image_path="", meta={**item.meta, TEXT_ONLY: True})


def test_text_only_batches_go_without_images_and_a_mixed_batch_is_refused(llava_dir, mixed_batch):
    adapter = HFAdapter(name="x", path=str(llava_dir), max_new_tokens=2)
    text = [_text_only(it) for it in mixed_batch[:2]]
    enc = adapter.encode(text)
    assert "pixel_values" not in enc and int((enc["input_ids"] == 4).sum()) == 0  # 4: the <image> token
    assert len(adapter.generate(text)) == 2
    with pytest.raises(ValueError) as e:
        adapter.encode([mixed_batch[0], text[1]])
    assert _exact(e) == "model 'x': a batch mixes items with and without an image"
    images = adapter.encode(mixed_batch[:2])
    assert images["pixel_values"].shape[0] == 2 and images["pixel_values"].dtype == torch.float32


def test_one_bos_whether_or_not_the_template_writes_it(llava_dir, mixed_batch):
    item = mixed_batch[0]
    plain = HFAdapter(name="x", path=str(llava_dir))
    assert not plain.prompt_text(item).startswith("<s>")
    ids = plain.encode([item])["input_ids"][0].tolist()
    assert ids[0] == 1 and ids.count(1) == 1  # <s> = 1, added by the tokenizer
    writes_bos = HFAdapter(name="x", path=str(llava_dir),
                           chat_template="<s>{{ messages[-1]['content'][-1]['text'] }}<image> ANSWER:")
    ids = writes_bos.encode([item])["input_ids"][0].tolist()
    assert ids[0] == 1 and ids.count(1) == 1


def test_generated_replies_are_the_new_tokens_only_and_stripped(llava_dir, mixed_batch, monkeypatch):
    adapter = HFAdapter(name="x", path=str(llava_dir), max_new_tokens=3)
    vocab = adapter.tokenizer.get_vocab()
    new = [vocab["ĠA"], vocab["B"], adapter.tokenizer.eos_token_id]
    calls = {}

    def scripted(**kwargs):
        calls.update(kwargs)
        ids = kwargs["input_ids"]
        return torch.cat([ids, torch.tensor([new] * ids.shape[0])], dim=1)

    monkeypatch.setattr(adapter.model, "generate", scripted)
    assert adapter.generate(mixed_batch[:2]) == ["AB", "AB"]  # " A" "B" </s>: the space and the EOS go
    assert calls["pad_token_id"] == adapter.tokenizer.pad_token_id == 3
    assert calls["eos_token_id"] == [2] and calls["max_new_tokens"] == 3 and calls["do_sample"] is False
    assert calls["repetition_penalty"] == 1.0


def test_sampling_reseeds_before_every_batch(llava_dir, mixed_batch):
    adapter = HFAdapter(name="x", path=str(llava_dir), do_sample=True, seed=11, max_new_tokens=6)
    first = adapter.generate(mixed_batch[:2])
    torch.manual_seed(12345)  # whatever happened to the global generator in between
    assert adapter.generate(mixed_batch[:2]) == first


def test_letter_scoring_asks_for_the_last_positions_logits_only_and_no_cache(llava_dir, mixed_batch, monkeypatch):
    """A 7B model's logits over the whole vocabulary at every position would be batch x length x 150k floats: the
    forward is asked for the last position only (where the model supports it) and keeps no key/value cache."""
    adapter = HFAdapter(name="x", path=str(llava_dir))
    assert adapter._keeps_last_logits is True  # LLaVA's forward takes logits_to_keep
    forward, seen = adapter.model.forward, []

    def spy(*args, **kwargs):
        seen.append({k: kwargs.get(k, "unset") for k in ("logits_to_keep", "use_cache")})
        out = forward(*args, **kwargs)
        seen[-1]["positions"] = out.logits.shape[1]
        return out

    monkeypatch.setattr(adapter.model, "forward", spy)
    scores = adapter.option_logprobs(mixed_batch[:2])
    assert seen == [{"logits_to_keep": 1, "use_cache": False, "positions": 1}]
    monkeypatch.setattr(adapter.model, "forward", forward)
    assert scores == adapter.option_logprobs(mixed_batch[:2])


def test_a_hub_checkpoints_resolved_commit_is_recorded(llava_dir):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    adapter.model.config._commit_hash = "0f3c2b1a"  # what from_pretrained sets for a hub download
    assert adapter.describe()["resolved_commit"] == "0f3c2b1a"


def test_stop_tokens_of_a_tokenizer_that_has_no_eos_attribute():
    from types import SimpleNamespace

    from cgeval.models.hf import stop_token_ids

    assert stop_token_ids(SimpleNamespace(eos_token_id=5), object()) == [5]
    assert stop_token_ids(object(), object()) is None


def test_a_forward_without_logits_to_keep_is_not_given_it(llava_dir, mixed_batch, monkeypatch):
    adapter = HFAdapter(name="x", path=str(llava_dir))
    adapter._keeps_last_logits = False  # as for a model class whose forward has no such parameter
    forward, seen = adapter.model.forward, []

    def spy(*args, **kwargs):
        seen.append("logits_to_keep" in kwargs)
        return forward(*args, **kwargs)

    monkeypatch.setattr(adapter.model, "forward", spy)
    adapter.option_logprobs(mixed_batch[:1])
    assert seen == [False]


def test_a_processor_without_an_image_processor_records_none(llava_dir):
    from types import SimpleNamespace

    adapter = HFAdapter(name="x", path=str(llava_dir))
    adapter.processor = SimpleNamespace(tokenizer=adapter.tokenizer)  # a text-only processor
    assert "image_processor" not in adapter.describe()
