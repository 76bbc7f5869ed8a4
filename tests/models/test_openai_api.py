"""The OpenAI-compatible adapter against a mock HTTP transport: request bodies, order, retries, logprobs, secrecy."""

import base64
import io
import json
import logging
import math
import sys
import threading
import time

import httpx
import pytest
from PIL import Image

from cgeval.data.records import Item
from cgeval.models.base import ModelAdapter, UnsupportedScoring
from cgeval.models.openai_api import (
    APIRequestError,
    MissingAPIKey,
    OpenAIAdapter,
    OpenAINotInstalled,
    backoff_delay,
    letter_scores,
)

KEY = "sk-test-0123456789-secret"
BASE = "http://mock-server/v1"


def make_items(tmp_path, n, sizes=((40, 30), (32, 32), (24, 48))):
    items = []
    for i in range(n):
        path = tmp_path / f"img{i}.png"
        Image.new("L", sizes[i % len(sizes)], color=10 * i % 255).save(path)
        letters = "ABCD" if i % 2 else "AB"
        options = tuple((l, f"label{l}{i}") for l in letters)
        prompt = f"Q{i}: what is shown?\n" + "\n".join(f"{l}: {t}" for l, t in options) + "\nAnswer with the letter."
        items.append(Item(item_id=f"it{i}", subset=1, dataset=1, modality="CT", area="Lung", task="Diseases",
                          image=f"img{i}.png", image_path=str(path), prompt=prompt, question=f"Q{i}: what is shown?",
                          options=options, gold="A", answer_text=options[0][1]))
    return items


def completion(content="A", logprobs=None):
    choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": content},
              "logprobs": logprobs}
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "m", "choices": [choice]}


def top(pairs):
    """A chat logprobs block whose first token's top_logprobs are ``pairs``."""
    first_tok, first_lp = pairs[0]
    return {"content": [{"token": first_tok, "logprob": first_lp, "bytes": None,
                         "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in pairs]}]}


def item_index(request: httpx.Request) -> int:
    body = json.loads(request.content)
    text = body["messages"][-1]["content"][1]["text"]
    return int(text.split(":")[0][1:])


@pytest.fixture
def key_env(monkeypatch):
    monkeypatch.setenv("CGEVAL_TEST_KEY", KEY)
    return "CGEVAL_TEST_KEY"


def adapter(handler, key_env, **kw):
    kw.setdefault("retry_base_delay", 0.001)
    kw.setdefault("retry_max_delay", 0.01)
    return OpenAIAdapter(name="srv", model_id="org/model-7b", base_url=BASE, api_key_env=key_env,
                         http_client=httpx.Client(transport=httpx.MockTransport(handler)), **kw)


def test_it_is_a_model_adapter(key_env):
    assert isinstance(adapter(lambda r: httpx.Response(200, json=completion()), key_env), ModelAdapter)


def test_request_body_carries_image_text_and_greedy_settings(tmp_path, key_env):
    seen = []

    def handler(request):
        seen.append(request)
        return httpx.Response(200, json=completion("B"))

    items = make_items(tmp_path, 1)
    m = adapter(handler, key_env, served_model="served-name", max_new_tokens=7, seed=3,
                prompt={"template": "{prompt}", "system": "You are a radiologist."})
    assert m.generate(items) == ["B"]
    (req,) = seen
    assert req.url == f"{BASE}/chat/completions"
    assert req.headers["authorization"] == f"Bearer {KEY}"
    body = json.loads(req.content)
    assert body["model"] == "served-name"
    assert body["temperature"] == 0 and body["max_tokens"] == 7 and body["seed"] == 3
    assert "logprobs" not in body
    system, user = body["messages"]
    assert system == {"role": "system", "content": [{"type": "text", "text": "You are a radiologist."}]}
    image_part, text_part = user["content"]
    assert text_part == {"type": "text", "text": items[0].prompt}
    url = image_part["image_url"]["url"]
    assert image_part["type"] == "image_url" and url.startswith("data:image/png;base64,")
    decoded = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert decoded.mode == "RGB" and decoded.size == (40, 30)


def test_jpeg_and_pad_to_square(tmp_path, key_env):
    urls = []

    def handler(request):
        urls.append(json.loads(request.content)["messages"][-1]["content"][0]["image_url"]["url"])
        return httpx.Response(200, json=completion())

    m = adapter(handler, key_env, image_format="jpeg", pad_to_square=True)
    m.generate(make_items(tmp_path, 1))
    assert urls[0].startswith("data:image/jpeg;base64,")
    assert Image.open(io.BytesIO(base64.b64decode(urls[0].split(",", 1)[1]))).size == (40, 40)


def test_replies_keep_input_order_under_concurrency(tmp_path, key_env):
    lock = threading.Lock()
    state = {"in_flight": 0, "peak": 0}

    def handler(request):
        i = item_index(request)
        with lock:
            state["in_flight"] += 1
            state["peak"] = max(state["peak"], state["in_flight"])
        time.sleep(0.002 * (12 - i))  # earlier items answer later
        with lock:
            state["in_flight"] -= 1
        return httpx.Response(200, json=completion(f"reply {i}"))

    items = make_items(tmp_path, 12)
    m = adapter(handler, key_env, max_concurrency=4)
    assert m.generate(items) == [f"reply {i}" for i in range(12)]
    assert 1 < state["peak"] <= 4


def test_retries_429_then_succeeds(tmp_path, key_env):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) <= 2:
            return httpx.Response(429, json={"error": {"message": "slow down"}})
        return httpx.Response(200, json=completion("C"))

    m = adapter(handler, key_env, max_retries=3)
    assert m.generate(make_items(tmp_path, 1)) == ["C"]
    assert len(calls) == 3 and m.calls == 3


def test_retries_a_timeout(tmp_path, key_env):
    calls = []

    def handler(request):
        calls.append(1)
        if len(calls) == 1:
            raise httpx.ReadTimeout("too slow", request=request)
        return httpx.Response(200, json=completion("A"))

    m = adapter(handler, key_env, max_retries=2)
    assert m.generate(make_items(tmp_path, 1)) == ["A"]
    # the timeout pauses requests while one small probe checks the server; it answers, and the item is asked again
    assert len(calls) == 3 and m.calls == 3
    assert m.outages and m.outages[0]["back"] and m.outages[0]["probes"] == 1


def test_500_until_retries_run_out_raises_named_error(tmp_path, key_env, caplog):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(500, json={"error": {"message": "boom"}})

    m = adapter(handler, key_env, max_retries=2)
    with caplog.at_level(logging.DEBUG):
        [failed] = m.generate(make_items(tmp_path, 1))
    assert len(calls) == 3
    err = failed.error  # the item's failure, returned in its place (the run records it, retries on resume)
    assert isinstance(err, APIRequestError)
    assert err.item_id == "it0" and err.status == 500 and err.attempts == 3
    assert "it0" in str(err) and "500" in str(err)
    assert KEY not in caplog.text and KEY not in str(err)


def test_client_error_is_not_retried(tmp_path, key_env):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "image too large"}})

    [failed] = adapter(handler, key_env, max_retries=4).generate(make_items(tmp_path, 1))
    assert len(calls) == 1 and isinstance(failed.error, APIRequestError) and failed.error.status == 400


def test_one_failing_item_comes_back_as_its_failure_and_the_others_stand(tmp_path, key_env):
    """One refused request costs that item, not the batch: the other replies are kept, none is asked twice."""
    from cgeval.models.base import ItemFailure

    calls = []

    def handler(request):
        calls.append(item_index(request))
        if item_index(request) == 3:
            return httpx.Response(503, json={"error": {"message": "unavailable"}})
        return httpx.Response(200, json=completion("A"))

    out = adapter(handler, key_env, max_retries=1, max_concurrency=3).generate(make_items(tmp_path, 6))
    assert [r if isinstance(r, str) else "failed" for r in out] == ["A", "A", "A", "failed", "A", "A"]
    assert isinstance(out[3], ItemFailure) and out[3].error.item_id == "it3" and out[3].error.status == 503
    assert sorted(calls) == [0, 1, 2, 3, 3, 4, 5]  # item 3 retried once; nobody else asked again


def test_likelihood_reads_letter_logprobs(tmp_path, key_env):
    bodies = []
    pairs = [("A", -0.2), (" B", -2.0), ("B", -2.5), ("C", -4.0), ("The", -5.0)]

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion("A", top(pairs)))

    items = make_items(tmp_path, 2)  # it0 has A, B; it1 has A-D
    scores = adapter(handler, key_env, top_logprobs=5, letter_scoring="top_k").option_logprobs(items)
    assert all(b["logprobs"] is True and b["top_logprobs"] == 5 and b["max_tokens"] == 1
               and b["temperature"] == 0 for b in bodies)
    assert set(scores[0]) == {"A", "B"} and set(scores[1]) == {"A", "B", "C", "D"}
    assert scores[1]["A"] == pytest.approx(-0.2)
    assert scores[1]["B"] == pytest.approx(math.log(math.exp(-2.0) + math.exp(-2.5)))
    assert scores[1]["C"] == pytest.approx(-4.0)
    assert scores[1]["D"] == -math.inf  # not among the top logprobs


def test_no_logprobs_from_server_is_unsupported_scoring(tmp_path, key_env):
    m = adapter(lambda r: httpx.Response(200, json=completion("A", None)), key_env, letter_scoring="top_k")
    with pytest.raises(UnsupportedScoring, match="no logprobs"):
        m.option_logprobs(make_items(tmp_path, 1))


def test_one_filtered_reply_fails_its_item_not_the_run(tmp_path, key_env):
    """A hosted API that filters one image answers without logprobs: that item fails (counted, retried on
    resume); the server plainly returns logprobs, so it is not UnsupportedScoring, which would stop every resume
    at the same item."""
    from cgeval.models.openai_api import ReplyWithoutLogprobs

    good = top([("A", -0.1), ("B", -2.0)])

    def handler(request):
        if item_index(request) == 1:
            body = completion(None, None)
            body["choices"][0]["finish_reason"] = "content_filter"
            return httpx.Response(200, json=body)
        return httpx.Response(200, json=completion("A", good))

    m = adapter(handler, key_env, letter_scoring="top_k")
    items = make_items(tmp_path, 3)
    scores = m.option_logprobs(items)
    assert scores[0]["A"] == pytest.approx(-0.1) and scores[2]["A"] == pytest.approx(-0.1)
    assert isinstance(scores[1].error, ReplyWithoutLogprobs) and "content_filter" in str(scores[1].error)
    [alone] = m.option_logprobs([items[1]])  # alone too: the server is known to return logprobs now
    assert isinstance(alone.error, ReplyWithoutLogprobs)
    # a reply with no choice at all is that item's failure as well, even before any logprobs were seen
    with pytest.raises(ReplyWithoutLogprobs, match="no choice"):
        letter_scores(type("C", (), {"choices": []})(), ("A", "B"))


def test_letter_scores_on_an_empty_content_list():
    class C:  # a completion whose logprobs block is present but empty
        choices = [type("Ch", (), {"logprobs": type("L", (), {"content": []})()})()]

    with pytest.raises(UnsupportedScoring):
        letter_scores(C(), ("A", "B"))


def test_null_content_is_an_empty_reply(tmp_path, key_env):
    assert adapter(lambda r: httpx.Response(200, json=completion(None)), key_env).generate(
        make_items(tmp_path, 1)) == [""]


def test_key_never_leaks_and_is_read_once(tmp_path, key_env, monkeypatch):
    auth = []

    def handler(request):
        auth.append(request.headers["authorization"])
        return httpx.Response(200, json=completion())

    m = adapter(handler, key_env, dtype="bfloat16", device="cuda")
    monkeypatch.setenv(key_env, "sk-changed-later")
    m.generate(make_items(tmp_path, 1))
    assert auth == [f"Bearer {KEY}"]
    described = json.dumps(m.describe())
    assert KEY not in described and KEY not in repr(m) and KEY not in str(vars(m).keys())
    assert not any(KEY == v for v in vars(m).values())
    assert m.runtime()["api_key_env"] == key_env and KEY not in json.dumps(m.runtime())
    assert m.describe()["ignored_config"] == ["device", "dtype"]


def test_missing_key_variable_is_a_clear_error(monkeypatch):
    monkeypatch.delenv("CGEVAL_UNSET_KEY", raising=False)
    with pytest.raises(MissingAPIKey, match="CGEVAL_UNSET_KEY") as err:
        OpenAIAdapter(name="srv", model_id="m", api_key_env="CGEVAL_UNSET_KEY")
    # the hint names the config key that exists (model configs keep back-end options under model.openai)
    assert "model.openai.api_key_env=null" in str(err.value)


def test_no_key_variable_for_a_local_server(tmp_path):
    auth = []

    def handler(request):
        auth.append(request.headers["authorization"])
        return httpx.Response(200, json=completion())

    m = OpenAIAdapter(name="local", model_id="m", base_url=BASE, api_key_env=None,
                      http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    m.generate(make_items(tmp_path, 1))
    assert auth == ["Bearer EMPTY"]


def test_bad_settings_fail_at_construction(key_env):
    with pytest.raises(ValueError, match="image_format"):
        OpenAIAdapter(name="s", model_id="m", api_key_env=key_env, image_format="gif")
    with pytest.raises(ValueError, match="back ends"):
        OpenAIAdapter(name="s", model_id="m", api_key_env=key_env, backends=["hf"])


def test_missing_openai_extra_names_it(monkeypatch, key_env):
    monkeypatch.setitem(sys.modules, "openai", None)  # makes `import openai` raise ImportError
    with pytest.raises(OpenAINotInstalled, match=r"cgeval\[openai\]"):
        OpenAIAdapter(name="s", model_id="m", api_key_env=key_env)


def test_backoff_grows_is_capped_and_honours_retry_after():
    import random
    rng = random.Random(0)
    for attempt in range(6):
        d = backoff_delay(attempt, 0.5, 4.0, rng=rng)
        assert min(0.5 * 2**attempt, 4.0) / 2 <= d <= min(0.5 * 2**attempt, 4.0)
    assert backoff_delay(0, 0.5, 4.0, retry_after=3.0) == 3.0
    assert backoff_delay(0, 0.5, 4.0, retry_after=30.0) == 4.0


def test_config_chat_template_and_extra_body_travel_with_requests(tmp_path, key_env):
    bodies = []

    def handler(request):
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json=completion())

    m = adapter(handler, key_env, chat_template="[INST] {{ x }} [/INST]", extra_body={"top_k": 1})
    m.generate(make_items(tmp_path, 1))
    assert bodies[0]["chat_template"] == "[INST] {{ x }} [/INST]" and bodies[0]["top_k"] == 1
    d = m.describe()
    assert d["extra_body"] == {"top_k": 1} and len(d["chat_template_sha256"]) == 16


def test_raw_sentencepiece_and_byte_level_pieces_count_as_the_letter(tmp_path, key_env):
    # some servers return the raw piece ("▁A" Llama/Mistral, "ĠB" byte-level BPE) instead of decoded text
    pairs = [("\u2581A", -0.5), ("\u0120B", -1.5), ("B", -2.5), ("\u2581The", -3.0)]
    m = adapter(lambda r: httpx.Response(200, json=completion("A", top(pairs))), key_env, top_logprobs=4,
                letter_scoring="top_k")
    (scores,) = m.option_logprobs(make_items(tmp_path, 1))
    assert scores["A"] == pytest.approx(-0.5)
    assert scores["B"] == pytest.approx(math.log(math.exp(-1.5) + math.exp(-2.5)))


def test_concurrency_and_timeouts_stay_out_of_the_resume_key(tmp_path, key_env):
    from cgeval.store import run_key

    ok = lambda r: httpx.Response(200, json=completion("A", None))
    a = adapter(ok, key_env, max_concurrency=16, timeout=120.0, max_retries=5)
    b = adapter(ok, key_env, max_concurrency=2, timeout=5.0, max_retries=0, retry_base_delay=0.1)
    assert run_key(a, "generate/strict") == run_key(b, "generate/strict")
    assert b.runtime()["max_concurrency"] == 2 and b.runtime()["timeout_s"] == 5.0
    assert KEY not in json.dumps(b.runtime())
    elsewhere = OpenAIAdapter(name="srv", model_id="org/model-7b", base_url="http://elsewhere:9000/v1",
                              api_key_env=key_env, http_client=httpx.Client(transport=httpx.MockTransport(ok)))
    # the same model behind another address (a server restarted on another host or port) is the same model
    assert run_key(elsewhere, "generate/strict") == run_key(a, "generate/strict")
    assert elsewhere.runtime()["base_url"] == "http://elsewhere:9000/v1"
    for changed in (adapter(ok, key_env, max_new_tokens=64), adapter(ok, key_env, letter_scoring="top_k"),
                    adapter(ok, key_env, served_model="other-name"), adapter(ok, key_env, revision="abc123")):
        assert run_key(changed, "generate/strict") != run_key(a, "generate/strict")
    top_k = adapter(ok, key_env, letter_scoring="top_k")
    assert run_key(adapter(ok, key_env, letter_scoring="top_k", top_logprobs=5), "x") != run_key(top_k, "x")


def test_letters_by_token_id_and_the_text_fallback(tmp_path, key_env):
    """Replies to a request naming the letters' token ids: entries read by id ("token_id:N"), a letter's ids
    log-sum-exp'd, an id that did not come back left out; a server that writes the tokens as text is read by text."""
    from cgeval.models.openai_api import letter_scores_by_id

    def reply(pairs):
        return adapter(lambda r: httpx.Response(200, json=completion("A", top(pairs))), key_env)._client \
            .chat.completions.create(model="m", messages=[])

    ids = {"A": (30, 60), "B": (31, 61), "C": (32,)}
    by_id = letter_scores_by_id(reply([("token_id:30", -1.0), ("token_id:60", -2.0), ("token_id:31", -3.0),
                                       ("token_id:999", -0.1)]), ("A", "B", "C"), ids)
    assert by_id["A"] == pytest.approx(math.log(math.exp(-1.0) + math.exp(-2.0)))
    assert by_id["B"] == pytest.approx(-3.0) and by_id["C"] == -math.inf
    as_text = letter_scores_by_id(reply([("A", -1.0), (" B", -3.0)]), ("A", "B"), ids)
    assert as_text == {"A": pytest.approx(-1.0), "B": pytest.approx(-3.0)}


def test_server_errors_survive_pickling():
    """A job run by a submitit launcher hands its exception back pickled."""
    import pickle

    from cgeval.models.openai_api import ServerUnreachable

    err = pickle.loads(pickle.dumps(ServerUnreachable("gone", "http://h:1/v1")))
    assert isinstance(err, ServerUnreachable) and str(err) == "gone"


def test_an_image_bomb_fails_its_item_and_is_never_sent(tmp_path, key_env, monkeypatch):
    """An image Pillow refuses as a decompression bomb is that item's ImageLoadError; the batch's others stand."""
    from cgeval.models.base import ItemFailure
    from cgeval.models.media import ImageLoadError

    items = make_items(tmp_path, 3, sizes=((20, 20), (200, 200), (20, 20)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # 200 x 200 is over twice the limit, 20 x 20 is not
    calls = []

    def handler(request):
        calls.append(item_index(request))
        return httpx.Response(200, json=completion("B"))

    out = adapter(handler, key_env, max_concurrency=1).generate(items)
    assert out[0] == out[2] == "B" and isinstance(out[1], ItemFailure)
    assert isinstance(out[1].error, ImageLoadError) and "img1.png" in str(out[1].error)
    assert sorted(calls) == [0, 2]


def test_replies_are_recorded_without_surrounding_whitespace(tmp_path, key_env):
    """As the hf and vllm back ends record them: a reply to ``... ASSISTANT:`` starts with a space token."""
    assert adapter(lambda r: httpx.Response(200, json=completion(" B is shown\n")), key_env).generate(
        make_items(tmp_path, 1)) == ["B is shown"]


BOS_ID = 1


def bos_server(template_writes_bos: bool, tokenize_status: int = 200):
    """A mock vLLM server whose tokenizer adds BOS (id 1) and whose chat template writes it or not; the chat
    request bodies it saw."""
    chats = []

    def handler(request):
        body = json.loads(request.content)
        if request.url.path == "/tokenize":
            if tokenize_status != 200:
                return httpx.Response(tokenize_status, json={"detail": "Not Found"})
            if "messages" in body:  # the rendered template, without the tokenizer's special tokens
                assert body["add_special_tokens"] is False and body["add_generation_prompt"] is True
                tokens = ([BOS_ID] if template_writes_bos else []) + [200, 201, 202]
            else:
                tokens = ([BOS_ID] if body.get("add_special_tokens") else []) + [ord(c) for c in body["prompt"]]
            return httpx.Response(200, json={"count": len(tokens), "max_model_len": 4096, "tokens": tokens,
                                             "token_strs": None})
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"object": "list", "data": [{"id": "org/model-7b", "object": "model",
                                                                          "created": 0, "owned_by": "x"}]})
        chats.append(body)
        return httpx.Response(200, json=completion("A"))

    return handler, chats


@pytest.mark.parametrize("template_writes_bos", [False, True])
def test_bos_is_added_as_the_hf_back_end_adds_it(tmp_path, key_env, template_writes_bos):
    """vLLM's chat endpoint never adds the tokenizer's special tokens; the adapter asks for them exactly when
    the rendered template does not start with BOS (the hf back end's rule), decided once at the preflight."""
    handler, chats = bos_server(template_writes_bos)
    m = adapter(handler, key_env)
    m.preflight("generate")
    m.generate(make_items(tmp_path, 2))
    assert len(chats) == 3  # the preflight's request, then one an item
    added = [c.get("add_special_tokens") for c in chats[1:]]
    assert added == ([None, None] if template_writes_bos else [True, True])
    assert m.runtime()["bos"]["add_special_tokens"] is (not template_writes_bos)
    assert m.runtime()["bos"]["tokenizer_adds"] == [BOS_ID]


@pytest.mark.parametrize("status", [404, 403])
def test_bos_left_to_the_server_without_tokenize_or_when_the_config_says(tmp_path, key_env, status):
    # A server without /tokenize (not vLLM), or a gateway guarding the paths it does not serve: the run goes on.
    handler, chats = bos_server(False, tokenize_status=status)
    m = adapter(handler, key_env)
    m.preflight("generate")
    m.generate(make_items(tmp_path, 1))
    assert "add_special_tokens" not in chats[-1]
    assert m.runtime()["bos"]["add_special_tokens"] is None and f"HTTP {status}" in m.runtime()["bos"]["decided_by"]

    handler, chats = bos_server(False)
    m = adapter(handler, key_env, extra_body={"add_special_tokens": False})  # the config's choice wins
    m.preflight("generate")
    m.generate(make_items(tmp_path, 1))
    assert chats[-1]["add_special_tokens"] is False
    assert m.runtime()["bos"] == {"add_special_tokens": False, "decided_by": "model.openai.extra_body"}
