"""A judge model for the replies the rules cannot read (scoring.judge): end to end on the embedded sample with a
scripted mock judge and with a tiny random-weight model through the real hf adapter; resume, failures, the
judge_on=all audit (agreement, Cohen's kappa, disagreements), circular and likelihood runs."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from cgeval.analysis.metrics import cohens_kappa, decided_by
from cgeval.config import ConfigError, DataConfig, ExperimentConfig, RunConfig, ScoringConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.mock import MockModel
from cgeval.models.openai_api import api_messages
from cgeval.models.prompt import PromptTemplate
from cgeval.run import run
from cgeval.scoring.judge import JUDGE_PROMPT_SHA256, judge_item, read_judgement
from cgeval.store import read_rows

REPO = Path(__file__).resolve().parents[1]
EXP = ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}])
JUDGE_CFG = {"_target_": "cgeval.models.mock.MockModel", "name": "judge"}

# The model: subsets 02-06 (50 items, 20 of them unseen: 03 and 04) answer with the bare letter, which the rules
# read; the other 70 say something no rule reads.
READABLE = [["^S0[2-6]-", "{gold}"]]
# The judge: "none" on subset 08, "Answer: <gold>" on 13, the gold letter elsewhere.
JUDGE_SCRIPT = [["^S08-", "none"], ["^S13-", "Answer: {gold}"]]


def _cfg(out, **scoring):
    return RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), experiment=EXP, output_dir=str(out), progress=False,
                     batch_size=8, scoring=ScoringConfig(judge=JUDGE_CFG, **scoring))


def _rows(out, name="predictions.jsonl"):
    rows, bad = read_rows(Path(out) / name)
    assert bad == 0
    return {r["item_id"]: r for r in rows}


def _manifest(out):
    return json.loads((Path(out) / "manifest.json").read_text())


def _metrics(out):
    return json.loads((Path(out) / "metrics.json").read_text())


def test_judge_decides_what_the_rules_leave_fails_softly_and_resumes_without_asking_again(tmp_path):
    out = tmp_path / "run"
    model = MockModel(reply="refuse", script=READABLE)
    failing = MockModel(name="judge", script=JUDGE_SCRIPT, fail_on=["S14-1", "S14-2", "S14-3"])
    run(_cfg(out), model, judge=failing)

    m = _manifest(out)
    assert m["status"] == "incomplete"  # the judge's failures are retried by the same command
    j = m["judge"]
    assert j["used"] and j["name"] == "judge" and j["model"]["kind"] == "mock" and j["judge_on"] == "unanswered"
    assert j["prompt"]["sha256"] == JUDGE_PROMPT_SHA256 and "{reply}" in j["prompt"]["template"]
    assert (j["n_rows_to_judge"], j["asked"], j["reused"], j["failed"]) == (70, 70, 0, 3)
    assert j["errors"]["by_type"] == {"RuntimeError": 3}
    rows = _rows(out)
    assert len(rows) == 120  # no row lost to the judge's failures
    for iid, row in rows.items():
        subset = int(iid[1:3])
        if subset <= 6:
            assert row["decided_by"] == "rule" and row["parse_rule"] != "judge" and row["judge_response"] is None
        elif subset == 8:  # the judge said "none"
            assert row["decided_by"] == "unanswered" and row["pred"] is None and not row["correct"]
            assert row["judge_response"] == "none" and row["judge_parse_rule"] == "judge_none"
        elif iid in ("S14-1", "S14-2", "S14-3"):
            assert row["decided_by"] == "unanswered" and row["pred"] is None
            assert row["judge_response"] is None and "mock failure on" in row["judge_error"]
        else:
            assert row["decided_by"] == "judge" and row["parse_rule"] == "judge" and row["pred"] == row["gold"]
            assert row["correct"] and row["rule_parse_rule"] and row["rule_parse_rule"] != "judge"
            assert row["judge_response"] == (f"Answer: {row['gold']}" if subset == 13 else row["gold"])
    decided = _metrics(out)["decided"]
    assert decided["counted_over"] == "items"
    assert decided["by_split"]["seen"] == {"rule": 30, "judge": 57, "unanswered": 13, "n": 100}
    assert decided["by_split"]["unseen"] == {"rule": 20, "judge": 0, "unanswered": 0, "n": 20}
    assert decided["by_split"]["all"] == {"rule": 50, "judge": 57, "unanswered": 13, "n": 120}
    assert "Decided by" in (out / "table.md").read_text()
    assert len(read_rows(out / "judgements.jsonl")[0]) == 67  # failures are not cached

    # The same command again: no reply is asked of the model again, only the 3 failed ones of the judge.
    model2, judge2 = MockModel(reply="refuse", script=READABLE), MockModel(name="judge", script=JUDGE_SCRIPT)
    run(_cfg(out), model2, judge=judge2)
    assert model2.calls == 0 and judge2.calls == 3
    m = _manifest(out)
    assert m["status"] == "complete" and (m["judge"]["asked"], m["judge"]["reused"]) == (3, 67)
    assert _metrics(out)["decided"]["by_split"]["all"] == {"rule": 50, "judge": 60, "unanswered": 10, "n": 120}
    resumed = (out / "predictions.jsonl").read_bytes()

    # Once more: nothing is asked at all, and the result is what an uninterrupted run writes.
    model3, judge3 = MockModel(reply="refuse", script=READABLE), MockModel(name="judge", script=JUDGE_SCRIPT)
    run(_cfg(out), model3, judge=judge3)
    assert model3.calls == 0 and judge3.calls == 0
    assert (out / "predictions.jsonl").read_bytes() == resumed
    fresh = tmp_path / "fresh"
    run(_cfg(fresh), MockModel(reply="refuse", script=READABLE), judge=MockModel(name="judge", script=JUDGE_SCRIPT))
    assert (fresh / "predictions.jsonl").read_bytes() == resumed
    assert (fresh / "judgements.jsonl").read_bytes() == (out / "judgements.jsonl").read_bytes()


def test_a_run_stopped_while_judging_resumes_with_the_judgements_it_had(tmp_path):
    class Interrupted(MockModel):  # stopped (Ctrl-C, a kill) after two batches of 8
        def generate(self, batch):
            if self.calls >= 16:
                raise KeyboardInterrupt
            return super().generate(batch)

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run(_cfg(out), MockModel(reply="refuse", script=READABLE), judge=Interrupted(name="judge"))
    assert _manifest(out)["status"] == "failed"
    assert len(read_rows(out / "judgements.jsonl")[0]) == 16  # flushed per batch
    assert len(read_rows(out / "predictions.jsonl")[0]) == 120  # every reply was in before the judge was asked

    model, judge = MockModel(reply="refuse", script=READABLE), MockModel(name="judge")
    run(_cfg(out), model, judge=judge)
    assert model.calls == 0 and judge.calls == 70 - 16
    assert _manifest(out)["status"] == "complete"
    fresh = tmp_path / "fresh"
    run(_cfg(fresh), MockModel(reply="refuse", script=READABLE), judge=MockModel(name="judge"))
    assert (fresh / "predictions.jsonl").read_bytes() == (out / "predictions.jsonl").read_bytes()


def test_a_changed_judge_is_asked_again_and_no_judge_restores_the_rules_reading(tmp_path):
    out = tmp_path / "run"
    run(_cfg(out), MockModel(reply="refuse", script=READABLE), judge=MockModel(name="judge"))
    other = MockModel(name="judge", reply="first")  # another identity: its cached judgements are not the first's
    run(_cfg(out), MockModel(reply="refuse", script=READABLE), judge=other)
    assert other.calls == 70 and _manifest(out)["judge"]["stale_rows"] == 70
    assert any(p.name.startswith("judgements.stale-") for p in out.iterdir())
    rows = _rows(out)
    assert all(r["pred"] == "A" for r in rows.values() if r["decided_by"] == "judge")

    # Without a judge the rules' own reading comes back from the cached rows (no model call).
    model = MockModel(reply="refuse", script=READABLE)
    cfg = RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)), experiment=EXP, output_dir=str(out), progress=False)
    run(cfg, model)
    rows = _rows(out)
    assert model.calls == 0 and _manifest(out)["judge"] is None
    assert sum(r["decided_by"] == "unanswered" for r in rows.values()) == 70
    assert all(r["parse_rule"] != "judge" and "judge_pred" not in r for r in rows.values())
    assert _metrics(out)["decided"]["by_split"]["all"] == {"rule": 50, "judge": 0, "unanswered": 70, "n": 120}
    assert "judge_agreement" not in _metrics(out)


def test_judge_on_all_audits_every_reply_without_overriding_the_rules(tmp_path):
    out = tmp_path / "run"
    # The rules read every reply (the gold letter). The judge agrees on the seen items, says "none" on subset 08
    # and picks the first option on the unseen ones (03 and 04): it disagrees wherever the gold is not A.
    judge = MockModel(name="judge", script=[["^S08-", "none"], ["^S0[34]-", "{first}"]])
    run(_cfg(out, judge_on="all"), MockModel(reply="gold"), judge=judge)
    assert judge.calls == 120
    rows = _rows(out)
    assert all(r["decided_by"] == "rule" and r["correct"] for r in rows.values())  # the audit changes no score
    agreement = _metrics(out)["judge_agreement"]
    both = [r for r in rows.values() if r["judge_pred"] is not None]
    assert len(both) == 110
    disagree = sorted(r["item_id"] for r in both if r["judge_pred"] != r["pred"])
    assert disagree and all(r["item_id"][:3] in ("S03", "S04") for r in both if r["item_id"] in disagree)
    a = agreement["all"]
    assert (a["n_judge_asked"], a["n_both"], a["n_disagree"], a["n_rule_only"]) == (120, 110, len(disagree), 10)
    assert a["agreement"] == pytest.approx(1 - len(disagree) / 110)
    # Cohen's kappa from its definition, on the letters both read: (p_o - p_e) / (1 - p_e).
    rule = pd.Series([r["pred"] for r in both])
    jud = pd.Series([r["judge_pred"] for r in both])
    p_o = (rule == jud).mean()
    p_e = sum(rule.eq(k).mean() * jud.eq(k).mean() for k in set(rule) | set(jud))
    assert a["kappa"] == pytest.approx((p_o - p_e) / (1 - p_e)) and a["kappa_low"] < a["kappa"] < a["kappa_high"]
    assert agreement["seen"]["n_disagree"] == 0 and agreement["seen"]["kappa"] == pytest.approx(1.0)
    assert agreement["unseen"]["n_both"] == 20 and agreement["unseen"]["n_disagree"] == len(disagree)
    lines = [json.loads(line) for line in (out / "judge_disagreements.jsonl").read_text().splitlines()]
    assert sorted(d["item_id"] for d in lines) == disagree
    assert all(d["judge_pred"] == "A" and d["rule_pred"] == d["gold"] != "A" for d in lines)
    assert "Rules vs judge" in (out / "table.md").read_text()
    html = (out / "report.html").read_text()
    assert "Decided by" in html and f"agree on {110 - len(disagree)} of the 110" in html


def test_judge_on_a_circular_run_reads_each_rotation(tmp_path):
    out = tmp_path / "run"
    # Rotation 0 of every item is read by the rules; the other rotations only by the judge.
    model = MockModel(reply="refuse", script=[[r"^S\d+-\d+@r0\n", "{gold}"]])
    judge = MockModel(name="judge")
    run(_cfg(out, circular=True), model, judge=judge)
    rotations = _rows(out, "predictions.rotations.jsonl")
    n_rot = len(rotations)
    assert judge.calls == n_rot - 120
    assert all(r["decided_by"] == ("rule" if r["item_id"].endswith("@r0") else "judge") for r in rotations.values())
    items = _rows(out)
    assert len(items) == 120 and all(r["correct"] and r["n_parse_failures"] == 0 for r in items.values())
    decided = _metrics(out)["decided"]
    assert decided["counted_over"] == "rotations"
    assert decided["by_split"]["all"] == {"rule": 120, "judge": n_rot - 120, "unanswered": 0, "n": n_rot}


def test_judged_shards_merge_to_the_unsharded_run(tmp_path):
    from dataclasses import replace

    from cgeval.config import ShardConfig
    from cgeval.merge import merge_shards

    run(_cfg(tmp_path / "ref"), MockModel(reply="refuse", script=READABLE), judge=MockModel(name="judge"))
    out = tmp_path / "sharded"
    for i in range(2):
        run(replace(_cfg(out), shard=ShardConfig(index=i, count=2)), MockModel(reply="refuse", script=READABLE),
            judge=MockModel(name="judge"))
    assert {p.name for p in out.glob("judgements*")} == {"judgements.shard-000-of-002.jsonl",
                                                          "judgements.shard-001-of-002.jsonl"}
    merge_shards(out)
    assert (out / "predictions.jsonl").read_bytes() == (tmp_path / "ref/predictions.jsonl").read_bytes()
    assert _metrics(out)["decided"] == _metrics(tmp_path / "ref")["decided"]
    assert (_manifest(out)["judge"]["asked"], _manifest(out)["judge"]["failed"]) == (70, 0)


def test_likelihood_scoring_has_no_replies_so_the_judge_is_not_used(tmp_path):
    out = tmp_path / "run"
    judge = MockModel(name="judge")
    run(_cfg(out, mode="likelihood"), MockModel(), judge=judge)
    assert judge.calls == 0
    j = _manifest(out)["judge"]
    assert j["used"] is False and "likelihood" in j["reason"]
    assert "decided_by" not in next(iter(_rows(out).values())) and "decided" not in _metrics(out)


def test_a_judge_set_but_not_built_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="scoring.judge is set"):
        run(_cfg(tmp_path), MockModel())
    with pytest.raises(ConfigError, match="judge_on"):
        ScoringConfig(judge_on="some")


def _cli(out, *overrides):
    return subprocess.run([sys.executable, "-m", "cgeval", "model=mock", "model.reply=refuse",
                           "model.script=[['^S0[2-6]-','{gold}']]", "progress=false", f"hydra.run.dir={out}",
                           *overrides], cwd=REPO, capture_output=True, text=True, timeout=300)


def test_cli_judge_by_name_and_by_config_group_then_resume(tmp_path):
    out = tmp_path / "short"
    proc = _cli(out, "scoring.judge=mock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "decided all     rule 50, judge 70, unanswered 0" in proc.stdout
    m = _manifest(out)
    assert m["judge"]["model"] == {"kind": "mock", "reply": "gold"} and m["judge"]["asked"] == 70
    assert m["config"]["scoring"]["judge"]["_target_"] == "cgeval.models.mock.MockModel"
    proc = _cli(out, "scoring.judge=mock")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _manifest(out)
    assert (m["judge"]["asked"], m["judge"]["reused"], m["resume"]["to_score"]) == (0, 70, 0)

    # The config-group form composes the judge like model=NAME, and takes overrides of its keys.
    out = tmp_path / "group"
    proc = _cli(out, "model@scoring.judge=mock", "scoring.judge.reply=first", "scoring.judge_on=all")
    assert proc.returncode == 0, proc.stderr[-3000:]
    m = _manifest(out)
    assert m["judge"]["model"]["reply"] == "first" and m["judge"]["judge_on"] == "all"
    assert (out / "judge_disagreements.jsonl").is_file()

    proc = _cli(tmp_path / "bad", "scoring.judge=no_such_model")
    assert proc.returncode == 1 and "no model config of that name" in proc.stderr
    # Likelihood scoring: the judge is not even built.
    out = tmp_path / "likelihood"
    proc = _cli(out, "scoring=likelihood", "model@scoring.judge=mock", "scoring.judge._target_=no.such.Class")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert _manifest(out)["judge"]["used"] is False


def test_a_tiny_model_judges_through_the_real_hf_adapter(tmp_path):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from cgeval.config import CONF_DIR, run_config_from_hydra

    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "model=mock", "model.reply=refuse", "model.script=[['^S0[2-6]-','{gold}']]",
            "model@scoring.judge=qwen2_vl_7b", "scoring.judge.tiny=true", "scoring.judge.max_new_tokens=4",
            "scoring.judge_on=all", "data.max_items_per_file=2", "progress=false"])
    judge = instantiate(cfg.scoring.judge)
    assert type(judge).__name__ == "HFAdapter" and judge.describe()["tiny_replica"]
    out = tmp_path / "run"
    run_cfg = run_config_from_hydra(cfg, str(out))
    run(run_cfg, instantiate(cfg.model), judge=judge)

    m = _manifest(out)
    assert m["status"] == "complete" and m["judge"]["model"]["model_class"] == "Qwen2VLForConditionalGeneration"
    assert m["judge"]["asked"] == 24 and m["judge"]["failed"] == 0
    rows = _rows(out)
    cached = {r["item_id"]: r["judge_response"] for r in read_rows(out / "judgements.jsonl")[0]}
    assert len(rows) == len(cached) == 24
    for iid, row in rows.items():
        assert row["judge_response"] == cached[iid] and isinstance(row["judge_response"], str)
        letter, rule = read_judgement(row["judge_response"], tuple(row["options"].items()))
        assert (row["judge_pred"], row["judge_parse_rule"]) == (letter, rule)
        rule_read = int(iid[1:3]) <= 6
        expected = "rule" if rule_read else ("judge" if letter else "unanswered")
        assert row["decided_by"] == expected
        assert row["pred"] == (row["gold"] if rule_read else letter)

    # The question put to the judge is text only: no image placeholder in the prompt its template renders.
    from cgeval.data.loader import load_medmat

    item = load_medmat(str(SAMPLE_ROOT), max_items_per_file=1)[0][0]
    text = judge.prompt_text(judge_item(item, "I think it is B."))
    assert "<|vision_start|>" not in text and "I think it is B." in text and "<|im_start|>assistant" in text
    # Batched or one at a time, a text-only batch gets the same replies.
    asks = [judge_item(item, reply) for reply in ("B", "Probably the first one, A.", "none of these")]
    assert judge.generate(asks) == [judge.generate([a])[0] for a in asks]

    run(run_cfg, instantiate(cfg.model), judge=judge)  # resumed: every judgement reused
    assert _manifest(out)["judge"]["asked"] == 0 and _manifest(out)["judge"]["reused"] == 24


def test_read_judgement_and_the_judge_request_without_an_image():
    options = (("A", "Normal"), ("B", "Cyst"), ("C", "Stone"))
    assert read_judgement("none", options) == (None, "judge_none")
    assert read_judgement(' "None." ', options)[0] is None
    assert read_judgement("B", options)[0] == "B"
    assert read_judgement("Answer: C", options)[0] == "C"
    from cgeval.data.loader import load_medmat

    item = load_medmat(str(SAMPLE_ROOT), max_items_per_file=1)[0][0]
    ask = judge_item(item, "It looks like a cyst, so B.")
    assert ask.item_id == item.item_id and ask.options == item.options and ask.image_path == ""
    assert item.question in ask.prompt and "It looks like a cyst, so B." in ask.prompt
    assert all(f"{l}. {t}" in ask.prompt for l, t in item.options)
    messages = api_messages(ask, PromptTemplate(), None)
    assert [p["type"] for p in messages[-1]["content"]] == ["text"]
    assert [p["type"] for p in api_messages(item, PromptTemplate(), "data:x")[-1]["content"]] == ["image_url", "text"]


def test_cohens_kappa_matches_a_known_value_and_is_undefined_without_variation():
    # The textbook example (Wikipedia, "Cohen's kappa"): 50 proposals, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no.
    a = ["yes"] * 25 + ["no"] * 25
    b = ["yes"] * 20 + ["no"] * 5 + ["yes"] * 10 + ["no"] * 15
    k = cohens_kappa(a, b)
    assert k["kappa"] == pytest.approx(0.4) and k["kappa_low"] < 0.4 < k["kappa_high"]
    assert cohens_kappa(["A"] * 5, ["A"] * 5)["kappa"] is None
    assert cohens_kappa([], [])["kappa"] is None
    with pytest.raises(ValueError):
        cohens_kappa(["A"], [])


def test_decided_by_is_read_from_rows_written_before_it_existed():
    df = pd.DataFrame({"response": ["A", "maybe", "x", None], "pred": ["A", None, "B", None],
                       "parse_rule": ["bare_letter", "none", "judge", "likelihood"]})
    assert decided_by(df).tolist() == ["rule", "unanswered", "judge", "unanswered"]
    assert decided_by(df.assign(response=None)) is None  # likelihood runs have no replies
