"""A deterministic stand-in model for pipeline tests and harness benchmarks (not a baseline).

``reply`` picks what it says: ``gold`` (the right letter), ``first`` (always the first option), ``text``
(the gold option's text, exercising the text rule of the scorer) or ``refuse``. ``script`` scripts replies per
prompt: ``[[pattern, reply], ...]`` (or a ``{pattern: reply}`` mapping), each pattern a regular expression searched in ``"<item_id>\n<prompt>"`` (so ``^S03-``
picks an item by id, and a word of a judge's prompt picks the reply it is asked about), the first that matches
giving the reply, with ``{gold}``, ``{first}`` and ``{answer_text}`` filled in; items no pattern matches get
``reply``. ``calls`` counts the items asked. ``delay_s`` sleeps per batch, so that tests can interrupt a run
mid-way; ``fail_on`` lists item ids whose answer raises.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping, Sequence

from ..data.records import Item

REPLIES = ("gold", "first", "text", "refuse")


class MockModel:
    def __init__(self, name: str = "mock", reply: str = "gold", delay_s: float = 0.0, fail_on: Sequence[str] = (),
                 script: Mapping[str, str] | Sequence[Sequence[str]] | None = None):
        if reply not in REPLIES:
            raise ValueError(f"reply must be one of {REPLIES}, got {reply!r}")
        self.name = name
        self.reply = reply
        self.delay_s = delay_s
        self.fail_on = set(fail_on)  # item ids whose answer raises, to test error isolation
        pairs = list(script.items()) if isinstance(script, Mapping) else list(script or ())
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"script must hold [pattern, reply] pairs, got {script!r}")
        self.script = [[str(p), str(r)] for p, r in pairs]
        self._patterns = [(re.compile(p), r) for p, r in self.script]
        self.calls = 0  # items asked (generate or option_logprobs), to test what a resumed run asks again

    def _answer(self, item: Item) -> str:
        if item.item_id in self.fail_on:
            raise RuntimeError(f"mock failure on {item.item_id}")
        subject = f"{item.item_id}\n{item.prompt}"
        for pattern, reply in self._patterns:
            if pattern.search(subject):
                return reply.format(gold=item.gold, first=item.letters[0], answer_text=item.answer_text)
        if self.reply == "gold":
            return item.gold
        if self.reply == "first":
            return item.letters[0]
        if self.reply == "text":
            return f"The image shows {item.answer_text}."
        return "I cannot determine this from the image."

    def generate(self, batch: Sequence[Item]) -> list[str]:
        if self.delay_s:
            time.sleep(self.delay_s)
        self.calls += len(batch)
        return [self._answer(it) for it in batch]

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        replies = self.generate(batch)
        return [{l: (0.0 if l == r else -math.log(it.n_options) - 1.0) for l in it.letters}
                for it, r in zip(batch, replies)]

    def describe(self) -> dict:
        return {"kind": "mock", "reply": self.reply, **({"script": self.script} if self.script else {})}
