"""The judge's prompt, the text-only item put to it, and how its answer is read (no model, no pipeline)."""

from __future__ import annotations

import pytest

from cgeval.data.records import Item
from cgeval.models.prompt import TEXT_ONLY
from cgeval.scoring.judge import JUDGE_NONE_RULE, judge_item, judge_prompt, read_judgement

OPTIONS = (("A", "Normal"), ("B", "Pneumonia"), ("C", "Tuberculosis"))


def _item(options=OPTIONS, gold="B") -> Item:
    lines = "\n".join(f"{l}: {t}" for l, t in options)
    prompt = f"Which finding does this chest X-ray show?\n{lines}\nAnswer with the option's letter."
    return Item(item_id="S07-12", subset=7, dataset=7, modality="X-Ray", area="Lung", task="Disease",
                image="med-mat/s07/12.png", image_path="/data/med-mat/s07/12.png", prompt=prompt,
                question="Which finding does this chest X-ray show?", options=options, gold=gold,
                answer_text=dict(options)[gold], meta={"source": "sample", "split": "seen"})


# The whole text, written out by hand: the stem, one "L. text" line per option, the reply between the
# markers, and the item's own letters in the instruction.
EXPECTED = """You are checking which answer a reply gives to a multiple-choice question. Do not answer the \
question yourself: only report the option the reply chooses.

Question: Which finding does this chest X-ray show?
Options:
A. Normal
B. Pneumonia
C. Tuberculosis

Reply:
<<<
The opacity in the right lower lobe suggests B.
>>>

Which option does the reply choose as its final answer? Answer with that option's letter (A, B, C) only. \
Answer "none" if the reply chooses no option, chooses more than one, or lists possibilities without deciding."""


def test_judge_prompt_is_the_fixed_text_filled_with_the_item_and_reply():
    assert judge_prompt(_item(), "The opacity in the right lower lobe suggests B.") == EXPECTED


def test_judge_prompt_lists_two_options_and_their_letters():
    item = _item(options=(("A", "No"), ("B", "Yes")), gold="A")
    text = judge_prompt(item, "yes")
    assert "Options:\nA. No\nB. Yes\n\nReply:\n<<<\nyes\n>>>\n" in text
    assert "letter (A, B) only." in text


def test_judge_item_is_a_text_only_copy_carrying_the_prompt():
    item = _item()
    reply = "It looks like pneumonia, so B."
    ask = judge_item(item, reply)
    expected_text = EXPECTED.replace("The opacity in the right lower lobe suggests B.", reply)
    assert ask.prompt == expected_text and ask.question == expected_text
    assert ask.image == "" and ask.image_path == ""
    assert ask.meta == {"source": "sample", "split": "seen", TEXT_ONLY: True, "judged_item": "S07-12"}
    assert ask.meta[TEXT_ONLY] is True
    # what a scripted judge and the scorer need is kept
    assert (ask.item_id, ask.options, ask.gold, ask.answer_text) == ("S07-12", OPTIONS, "B", "Pneumonia")
    assert (ask.modality, ask.area, ask.task, ask.subset) == ("X-Ray", "Lung", "Disease", 7)
    # the item asked about is left as it was
    assert item.image == "med-mat/s07/12.png" and TEXT_ONLY not in item.meta


@pytest.mark.parametrize("reply", ["none", "None.", ' "NONE" ', "(none)"])
def test_read_judgement_none_is_no_letter(reply):
    assert read_judgement(reply, OPTIONS) == (None, JUDGE_NONE_RULE)
    assert JUDGE_NONE_RULE == "judge_none"


def test_read_judgement_reads_a_letter_by_the_reply_rules():
    assert read_judgement("B", OPTIONS) == ("B", "bare_letter")
    assert read_judgement("The reply chooses C.", OPTIONS) == ("C", "standalone_letter")
    assert read_judgement("Answer: A", OPTIONS) == ("A", "answer_phrase")
    assert read_judgement("", OPTIONS) == (None, "empty")
    assert read_judgement(None, OPTIONS) == (None, "empty")
    assert read_judgement("D", OPTIONS) == (None, "letter_not_an_option")


def test_read_judgement_is_strict_unless_asked_otherwise():
    # A misspelt option text is read only by the lenient rules (fuzzy matching).
    assert read_judgement("pneumonai", OPTIONS) == (None, "no_answer")
    assert read_judgement("pneumonai", OPTIONS, "strict") == (None, "no_answer")
    assert read_judgement("pneumonai", OPTIONS, "lenient") == ("B", "fuzzy_text")
    assert read_judgement("tuberculosys", OPTIONS, extract="lenient") == ("C", "fuzzy_text")
