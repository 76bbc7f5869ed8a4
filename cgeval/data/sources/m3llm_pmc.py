"""M3LLM-PMC ``subimage_option.jsonl`` (seed 004): four-choice questions about PMC figure sub-images.

Schema: one object a line, ``{"image", "caption", "qa_pairs": [{"question", "answer", "context",
"improved context"}]}``; the options are lines inside ``question`` (``A. ...`` / ``A: ...`` / ``A) ...``) and
``answer`` is a letter (``B``, ``(B)``, ``B. text``, ``Answer: B``) or an option's text. Each QA pair is one item;
the stem is the question text above the option lines. The source states no modality, area or task.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..records import Item, OptionParseError, parse_question_choice
from .common import SourceReport, finish, make_item, new_report, norm_answer, read_records, text_field

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


def load_m3llm_pmc(
    path: str | Path, image_root: str | Path | None = None, verify_images: bool = True, io_workers: int = 8
) -> tuple[list[Item], SourceReport]:
    path = Path(path)
    root = Path(image_root if image_root is not None else path.parent).resolve()
    report = new_report(root, SOURCE)
    report.files.append(path.name)
    items = []
    for i, rec in enumerate(read_records(path)):
        where = f"{path.name}[{i}]"
        image = text_field(rec, "image")
        pairs = rec.get("qa_pairs") if isinstance(rec, dict) else None
        if not isinstance(pairs, list) or not pairs:
            report.n_records += 1
            report.skip("malformed_record", f"{where}: no qa_pairs list")
            continue
        for j, qa in enumerate(pairs):
            report.n_records += 1
            question, answer = text_field(qa, "question"), text_field(qa, "answer")
            if question is None or answer is None:
                report.skip("malformed_record", f"{where}.qa_pairs[{j}]: missing question or answer")
                continue
            if image is None:
                report.skip("no_image", f"{where}: no image")
                continue
            try:
                stem, lettered, _ = parse_question_choice(question)
            except OptionParseError as e:
                report.skip("unparseable_options", f"{where}.qa_pairs[{j}]: {e}")
                continue
            options = [text for _, text in lettered]
            gold = resolve_answer(answer, options)
            if gold is None:
                report.skip("answer_not_an_option", f"{where}.qa_pairs[{j}]: answer {answer!r} not in {options}")
                continue
            items.append(
                make_item(
                    SOURCE, f"{i}-{j}", image, root, stem, options, gold,
                    caption=text_field(rec, "caption") or "",
                    context=text_field(qa, "improved context", "context") or "",
                )
            )
    return finish(items, root, verify_images, io_workers, report), report
