"""The vLLM adapter: request construction and result handling on CPU with stand-in vLLM objects; the real engine
only where a CUDA GPU and vLLM are present (``-m "gpu and vllm"``; model from $CGEVAL_VLLM_TEST_MODEL)."""

import math
import os
import sys
import types
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image

from cgeval.data.records import Item
from cgeval.models.base import ModelAdapter
from cgeval.models.media import (
    CLIP_MEAN_FILL,
    ImageLoadError,
    expand_to_square,
    load_item_images,
)
from cgeval.models.prompt import PromptTemplate, chat_messages
from cgeval.models.vllm_backend import (
    LetterTokenError,
    VLLMAdapter,
    VLLMNotInstalled,
    chat_add_special_tokens,
    generation_params,
    letter_logprobs,
    likelihood_params,
    replies_from_outputs,
    vllm_messages,
)

# ------------------------------------------------------------------ stand-ins for vLLM's output objects


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    text: str
    logprobs: list[dict[int, Logprob]] | None = None
    index: int = 0
    token_ids: list[int] = field(default_factory=list)


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[CompletionOutput]


class ByteTokenizer:
    """Byte-level-BPE-like: "A" and " A" are two different single tokens."""

    vocab = {"A": 32, "B": 33, "C": 34, "D": 35, " A": 362, " B": 425, " C": 356, " D": 422, "x": 87}

    def encode(self, text, add_special_tokens=False):
        return [self.vocab[text]]

    def decode(self, ids):
        inverse = {v: k for k, v in self.vocab.items()}
        return "".join(inverse[i] for i in ids)


IDS = {"A": (32, 362), "B": (33, 425), "C": (34, 356), "D": (35, 422)}
# no checkpoint default (Qwen2-VL's repetition_penalty 1.05) may reach a request
NEUTRAL = {"repetition_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0, "min_tokens": 0}


def lse(*values):
    return math.log(sum(math.exp(v) for v in values))


def make_items(tmp_path, n):
    items = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("L", (30 + 2 * i, 20), color=40).save(path)
        letters = "ABCD" if i % 2 else "AB"
        options = tuple((l, f"x{l}{i}") for l in letters)
        items.append(Item(item_id=f"it{i}", subset=1, dataset=1, modality="CT", area="Lung", task="Diseases",
                          image=f"img{i}.png", image_path=str(path), prompt=f"Q{i}?\nA: ...", question=f"Q{i}?",
                          options=options, gold="A", answer_text=options[0][1]))
    return items


# ------------------------------------------------------------------ a stand-in vllm module for the adapter


class FakeSamplingParams:
    def __init__(self, **kw):
        self.kw = kw


class FakeLLM:
    instances: list = []

    def __init__(self, **engine_args):
        self.engine_args = engine_args
        self.chat_calls = []
        self.logprobs_for = lambda i, ids: {t: Logprob(-1.0 - 0.5 * k) for k, t in enumerate(ids)}
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return ByteTokenizer()

    def chat(self, conversations, params, use_tqdm=True, chat_template=None, tokenization_kwargs=None):
        self.chat_calls.append((conversations, params, chat_template))
        self.tokenization_kwargs = tokenization_kwargs
        outs = []
        for i, _ in enumerate(conversations):
            ids = params.kw.get("logprob_token_ids")
            lp = [self.logprobs_for(i, ids)] if ids else None
            outs.append(RequestOutput(str(i), [CompletionOutput(text=f"answer {i}", logprobs=lp)]))
        return outs


@pytest.fixture
def fake_vllm(monkeypatch):
    mod = types.ModuleType("vllm")
    mod.LLM = FakeLLM
    mod.SamplingParams = FakeSamplingParams
    mod.__version__ = "0.33.0-fake"
    monkeypatch.setitem(sys.modules, "vllm", mod)
    FakeLLM.instances = []
    return mod


def build(**kw):
    kw.setdefault("name", "qwen2_vl_7b")
    kw.setdefault("model_id", "Qwen/Qwen2-VL-7B-Instruct")
    return VLLMAdapter(**kw)


# ------------------------------------------------------------------ request construction


def test_messages_carry_the_pil_image_in_place_of_the_placeholder(tmp_path):
    item = make_items(tmp_path, 1)[0]
    image = Image.new("RGB", (8, 8))
    template = PromptTemplate(system="Be brief.")
    msgs = vllm_messages(item, template, image)
    assert msgs[0] == {"role": "system", "content": [{"type": "text", "text": "Be brief."}]}
    assert msgs[1]["role"] == "user"
    assert msgs[1]["content"] == [{"type": "image_pil", "image_pil": image}, {"type": "text", "text": item.prompt}]
    assert chat_messages(item, template)[1]["content"][0] == {"type": "image"}  # the shared builder is untouched


def test_sampling_params_are_greedy_and_seeded():
    assert generation_params(32, 7) == {"temperature": 0.0, "max_tokens": 32, "seed": 7, **NEUTRAL}
    assert likelihood_params({"A": (35, 9), "B": (33,), "C": (34, 9)}, 1) == {
        "temperature": 0.0, "max_tokens": 1, "seed": 1, **NEUTRAL, "logprob_token_ids": [9, 33, 34, 35]}


def test_images_are_rgb_and_padded_to_square_on_request(tmp_path):
    items = make_items(tmp_path, 3)
    plain = load_item_images(items, pad_to_square=False, workers=2)
    assert [im.size for im in plain] == [(30, 20), (32, 20), (34, 20)] and all(im.mode == "RGB" for im in plain)
    padded = load_item_images(items, pad_to_square=True, workers=2)
    assert [im.size for im in padded] == [(30, 30), (32, 32), (34, 34)]
    assert padded[0].getpixel((0, 0)) == CLIP_MEAN_FILL and padded[0].getpixel((15, 15)) == (40, 40, 40)
    square = Image.new("RGB", (5, 5))
    assert expand_to_square(square) is square


def test_unreadable_image_names_the_item(tmp_path):
    item = make_items(tmp_path, 1)[0]
    (tmp_path / "img0.png").write_bytes(b"not a png")
    with pytest.raises(ImageLoadError, match="it0"):
        load_item_images([item])


# ------------------------------------------------------------------ result handling


def test_replies_in_order_and_empty_output_is_empty_reply(tmp_path):
    items = make_items(tmp_path, 3)
    outs = [RequestOutput("0", [CompletionOutput("B")]), RequestOutput("1", []),
            RequestOutput("2", [CompletionOutput("The answer is D")])]
    assert replies_from_outputs(outs, items) == ["B", "", "The answer is D"]
    with pytest.raises(RuntimeError, match="2 outputs for 3"):
        replies_from_outputs(outs[:2], items)


def test_letter_logprobs_sum_each_letters_tokens_over_the_items_own_letters():
    out = RequestOutput("0", [CompletionOutput("A", [{32: Logprob(-0.1), 362: Logprob(-3.0), 33: Logprob(-2.3),
                                                      425: Logprob(-4.0), 34: Logprob(-4.0), 356: Logprob(-6.0),
                                                      999: Logprob(-0.05)}])])
    scores, missing = letter_logprobs(out, ("A", "B"), IDS)
    assert scores == {"A": pytest.approx(lse(-0.1, -3.0)), "B": pytest.approx(lse(-2.3, -4.0))}
    assert missing == []


def test_a_letter_without_logprob_scores_minus_inf_and_is_reported():
    out = RequestOutput("0", [CompletionOutput("A", [{32: Logprob(-0.1), 362: Logprob(-2.0), 33: Logprob(-1.5),
                                                      34: Logprob(float("nan")), 356: Logprob(float("nan"))}])])
    scores, missing = letter_logprobs(out, ("A", "B", "C", "D"), IDS)
    assert scores["A"] == pytest.approx(lse(-0.1, -2.0))
    assert scores["B"] == -1.5  # one of its two ids came back: scored from it, and reported
    assert scores["C"] == -math.inf and scores["D"] == -math.inf
    assert missing == ["B", "C", "D"]
    nothing = RequestOutput("1", [CompletionOutput("", None)])
    assert letter_logprobs(nothing, ("A", "B"), IDS) == ({"A": -math.inf, "B": -math.inf}, ["A", "B"])


# ------------------------------------------------------------------ the adapter over a stand-in engine


def test_engine_settings(fake_vllm):
    m = build(revision="abc123", dtype="bfloat16", tensor_parallel_size=2, max_model_len=2048, seed=5,
              device="cuda", device_map="auto", model_class="AutoModelForImageTextToText", backends=["hf", "vllm"],
              engine_kwargs={"max_num_batched_tokens": 8192})
    assert isinstance(m, ModelAdapter)
    args = FakeLLM.instances[0].engine_args
    assert args["model"] == "Qwen/Qwen2-VL-7B-Instruct" and args["revision"] == "abc123"
    assert args["tensor_parallel_size"] == 2 and args["max_model_len"] == 2048 and args["seed"] == 5
    assert args["enable_prefix_caching"] is True and args["limit_mm_per_prompt"] == {"image": 1}
    assert args["dtype"] == "bfloat16" and args["max_num_batched_tokens"] == 8192
    # "auto" is bfloat16, as on the hf back end's GPU path, not vLLM's checkpoint-dtype "auto"
    assert build(dtype="auto").engine_args["dtype"] == build().engine_args["dtype"] == "bfloat16"
    assert build(dtype="float16").engine_args["dtype"] == "float16"
    d = m.describe()
    assert d["backend"] == "vllm" and d["vllm_version"] == "0.33.0-fake"
    assert d["ignored_config"] == ["device", "device_map", "model_class"]
    assert d["likelihood"]["letter_token_ids"] == {l: list(ids) for l, ids in IDS.items()}


def test_local_path_overrides_hub_id_and_revision(fake_vllm):
    build(revision="abc123", path="/models/qwen")
    args = FakeLLM.instances[0].engine_args
    assert args["model"] == "/models/qwen" and args["revision"] is None


def test_generate_sends_the_whole_batch_in_one_call(fake_vllm, tmp_path):
    items = make_items(tmp_path, 5)
    m = build(max_new_tokens=12, seed=9, pad_to_square=True, chat_template="{{ messages }}")
    assert m.generate(items) == [f"answer {i}" for i in range(5)]
    (call,) = FakeLLM.instances[0].chat_calls
    conversations, params, chat_template = call
    assert len(conversations) == 5 and chat_template == "{{ messages }}"
    assert params.kw == {"temperature": 0.0, "max_tokens": 12, "seed": 9, **NEUTRAL}
    for item, conv in zip(items, conversations):
        image_part, text_part = conv[-1]["content"]
        assert text_part["text"] == item.prompt
        im = image_part["image_pil"]
        assert im.mode == "RGB" and im.size[0] == im.size[1]
    assert m.generate([]) == []


def test_option_logprobs_per_item_letters(fake_vllm, tmp_path):
    items = make_items(tmp_path, 4)  # 2- and 4-option items in one batch
    m = build()
    scores = m.option_logprobs(items)
    (call,) = FakeLLM.instances[0].chat_calls
    ids = sorted(t for pair in IDS.values() for t in pair)
    assert call[1].kw == {"temperature": 0.0, "max_tokens": 1, "seed": 0, **NEUTRAL, "logprob_token_ids": ids}
    assert [sorted(s) for s in scores] == [["A", "B"], ["A", "B", "C", "D"]] * 2
    rank = {t: k for k, t in enumerate(ids)}  # the stand-in engine gives id number k the logprob -1 - k/2
    assert scores[1] == {l: pytest.approx(lse(*(-1.0 - 0.5 * rank[t] for t in IDS[l]))) for l in "ABCD"}
    assert m.unscored == {}


def test_option_logprobs_notes_unscored_letters(fake_vllm, tmp_path, caplog):
    items = make_items(tmp_path, 2)
    m = build()
    full = {32: Logprob(-1.0), 362: Logprob(-3.0), 33: Logprob(-2.0), 425: Logprob(-2.5)}
    FakeLLM.instances[0].logprobs_for = lambda i, ids: (
        {32: Logprob(-0.5), 362: Logprob(-4.0)} if i == 1 else full)
    scores = m.option_logprobs(items)
    assert scores[0] == {"A": pytest.approx(lse(-1.0, -3.0)), "B": pytest.approx(lse(-2.0, -2.5))}
    assert scores[1]["A"] == pytest.approx(lse(-0.5, -4.0)) and scores[1]["D"] == -math.inf
    assert m.unscored == {"it1": ["B", "C", "D"]}
    assert "it1" in caplog.text


class TwoTokenLetters(ByteTokenizer):
    """Every letter spelled by two non-space tokens: no single token to score."""

    def encode(self, text, add_special_tokens=False):
        return [self.vocab["x"], self.vocab[text]]


def test_letters_that_are_not_single_tokens_only_stop_likelihood(fake_vllm, tmp_path, monkeypatch):
    monkeypatch.setattr(FakeLLM, "get_tokenizer", lambda self: TwoTokenLetters())
    m = build()
    assert "no single token" in m.describe()["likelihood"]["unavailable"]
    assert m.generate(make_items(tmp_path, 1)) == ["answer 0"]
    with pytest.raises(LetterTokenError):
        m.option_logprobs(make_items(tmp_path, 1))


def test_backends_without_vllm_is_refused(fake_vllm):
    with pytest.raises(ValueError, match="back ends"):
        build(backends=["hf"])


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    with pytest.raises(VLLMNotInstalled, match=r"cgeval\[vllm\]"):
        build()


# ------------------------------------------------------------------ the installed vLLM's API (vLLM only, no GPU)


def _vllm_api_available() -> bool:
    try:
        import vllm.sampling_params  # noqa: F401
    except Exception:  # noqa: BLE001 - not installed, or installed without what it imports
        return False
    return True


@pytest.mark.vllm
@pytest.mark.skipif(not _vllm_api_available(), reason="needs vllm installed")
def test_requests_are_valid_for_the_installed_vllm(monkeypatch, tmp_path):
    """What the adapter sends, against the installed release (the stand-ins above cannot catch a renamed or
    dropped argument): every SamplingParams it builds is accepted by the real class, every keyword it passes to
    LLM.chat is one the real method takes, and every engine argument is an EngineArgs field. LLM and EngineArgs
    are read from source: importing them pulls in the whole serving stack."""
    import ast

    import vllm.sampling_params as sp

    root = Path(sp.__file__).parent
    tree = ast.parse((root / "entrypoints" / "llm.py").read_text())
    chat = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "chat")
    chat_params = {a.arg for a in chat.args.args + chat.args.kwonlyargs}
    tree = ast.parse((root / "engine" / "arg_utils.py").read_text())
    engine = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "EngineArgs")
    fields = {s.target.id for s in engine.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)}

    built = []

    def checked_params(**kw):  # the real class validates; the stand-in engine gets the stand-in
        built.append(sp.SamplingParams(**kw))
        return FakeSamplingParams(**kw)

    mod = types.ModuleType("vllm")
    mod.LLM, mod.SamplingParams, mod.__version__ = FakeLLM, checked_params, sp.__name__
    monkeypatch.setitem(sys.modules, "vllm", mod)
    m = build(max_num_seqs=64, mm_processor_kwargs={"max_pixels": 1024}, chat_template="{{ messages }}")
    passed = []
    real_chat = m.llm.chat
    m.llm.chat = lambda conversations, params, **kw: passed.append(set(kw)) or real_chat(conversations, params, **kw)
    items = make_items(tmp_path, 2)
    m.generate(items)
    m.option_logprobs(items)

    assert set(m.engine_args) <= fields, sorted(set(m.engine_args) - fields)
    assert passed and all(kw <= chat_params for kw in passed), passed
    assert "tokenization_kwargs" in set().union(*passed)
    greedy, letters = built
    assert greedy.temperature == 0.0 and greedy.repetition_penalty == 1.0 and letters.max_tokens == 1
    assert sorted(letters.logprob_token_ids) == sorted(t for ids in IDS.values() for t in ids)
    assert len(letters.logprob_token_ids) <= getattr(sp, "MAX_LOGPROB_TOKEN_IDS", 128)


# ------------------------------------------------------------------ the real engine (GPU + vLLM only)


def _real_engine_available() -> bool:
    try:
        import torch
        import vllm  # noqa: F401  (is it installed?)
    except ImportError:
        return False
    return torch.cuda.is_available()


def real_engine(test):
    """Marked gpu and vllm, and skipped unless both a CUDA GPU and vLLM are here."""
    skip = pytest.mark.skipif(not _real_engine_available(), reason="needs a CUDA GPU and vllm installed")
    return pytest.mark.gpu(pytest.mark.vllm(skip(test)))


@pytest.fixture(scope="module")
def real_adapter():
    # A hub id or local folder in $CGEVAL_VLLM_TEST_MODEL; else the tiny random Qwen2-VL, built locally (no hub).
    model = os.environ.get("CGEVAL_VLLM_TEST_MODEL")
    if not model:
        from cgeval.models.tiny import ensure_tiny

        model = str(ensure_tiny("tiny_qwen2_vl"))
    m = VLLMAdapter(name="vllm-test", model_id=model, max_new_tokens=8, max_model_len=4096,
                    gpu_memory_utilization=0.5, use_tqdm=False)
    yield m
    del m


@pytest.fixture(scope="module")
def sample_items():
    from cgeval.data.loader import load_medmat
    from cgeval.data.sample import SAMPLE_ROOT

    items, _ = load_medmat(SAMPLE_ROOT, "subsets", io_workers=2)
    return items[::10][:12]


@real_engine
def test_real_generate_one_call_one_reply_each(real_adapter, sample_items):
    calls = []
    chat = real_adapter.llm.chat
    real_adapter.llm.chat = lambda *a, **k: calls.append(1) or chat(*a, **k)
    try:
        replies = real_adapter.generate(sample_items)
    finally:
        real_adapter.llm.chat = chat
    assert calls == [1]
    assert len(replies) == len(sample_items) and all(isinstance(r, str) for r in replies)


@real_engine
def test_real_likelihood_matches_top_logprobs(real_adapter, sample_items):
    import vllm

    scores = real_adapter.option_logprobs(sample_items)
    for item, s in zip(sample_items, scores):
        assert sorted(s) == sorted(item.letters)
        assert all(math.isfinite(v) and v <= 0 for v in s.values())
        assert sum(math.exp(v) for v in s.values()) <= 1 + 1e-3
    assert real_adapter.unscored == {}
    # The same numbers as vLLM's own top-k logprobs (full-vocabulary log-softmax) wherever a letter is in the top 20.
    images = load_item_images(sample_items)
    convs = [vllm_messages(it, real_adapter.template, im) for it, im in zip(sample_items, images)]
    outs = real_adapter.llm.chat(convs, vllm.SamplingParams(temperature=0.0, max_tokens=1, logprobs=20),
                                 use_tqdm=False)
    compared = 0
    for item, s, out in zip(sample_items, scores, outs):
        top = out.outputs[0].logprobs[0]
        for letter in item.letters:
            ids = real_adapter.letter_ids[letter]
            if all(t in top for t in ids):
                assert s[letter] == pytest.approx(lse(*(top[t].logprob for t in ids)), abs=0.05)
                compared += 1
    assert compared > 0


# ------------------------------------------------------------------ BOS, and what goes into the resume key


def _tiny_llava_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from cgeval.models.tiny import ensure_tiny

    return AutoTokenizer.from_pretrained(ensure_tiny("tiny_llava", tmp_path_factory.mktemp("tiny_vllm")))


def test_bos_is_added_once_whichever_side_writes_it(tmp_path_factory):
    """A real Llama-style tokenizer (adds <s>): a template writing BOS itself must get none added; one relying on
    the tokenizer (llava-hf's USER/ASSISTANT) must keep the tokenizer's. Same rule as the hf back end."""
    from omegaconf import OmegaConf

    from cgeval.config import CONF_DIR
    from cgeval.models.tiny import LLAVA_CHAT_TEMPLATE

    tok = _tiny_llava_tokenizer(tmp_path_factory)
    conf = CONF_DIR / "model" / "llava_med.yaml"
    inst = OmegaConf.load(conf).chat_template  # starts with {{- bos_token -}}
    assert chat_add_special_tokens(tok, inst, PromptTemplate()) is False
    assert chat_add_special_tokens(tok, inst, PromptTemplate(system="Be brief.")) is False
    assert chat_add_special_tokens(tok, LLAVA_CHAT_TEMPLATE, PromptTemplate()) is True
    for template, wanted in ((inst, False), (LLAVA_CHAT_TEMPLATE, True)):
        text = tok.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "Q?"}]}],
                                       chat_template=template, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=wanted)["input_ids"]
        assert ids.count(tok.bos_token_id) == 1 and ids[0] == tok.bos_token_id


@pytest.mark.parametrize(("template", "wanted"), [("{{ bos_token }}[INST] {{ messages }} [/INST]", False),
                                                 ("USER: {{ messages }} ASSISTANT:", True)])
def test_every_chat_call_says_whether_to_add_bos(fake_vllm, tmp_path, template, wanted):
    items = make_items(tmp_path, 2)
    m = build(chat_template=template)
    m.generate(items)
    assert FakeLLM.instances[0].tokenization_kwargs == {"add_special_tokens": wanted}
    m.option_logprobs(items)
    assert FakeLLM.instances[0].tokenization_kwargs == {"add_special_tokens": wanted}
    assert m.describe()["add_special_tokens"] is wanted


def test_without_a_template_to_check_bos_is_left_to_vllm(fake_vllm, tmp_path):
    m = build()  # the stand-in tokenizer has no chat template
    m.generate(make_items(tmp_path, 1))
    assert FakeLLM.instances[0].tokenization_kwargs is None
    assert m.describe()["add_special_tokens"] == "vllm default"


def test_speed_settings_stay_out_of_the_resume_key(fake_vllm):
    from cgeval.store import run_key

    a = build(gpu_memory_utilization=0.9, max_num_seqs=64, enforce_eager=False)
    b = build(gpu_memory_utilization=0.5, max_num_seqs=8, enforce_eager=True, enable_prefix_caching=False,
              engine_kwargs={"max_num_batched_tokens": 4096})
    assert run_key(a, "generate/strict") == run_key(b, "generate/strict")
    assert b.runtime() == {"gpu_memory_utilization": 0.5, "max_num_seqs": 8, "enforce_eager": True,
                           "enable_prefix_caching": False, "max_num_batched_tokens": 4096}
    # ... while what decides answers does change it
    for changed in (build(max_model_len=1024), build(dtype="float16"), build(engine_kwargs={"quantization": "fp8"}),
                    build(mm_processor_kwargs={"max_pixels": 1000}), build(revision="abc")):
        assert run_key(changed, "generate/strict") != run_key(a, "generate/strict")


# ------------------------------------------------------------------ every default and every recorded field, exactly


def test_default_engine_arguments_exactly(fake_vllm):
    """What a config that sets nothing sends to vLLM: every default is a decision (a 4,096-token context, 90% of the
    GPU, prefix caching, one image a prompt), so each is pinned here."""
    m = build()
    assert FakeLLM.instances[0].engine_args == {
        "model": "Qwen/Qwen2-VL-7B-Instruct", "revision": None, "dtype": "bfloat16", "trust_remote_code": False,
        "seed": 0, "tensor_parallel_size": 1, "max_model_len": 4096, "gpu_memory_utilization": 0.9,
        "enable_prefix_caching": True, "limit_mm_per_prompt": {"image": 1}, "enforce_eager": False}
    assert m.engine_args == FakeLLM.instances[0].engine_args
    assert (m.name, m.model_id, m.revision, m.path, m.max_new_tokens, m.seed) == (
        "qwen2_vl_7b", "Qwen/Qwen2-VL-7B-Instruct", None, None, 16, 0)
    assert (m.trust_remote_code, m.pad_to_square, m.chat_template, m.image_workers, m.use_tqdm) == (
        False, False, None, 8, True)
    assert m.ignored_config == [] and m.unscored == {} and m.prompt_text(make_item_stub()) is None
    assert m.preferred_batch_size == 1024
    assert repr(m) == "VLLMAdapter(name='qwen2_vl_7b', model='Qwen/Qwen2-VL-7B-Instruct')"


def make_item_stub():
    return Item(item_id="none", subset=1, dataset=1, modality="CT", area="Lung", task="Diseases", image="x.png",
                image_path="x.png", prompt="Q?", question="Q?", options=(("A", "a"), ("B", "b")), gold="A",
                answer_text="a")


def test_every_engine_setting_reaches_the_engine(fake_vllm):
    build(revision="r1", trust_remote_code=True, seed=3, tensor_parallel_size=4, max_model_len=None,
          gpu_memory_utilization=0.5, enable_prefix_caching=False, max_num_seqs=7, enforce_eager=True,
          mm_processor_kwargs={"max_pixels": 100}, engine_kwargs={"quantization": "fp8", "seed": 11})
    assert FakeLLM.instances[0].engine_args == {
        "model": "Qwen/Qwen2-VL-7B-Instruct", "revision": "r1", "dtype": "bfloat16", "trust_remote_code": True,
        "seed": 11, "tensor_parallel_size": 4, "max_model_len": None, "gpu_memory_utilization": 0.5,
        "enable_prefix_caching": False, "limit_mm_per_prompt": {"image": 1}, "enforce_eager": True,
        "max_num_seqs": 7, "mm_processor_kwargs": {"max_pixels": 100}, "quantization": "fp8"}


def test_max_new_tokens_below_one_is_refused(fake_vllm):
    with pytest.raises(ValueError, match="max_new_tokens must be >= 1, got 0"):
        build(max_new_tokens=0)
    assert build(max_new_tokens=1).max_new_tokens == 1
    with pytest.raises(ValueError, match=r"model 'm' does not list 'vllm' among its back ends \['hf'\]"):
        build(name="m", backends=["hf"])
    assert build(backends=["vllm"]).name == "qwen2_vl_7b"


def test_describe_exactly(fake_vllm):
    """describe() is hashed into the resume key and written to the manifest: every field, by value."""
    m = build(revision="abc", max_new_tokens=9, trust_remote_code=True, pad_to_square=True, chat_template="T",
              prompt={"system": "Be brief."}, device="cuda", max_num_seqs=4)
    assert m.describe() == {
        "kind": "model", "backend": "vllm", "vllm_version": "0.33.0-fake", "model_id": "Qwen/Qwen2-VL-7B-Instruct",
        "revision": "abc", "path": None, "weights_fingerprint": None, "trust_remote_code": True,
        "max_new_tokens": 9, "decoding": {"greedy": True, **NEUTRAL},
        "add_special_tokens": "vllm default" if m.add_special_tokens is None else m.add_special_tokens,
        "pad_to_square": True, "chat_template_source": "config",
        "chat_template_sha256": __import__("hashlib").sha256(b"T").hexdigest()[:16],
        "prompt": PromptTemplate(system="Be brief.").describe(),
        "engine": {"revision": "abc", "dtype": "bfloat16", "trust_remote_code": True, "seed": 0,
                   "tensor_parallel_size": 1, "max_model_len": 4096, "limit_mm_per_prompt": {"image": 1}},
        "likelihood": {"method": "logprob_token_ids, one generated token",
                       "letter_token_ids": {l: list(ids) for l, ids in IDS.items()}, "unavailable": None},
        "ignored_config": ["device"],
    }
    assert m.runtime() == {"gpu_memory_utilization": 0.9, "enable_prefix_caching": True, "enforce_eager": False,
                           "max_num_seqs": 4}
    d = build().describe()
    assert d["chat_template_source"] == "checkpoint" and d["chat_template_sha256"] is None
    assert d["add_special_tokens"] == "vllm default" and "image_attention" not in d


def test_letters_outside_the_scored_set_are_refused(fake_vllm, tmp_path):
    item = make_items(tmp_path, 1)[0]
    odd = Item(**{**item.__dict__, "item_id": "odd", "options": (("A", "a"), ("E", "e"))})
    m = build()
    with pytest.raises(LetterTokenError, match=r"item odd has option letters \['E'\] outside"):
        m.option_logprobs([odd])
    assert FakeLLM.instances[0].chat_calls == []  # refused before anything is sent
    assert m.option_logprobs([]) == [] and m.generate([]) == []


def test_unscored_letters_are_logged_by_name(fake_vllm, tmp_path, caplog):
    items = make_items(tmp_path, 2)
    m = build(name="mymodel")
    FakeLLM.instances[0].logprobs_for = lambda i, ids: {32: Logprob(-0.5), 362: Logprob(-4.0)}
    with caplog.at_level("WARNING", logger="cgeval.models.vllm_backend"):
        m.option_logprobs(items)
    assert m.unscored == {"it0": ["B"], "it1": ["B", "C", "D"]}
    assert "mymodel: no logprob for option(s) ['B', 'C', 'D'] of item it1; scored -inf" in caplog.text


def test_each_chat_call_passes_the_progress_bar_setting_and_the_rendered_prompts(fake_vllm, tmp_path, monkeypatch):
    seen = {}

    def chat(self, conversations, params, use_tqdm=True, chat_template=None, tokenization_kwargs=None):
        seen["use_tqdm"] = use_tqdm
        return [types.SimpleNamespace(outputs=[CompletionOutput(text=f" r{i} ")], prompt=f"P{i}")
                for i in range(len(conversations))]

    monkeypatch.setattr(FakeLLM, "chat", chat)
    items = make_items(tmp_path, 2)
    m = build(use_tqdm=False)
    assert m.generate(items) == ["r0", "r1"] and seen["use_tqdm"] is False
    assert [m.prompt_text(it) for it in items] == ["P0", "P1"]
    assert build().use_tqdm is True


def test_logprob_values_as_objects_or_floats_and_nan_is_missing():
    out = RequestOutput("0", [CompletionOutput("A", [{32: -0.25, 362: Logprob(-1.5), 33: math.nan, 425: -2.0}])])
    scores, missing = letter_logprobs(out, ("A", "B"), IDS)
    assert scores == {"A": pytest.approx(lse(-0.25, -1.5)), "B": pytest.approx(-2.0)} and missing == ["B"]
    none_back = RequestOutput("0", [CompletionOutput("A", [None])])
    assert letter_logprobs(none_back, ("A",), IDS) == ({"A": -math.inf}, ["A"])
    ninf = RequestOutput("0", [CompletionOutput("A", [{32: -math.inf, 362: -math.inf}])])
    assert letter_logprobs(ninf, ("A",), IDS) == ({"A": -math.inf}, [])
    big = RequestOutput("0", [CompletionOutput("A", [{32: -1000.0, 362: -1000.0}])])
    assert letter_logprobs(big, ("A",), IDS)[0]["A"] == pytest.approx(-1000.0 + math.log(2))


class RecordingTokenizer:
    bos_token = "<s>"

    def __init__(self, template=None, fail=False):
        self.chat_template = template
        self.fail = fail
        self.calls = []

    def apply_chat_template(self, messages, chat_template=None, tokenize=True, add_generation_prompt=False):
        self.calls.append((messages, chat_template, tokenize, add_generation_prompt))
        if self.fail:
            raise ValueError("this template wants other messages")
        if tokenize or not add_generation_prompt:
            raise AssertionError("must render text with the generation prompt")
        return chat_template.replace("{{ bos_token }}", self.bos_token)


def test_bos_rule_renders_the_stand_in_conversation():
    tok = RecordingTokenizer()
    assert chat_add_special_tokens(tok, "  {{ bos_token }}[INST]", PromptTemplate(system="S")) is False
    (messages, source, tokenize, gen), = tok.calls
    assert messages == [{"role": "system", "content": [{"type": "text", "text": "S"}]},
                        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Question?"}]}]
    assert (source, tokenize, gen) == ("  {{ bos_token }}[INST]", False, True)
    assert chat_add_special_tokens(tok, "USER: x <s>", PromptTemplate()) is True  # BOS not at the start
    assert len(tok.calls[-1][0]) == 1  # no system turn without a system prompt
    # the checkpoint's template when the config has none; none at all: vLLM decides
    assert chat_add_special_tokens(RecordingTokenizer("{{ bos_token }}x"), None, PromptTemplate()) is False
    assert chat_add_special_tokens(RecordingTokenizer(None), None, PromptTemplate()) is None
    # a template that cannot render the stand-in: judged by whether it names bos_token
    assert chat_add_special_tokens(RecordingTokenizer(fail=True), "{{ bos_token }} q", PromptTemplate()) is False
    assert chat_add_special_tokens(RecordingTokenizer(fail=True), "USER: q", PromptTemplate()) is True


def test_template_writes_bos():
    from cgeval.models.vllm_backend import template_writes_bos

    assert template_writes_bos("\n <s>USER", "<s>") is True
    assert template_writes_bos("USER <s>", "<s>") is False
    assert template_writes_bos("<s>USER", None) is False and template_writes_bos("<s>USER", "") is False


@pytest.mark.parametrize(("prefix_lm", "cpu", "supports", "wanted"), [
    (False, True, False, None), (True, True, False, "causal"), (True, True, True, "bidirectional"),
    (True, False, False, "bidirectional")])
def test_image_attention_reports_how_the_engine_attends(monkeypatch, prefix_lm, cpu, supports, wanted):
    from cgeval.models.vllm_backend import image_attention

    platforms = types.ModuleType("vllm.platforms")
    platforms.current_platform = types.SimpleNamespace(is_cpu=lambda: cpu)
    cpu_attn = types.ModuleType("vllm.v1.attention.backends.cpu_attn")
    cpu_attn.CPUAttentionBackend = types.SimpleNamespace(supports_mm_prefix=lambda: supports)
    for name, mod in (("vllm", types.ModuleType("vllm")), ("vllm.platforms", platforms),
                      ("vllm.v1", types.ModuleType("vllm.v1")), ("vllm.v1.attention", types.ModuleType("a")),
                      ("vllm.v1.attention.backends", types.ModuleType("b")),
                      ("vllm.v1.attention.backends.cpu_attn", cpu_attn)):
        monkeypatch.setitem(sys.modules, name, mod)
    llm = types.SimpleNamespace(llm_engine=types.SimpleNamespace(
        model_config=types.SimpleNamespace(is_mm_prefix_lm=prefix_lm)))
    assert image_attention(llm) == wanted
    assert image_attention(types.SimpleNamespace()) is None  # a release that does not say


def test_causal_image_attention_is_recorded_and_warned(fake_vllm, monkeypatch, caplog):
    import cgeval.models.vllm_backend as vb

    monkeypatch.setattr(vb, "image_attention", lambda llm: "causal")
    with caplog.at_level("WARNING", logger="cgeval.models.vllm_backend"):
        m = build(name="medgemma")
    assert m.describe()["image_attention"] == "causal"
    assert "medgemma: this vLLM engine (CPU attention) attends causally" in caplog.text


def test_images_are_decoded_once_and_named_for_the_processor_cache(fake_vllm, tmp_path, monkeypatch):
    import dataclasses as dc

    @dc.dataclass
    class EngineArgsWithCache:  # a release whose EngineArgs has the multimodal processor cache
        mm_processor_cache_gb: float = 4

    monkeypatch.setattr(fake_vllm, "EngineArgs", EngineArgsWithCache, raising=False)
    items = make_items(tmp_path, 2)
    rotated = dc.replace(items[0], item_id="it0@r1")  # a circular run's rotation: the same image file
    m = build(mm_processor_cache_gb=2)
    assert FakeLLM.instances[0].engine_args["mm_processor_cache_gb"] == 2.0
    assert m.runtime()["mm_processor_cache_gb"] == 2.0 and "mm_processor_cache_gb" not in m.describe()["engine"]
    m.generate([items[0], rotated, items[1]])
    (conversations, _, _), = FakeLLM.instances[0].chat_calls
    parts = [conv[-1]["content"][0] for conv in conversations]
    assert parts[0]["image_pil"] is parts[1]["image_pil"]  # decoded once for both
    assert parts[0]["uuid"] == parts[1]["uuid"] != parts[2]["uuid"]
    padded = build(pad_to_square=True)
    padded.generate([items[0]])
    assert FakeLLM.instances[1].chat_calls[0][0][0][-1]["content"][0]["uuid"] != parts[0]["uuid"]


def test_without_the_cache_in_engine_args_no_uuid_is_sent(fake_vllm, tmp_path):
    m = build()  # the stand-in module has no EngineArgs: an older release
    m.generate(make_items(tmp_path, 1))
    (conversations, _, _), = FakeLLM.instances[0].chat_calls
    assert "uuid" not in conversations[0][-1]["content"][0]
    assert "mm_processor_cache_gb" not in FakeLLM.instances[0].engine_args
