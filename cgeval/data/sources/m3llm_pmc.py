"""M3LLM-PMC ``subimage_option.jsonl`` (seed 004): four-choice questions about PMC figure sub-images.

Schema: one object a line, ``{"image", "caption", "qa_pairs": [{"question", "answer", "context",
"improved context"}]}``; the options are lines inside ``question`` (``A. ...`` / ``A: ...`` / ``A) ...``) and
``answer`` is a letter (``B``, ``(B)``, ``B. text``, ``Answer: B``) or an option's text. Each QA pair is one item;
the stem is the question text above the option lines. The source states no modality, area or task.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path

from ..records import Item, OptionParseError, parse_question_choice
from .common import Question, Record, Skip, SourceReport, file_records
from .common import load_source, norm_answer, question_and_answer, require_image, text_field

SOURCE = "m3llm_pmc"
_LETTER_ANSWER = re.compile(r"^\s*(?:the\s+)?(?:correct\s+)?(?:answer\s*(?:is)?\s*[:：]?\s*)?\(?([A-D])\)?(?:[.:)\s]|$)", re.I)


def resolve_answer(answer: str, options: list[str]) -> int | None:
    """The index of the option ``answer`` names, by letter or by text; None when it names none."""
    m = _LETTER_ANSWER.match(answer)
    if m:
        index = "ABCD".index(m.group(1).upper())
        return index if index < len(options) else None
    by_text = {norm_answer(o): i for i, o in enumerate(options)}
    return by_text.get(norm_answer(answer))


@dataclass(frozen=True)
class _Pair:
    """One QA pair of a figure record (``pair`` None: the record has no ``qa_pairs`` list)."""

    figure: object
    pair: object
    pair_index: int


def _pair_records(files: list[Path]) -> Iterable[Record]:
    """Each QA pair is a record of its own (counted once); a figure without pairs is one malformed record."""
    for rec in file_records(files):
        pairs = rec.data.get("qa_pairs") if isinstance(rec.data, dict) else None
        if not isinstance(pairs, list) or not pairs:
            yield replace(rec, data=_Pair(rec.data, None, -1))
            continue
        for j, qa in enumerate(pairs):
            yield replace(rec, data=_Pair(rec.data, qa, j), where=f"{rec.where}.qa_pairs[{j}]")


def _question(rec: Record, report: SourceReport) -> Question:
    figure, qa, j = rec.data.figure, rec.data.pair, rec.data.pair_index
    if qa is None:
        raise Skip("malformed_record", "no qa_pairs list")
    question, answer = question_and_answer(replace(rec, data=qa), "question", "answer", "missing question or answer")
    image = require_image(text_field(figure, "image"), "no image")
    try:
        stem, lettered, _ = parse_question_choice(question)
    except OptionParseError as e:
        raise Skip("unparseable_options", str(e)) from e
    options = tuple(text for _, text in lettered)
    gold = resolve_answer(answer, list(options))
    if gold is None:
        raise Skip("answer_not_an_option", f"answer {answer!r} not in {list(options)}")
    return Question(
        f"{rec.index}-{j}", image, stem, options, gold,
        meta={
            "caption": text_field(figure, "caption") or "",
            "context": text_field(qa, "improved context", "context") or "",
        },
    )


def load_m3llm_pmc(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    root = Path(image_root if image_root is not None else path.parent).resolve()
    return load_source(SOURCE, [path], root, _question, verify_images, io_workers, records=_pair_records)
