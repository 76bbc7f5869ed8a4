"""A deterministic stand-in model for pipeline tests and harness benchmarks (not a baseline).

``reply`` picks what it says: ``gold`` (the right letter), ``first`` (always the first option), ``text``
(the gold option's text, exercising the text rule of the scorer) or ``refuse``. ``delay_s`` sleeps per
batch, so that tests can interrupt a run mid-way.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

from ..data.records import Item

REPLIES = ("gold", "first", "text", "refuse")


class MockModel:
    def __init__(self, name: str = "mock", reply: str = "gold", delay_s: float = 0.0, fail_on: Sequence[str] = ()):
        if reply not in REPLIES:
            raise ValueError(f"reply must be one of {REPLIES}, got {reply!r}")
        self.name = name
        self.reply = reply
        self.delay_s = delay_s
        self.fail_on = set(fail_on)  # item ids whose answer raises, to test error isolation

    def _answer(self, item: Item) -> str:
        if item.item_id in self.fail_on:
            raise RuntimeError(f"mock failure on {item.item_id}")
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
        return [self._answer(it) for it in batch]

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        replies = self.generate(batch)
        return [{l: (0.0 if l == r else -math.log(it.n_options) - 1.0) for l in it.letters}
                for it, r in zip(batch, replies)]

    def describe(self) -> dict:
        return {"kind": "mock", "reply": self.reply}
