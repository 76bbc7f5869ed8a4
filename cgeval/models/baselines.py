"""Reference baselines: chance, and the label prior of the seen compositions."""

from __future__ import annotations

import hashlib
import json
import math
import random
import zlib
from collections import Counter
from collections.abc import Sequence

from ..data.records import Item


def _item_rng(seed: int, item_id: str) -> random.Random:
    # Seeded per item, so an item's answer does not depend on batch size, order or sharding.
    return random.Random(zlib.crc32(f"{seed}:{item_id}".encode()))


class RandomBaseline:
    """Uniform over each item's own options (chance level), seeded per item."""

    def __init__(self, name: str = "random", seed: int = 0):
        self.name = name
        self.seed = seed

    def generate(self, batch: Sequence[Item]) -> list[str]:
        return [_item_rng(self.seed, it.item_id).choice(it.letters) for it in batch]

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        out = []
        for it in batch:
            chosen = _item_rng(self.seed, it.item_id).choice(it.letters)
            # Uniform probability, with the seeded pick a hair ahead so the argmax is the same draw.
            out.append({l: -math.log(it.n_options) + (1e-9 if l == chosen else 0.0) for l in it.letters})
        return out

    def describe(self) -> dict:
        return {"kind": "baseline", "baseline": "random", "seed": self.seed}


class PriorBaseline:
    """Picks the option whose label text is most frequent among the gold answers of the seen items.

    Ties (including labels never seen) are broken by a seeded per-item draw among the tied options.
    """

    def __init__(self, name: str = "prior", seed: int = 0):
        self.name = name
        self.seed = seed
        self.counts: Counter[str] | None = None

    def fit(self, seen: Sequence[Item]) -> None:
        self.counts = Counter(it.answer_text.strip().lower() for it in seen)

    def _scores(self, it: Item) -> dict[str, float]:
        if self.counts is None:
            raise RuntimeError("PriorBaseline.fit(seen items) must be called before it answers")
        return {l: float(self.counts.get(text.strip().lower(), 0)) for l, text in it.options}

    def _pick(self, it: Item) -> str:
        scores = self._scores(it)
        best = max(scores.values())
        tied = [l for l in it.letters if scores[l] == best]
        return _item_rng(self.seed, it.item_id).choice(tied)

    def generate(self, batch: Sequence[Item]) -> list[str]:
        return [self._pick(it) for it in batch]

    def option_logprobs(self, batch: Sequence[Item]) -> list[dict[str, float]]:
        out = []
        for it in batch:
            scores = self._scores(it)
            total = sum(scores.values()) + it.n_options  # add-one smoothing
            chosen = self._pick(it)
            out.append(
                {l: math.log((scores[l] + 1) / total) + (1e-9 if l == chosen else 0.0) for l in it.letters}
            )
        return out

    def describe(self) -> dict:
        n = sum(self.counts.values()) if self.counts else 0
        # What it learned decides its answers, so it is in the resume key: two held-out sets with as many seen
        # answers still differ here.
        counts = json.dumps(sorted((self.counts or {}).items()), ensure_ascii=False)
        return {"kind": "baseline", "baseline": "prior", "seed": self.seed, "n_seen_answers": n,
                "seen_answers_sha256": hashlib.sha256(counts.encode()).hexdigest()[:16]}
