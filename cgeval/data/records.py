"""The record types every layer shares: one multiple-choice question about one image."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

LETTERS = "ABCD"

# An option line: "A: Stone" (README sample) or "A. Stone" (paper template), optionally "A) Stone".
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[:.)]\s*(\S.*?)\s*$")


class OptionParseError(ValueError):
    """`Question-choice` does not hold 2-4 option lines lettered A, B, C, D in order."""


@dataclass(frozen=True)
class Item:
    """One multiple-choice question, ready for a model.

    ``prompt`` is the record's own ``Question-choice`` text, verbatim: stem, option lines and instruction.
    ``options`` maps each letter to its label text, in order.
    """

    item_id: str
    subset: int | None
    dataset: int
    modality: str
    area: str
    task: str
    image: str  # path as written in the record, relative to data.root
    image_path: str  # resolved absolute path
    prompt: str
    question: str  # the stem, without option lines and instruction
    options: tuple[tuple[str, str], ...]
    gold: str
    answer_text: str
    caption: str = ""
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def letters(self) -> tuple[str, ...]:
        return tuple(letter for letter, _ in self.options)

    @property
    def n_options(self) -> int:
        return len(self.options)

    def option_text(self, letter: str) -> str:
        return dict(self.options)[letter]

    @property
    def composition(self) -> str:
        return f"{self.modality}-{self.area}-{self.task}"


def parse_question_choice(text: str) -> tuple[str, tuple[tuple[str, str], ...], str]:
    """Split a ``Question-choice`` string into (stem, options, instruction).

    Options must be consecutive letters starting at A, 2 to 4 of them, one per line.
    """
    lines = text.splitlines()
    first = last = None
    options: list[tuple[str, str]] = []
    for i, line in enumerate(lines):
        m = _OPTION_LINE.match(line)
        # After Z there is no next letter: a 26th option already makes the record unparseable (too many).
        expected = string.ascii_uppercase[len(options)] if len(options) < len(string.ascii_uppercase) else None
        if m and m.group(1) == expected and (last is None or i == last + 1):
            if first is None:
                first = i
            last = i
            options.append((m.group(1), m.group(2)))
        elif options:
            break
    if not 2 <= len(options) <= len(LETTERS):
        raise OptionParseError(
            f"expected 2-4 option lines 'A: ...' or 'A. ...', found {len(options)}"
        )
    stem = "\n".join(lines[:first]).strip()
    instruction = "\n".join(lines[last + 1 :]).strip()
    return stem, tuple(options), instruction
