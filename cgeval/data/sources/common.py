"""What every source loader shares: the record loop, the report, record reading, the checks every source makes
(question and answer present, a closed yes/no answer, an image named), item construction and image checks.

A source module states only what differs: how to read its files, its field names, its closed-question rule, its
image path rule and its modality / area mapping. It does so in one function, ``Record -> Question``, that raises
`Skip` for a record it cannot use; `load_source` runs the loop, counts every record and skip, and finishes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..images import image_problem
from ..loader import SKIP_REASONS, DataRootNotFound, LoadReport, MedMatFormatError
from ..records import LETTERS, Item
from ..registry import axis_values
from ..sample import INSTRUCTION

UNKNOWN = "unknown"
# The Med-MAT loader's reasons, plus the ones only other sources have.
SOURCE_SKIP_REASONS = SKIP_REASONS + (
    "open_ended",  # a free-text answer: no finite option set
    "not_yes_no",  # closed-ended, but not a yes/no answer we can turn into two options
    "non_english",
    "no_image",  # the record names no image we can locate
)
YES_NO = ("Yes", "No")


@dataclass
class SourceReport(LoadReport):
    """`LoadReport` with the sources' extra skip reasons."""

    def skip(self, reason: str, where: str) -> None:
        assert reason in SOURCE_SKIP_REASONS, reason
        self.skipped[reason] += 1
        if len(self.examples[reason]) < 5:
            self.examples[reason].append(where)


class Skip(Exception):
    """Raised by a source's record reader: the record is counted under ``reason`` and left out."""

    def __init__(self, reason: str, detail: str) -> None:
        assert reason in SOURCE_SKIP_REASONS, reason
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Record:
    """One source record and where it came from (its file and position name ids and skip messages)."""

    data: object
    file: Path
    index: int
    where: str

    def text(self, *keys: str) -> str | None:
        return text_field(self.data, *keys)


@dataclass(frozen=True)
class Question:
    """What a source makes of one record: everything `make_item` needs but the source name and image root."""

    source_id: str
    image: str
    stem: str
    options: tuple[str, ...]
    gold: int
    modality: str = UNKNOWN
    area: str = UNKNOWN
    task: str = UNKNOWN
    meta: dict = field(default_factory=dict)


def question_and_answer(rec: Record, question_key: str, answer_key: str, missing: str) -> tuple[str, str]:
    """The record's question and answer text; a record lacking either is ``malformed_record``."""
    question, answer = rec.text(question_key), rec.text(answer_key)
    if question is None or answer is None:
        raise Skip("malformed_record", missing)
    return question, answer


def require_image(image: str | None, missing: str) -> str:
    if image is None:
        raise Skip("no_image", missing)
    return image


def closed_yes_no(answer: str, closed: bool | None, answer_type: object) -> tuple[tuple[str, ...], int]:
    """Options Yes / No and the gold index of a closed yes/no question.

    ``closed``: the record's answer type says closed (True) or open (False), or the record has none (None: then a
    yes/no answer is what makes the question closed, and any other answer is open-ended).
    """
    if closed is False:
        raise Skip("open_ended", f"answer_type {answer_type!r}")
    yn = yes_no(answer)
    if yn is None:
        raise Skip("not_yes_no" if closed else "open_ended", f"answer {answer!r}")
    return YES_NO, YES_NO.index(yn)


def file_records(files: Iterable[Path], read: Callable[[Path], list] | None = None) -> Iterable[Record]:
    """Every record of every file, in file order (``read`` defaults to `read_records`)."""
    for file in files:
        for i, data in enumerate((read or read_records)(file)):
            yield Record(data, file, i, f"{file.name}[{i}]")


def load_source(
    source: str,
    files: list[Path],
    image_root: Path,
    to_question: Callable[[Record, SourceReport], Question],
    verify_images: bool,
    io_workers: int,
    records: Callable[[list[Path]], Iterable[Record]] = file_records,
) -> tuple[list[Item], SourceReport]:
    """The loop every source runs: count each record, make it an item or count why not, then `finish`."""
    report = new_report(image_root, source)
    report.files.extend(f.name for f in files)
    items = []
    for rec in records(files):
        report.n_records += 1
        try:
            q = to_question(rec, report)
        except Skip as s:
            report.skip(s.reason, f"{rec.where}: {s.detail}")
            continue
        items.append(
            make_item(
                source, q.source_id, q.image, image_root, q.stem, list(q.options), q.gold,
                modality=q.modality, area=q.area, task=q.task, **q.meta,
            )
        )
    return finish(items, image_root, verify_images, io_workers, report), report


def read_records(path: Path) -> list:
    """A JSON list, or JSON Lines (one object a line); anything else is a named format error."""
    if not path.is_file():
        raise DataRootNotFound(f"{path} does not exist or is not a file")
    text = path.read_text(encoding="utf-8-sig")  # a leading byte-order mark is accepted
    if path.suffix == ".jsonl":
        out = []
        for i, line in enumerate(text.splitlines()):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    out.append({"__unreadable__": f"{path.name}:{i + 1}"})
        return out
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise MedMatFormatError(f"{path}: not valid JSON ({e})") from e
    if not isinstance(data, list):
        raise MedMatFormatError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def text_field(rec: object, *keys: str) -> str | None:
    """The first of ``keys`` holding a non-empty string (numbers are accepted as text), else None."""
    if not isinstance(rec, dict):
        return None
    for key in keys:
        value = rec.get(key)
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


def canonical_area(value: str | None) -> str:
    """The registry's spelling when the source's area is one of ours, else the source's own value."""
    if not value:
        return UNKNOWN
    by_lower = {a.lower(): a for a in axis_values("area")}
    return by_lower.get(value.strip().lower(), value.strip())


def norm_answer(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().rstrip(".").strip()).lower()


def yes_no(answer: str) -> str | None:
    a = norm_answer(answer)
    return {"yes": "Yes", "no": "No"}.get(a)


def make_item(
    source: str,
    source_id: str,
    image: str,
    image_root: Path,
    stem: str,
    options: list[str],
    gold_index: int,
    modality: str = UNKNOWN,
    area: str = UNKNOWN,
    task: str = UNKNOWN,
    **meta,
) -> Item:
    """An item whose prompt is laid out as Med-MAT's ``Question-choice``: stem, ``A. option`` lines, instruction."""
    assert 2 <= len(options) <= len(LETTERS) and 0 <= gold_index < len(options)
    lettered = tuple((LETTERS[i], opt) for i, opt in enumerate(options))
    prompt = "\n".join([stem, *(f"{l}. {o}" for l, o in lettered), INSTRUCTION])
    return Item(
        item_id=f"{source}-{source_id}",
        subset=None,
        dataset=0,
        modality=modality or UNKNOWN,
        area=area or UNKNOWN,
        task=task or UNKNOWN,
        image=image,
        image_path=str(image_root / image),
        prompt=prompt,
        question=stem,
        options=lettered,
        gold=LETTERS[gold_index],
        answer_text=options[gold_index],
        meta={"source": source, "source_id": source_id, **meta},
    )


def finish(
    items: list[Item], image_root: Path, verify_images: bool, io_workers: int, report: SourceReport
) -> list[Item]:
    """Drop duplicate ids and items whose image is missing, too large or unreadable (counted), then fill the
    report. The pixel cap (`cgeval.data.images.DEFAULT_MAX_IMAGE_PIXELS`) is read from each header, so an
    oversized image is never decoded."""
    seen: set[str] = set()
    unique = []
    for it in items:
        if it.item_id in seen:
            report.skip("duplicate_id", it.item_id)
            continue
        seen.add(it.item_id)
        unique.append(it)
    root = image_root.resolve()
    present = []
    for it in unique:
        path = Path(it.image_path).resolve()
        if Path(it.image).is_absolute() or not path.is_relative_to(root):
            report.skip("path_outside_root", f"{it.item_id}: {it.image}")
        elif not path.is_file():
            report.skip("image_missing", f"{it.item_id}: {it.image}")
        else:
            present.append(it)
    with ThreadPoolExecutor(max_workers=max(1, io_workers)) as pool:
        problems = list(pool.map(lambda it: image_problem(it.image_path, verify=verify_images), present))
    for it, problem in zip(present, problems):
        if problem is not None:
            report.skip(problem, f"{it.item_id}: {it.image}")
    present = [it for it, problem in zip(present, problems) if problem is None]
    report.n_items = len(present)
    return present


def new_report(root: Path, source: str) -> SourceReport:
    return SourceReport(root=str(root), source=source)
