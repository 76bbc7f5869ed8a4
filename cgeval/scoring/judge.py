"""A judge model for the replies the rules cannot read: its prompt, the question it is asked, how its answer is read.

The judge is any model adapter. It is shown the item's question, its options and the reply, as text only (no
image: it judges what the reply says, not the picture), and asked for one option letter or "none". Its answer is
read by the same rules as any reply (`extract_choice_with_rule`), after an explicit "none" is taken as no answer.
The prompt is fixed here, and its hash is recorded in the run manifest and in the key of every cached judgement.

The judging stage of a run (asking in batches, the judgements cache, failures) is `cgeval.judging`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace

from ..data.records import Item
from ..models.prompt import TEXT_ONLY
from . import extract_choice_with_rule

JUDGE_PROMPT = """You are checking which answer a reply gives to a multiple-choice question. Do not answer the \
question yourself: only report the option the reply chooses.

Question: {question}
Options:
{options}

Reply:
<<<
{reply}
>>>

Which option does the reply choose as its final answer? Answer with that option's letter ({letters}) only. \
Answer "none" if the reply chooses no option, chooses more than one, or lists possibilities without deciding."""

JUDGE_PROMPT_SHA256 = hashlib.sha256(JUDGE_PROMPT.encode()).hexdigest()[:16]

# A judge reply that is "none" (any case, optional quotes, brackets or a full stop): no option chosen.
_NONE = re.compile(r"^\W*none\W*$", re.IGNORECASE)
JUDGE_NONE_RULE = "judge_none"


def judge_prompt(item: Item, reply: str) -> str:
    """The text the judge is asked about ``reply`` to ``item`` (the item's own stem and options)."""
    return JUDGE_PROMPT.format(question=item.question, options="\n".join(f"{l}. {t}" for l, t in item.options),
                               reply=reply, letters=", ".join(item.letters))


def judge_item(item: Item, reply: str) -> Item:
    """The question put to the judge, as an item an adapter can take: the same id, options and gold (for
    scripted test judges), the judge prompt as its text, and no image."""
    text = judge_prompt(item, reply)
    return replace(item, prompt=text, question=text, image="", image_path="",
                   meta={**item.meta, TEXT_ONLY: True, "judged_item": item.item_id})


def read_judgement(reply: str, options, extract: str = "strict") -> tuple[str | None, str]:
    """The letter a judge's reply gives, and the rule that read it: an explicit "none" is no letter
    (``judge_none``); anything else goes through the reply rules (`extract_choice_with_rule`)."""
    if _NONE.match(reply or ""):
        return None, JUDGE_NONE_RULE
    return extract_choice_with_rule(reply, options, mode=extract)
