"""Load Med-MAT QA files in their published layout into `Item`s, counting every record it cannot use.

Layout under ``data.root`` (name variants seen in the wild are accepted)::

    med-mat/<DatasetFolder>/...                       images; the JSON ``image`` field is relative to root
    Aggregated_Subsets/Subset--NN-train.json          (also ``Aggrregated_Subsets/``, ``Subset-NN-train.json``,
                                                       or the file directly under root)
    Original_Medical_Datasets/ori--NN-train.json      (also ``Ori--NN-train.json``)

Whole-file problems (unreadable JSON, a file that is not a list of records, the same subset found twice)
stop the run with a named error before inference. Record-level problems are skipped and counted by reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..jsonl import JsonlLineError, iter_jsonl
from .images import DEFAULT_MAX_IMAGE_PIXELS, OUTSIDE_ROOTS, RootConfinement, check_max_pixels, image_problem
from .records import Item, OptionParseError, parse_question_choice
from .registry import DATASETS, SUBSETS, subset_of_dataset


class DataError(Exception):
    """Base class of the loader's named errors: the run stops before any inference."""


class DataRootNotFound(DataError):
    pass


class NoQAFilesFound(DataError):
    pass


class MedMatFormatError(DataError):
    """A QA file that is not valid JSON or not a list of records."""


class DuplicateQAFile(DataError):
    pass


class NoUsableItems(DataError):
    pass


SUBSET_DIRS = ("Aggregated_Subsets", "Aggrregated_Subsets", ".")
DATASET_DIRS = ("Original_Medical_Datasets", ".")
_SUBSET_FILE = re.compile(r"^Subset-{1,2}(\d{1,2})-train\.json$")
_DATASET_FILE = re.compile(r"^[Oo]ri-{1,2}(\d{1,3})-train\.json$")

# Skip reasons, in the order a record is checked. Each skipped record is counted under exactly one.
SKIP_REASONS = (
    "malformed_record",
    "unknown_dataset",
    "dataset_in_no_subset",
    "unparseable_options",
    "answer_not_an_option",
    "duplicate_id",
    "path_outside_root",
    "image_folder_missing",
    "image_missing",
    "symlink_outside_roots",  # the path is inside data.root, but a symlink on it leads outside every image root
    "image_too_large",  # width x height (from the header) above data.max_image_pixels
    "image_unreadable",
)
_REQUIRED = {"id": (int, str), "image": (str,), "Question-choice": (str,), "Answer-choice": (str,), "data-no": (str, int)}
_MAX_EXAMPLES = 5


@dataclass
class LoadReport:
    """What the loader read, and everything it did not use, by reason."""

    root: str
    source: str
    files: list[str] = field(default_factory=list)
    missing_requested: list[int] = field(default_factory=list)
    n_records: int = 0
    n_items: int = 0
    skipped: Counter = field(default_factory=Counter)
    warnings: Counter = field(default_factory=Counter)
    missing_image_folders: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    subsampled_out: int = 0
    items_file: str | None = None
    not_selected: int = 0  # usable records left out because data.items_file does not list them
    selected_missing: list[str] = field(default_factory=list)  # ids in data.items_file with no usable record

    def skip(self, reason: str, where: str) -> None:
        assert reason in SKIP_REASONS, reason
        self.skipped[reason] += 1
        if len(self.examples[reason]) < _MAX_EXAMPLES:
            self.examples[reason].append(where)

    def warn(self, reason: str, where: str) -> None:
        self.warnings[reason] += 1
        if len(self.examples[reason]) < _MAX_EXAMPLES:
            self.examples[reason].append(where)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "source": self.source,
            "files": self.files,
            "missing_requested": self.missing_requested,
            "n_records": self.n_records,
            "n_items": self.n_items,
            "n_skipped": self.n_skipped,
            "skipped": dict(sorted(self.skipped.items())),
            "warnings": dict(sorted(self.warnings.items())),
            "missing_image_folders": dict(sorted(self.missing_image_folders.items())),
            "subsampled_out": self.subsampled_out,
            "items_file": self.items_file,
            "not_selected": self.not_selected,
            "n_selected_missing": len(self.selected_missing),
            "selected_missing_examples": self.selected_missing[:10],
            "examples": {k: v for k, v in sorted(self.examples.items())},
        }


def find_qa_files(root: Path, source: str) -> dict[int, Path]:
    """Map subset (or dataset) number -> file, over every accepted name variant."""
    dirs, pattern = (SUBSET_DIRS, _SUBSET_FILE) if source == "subsets" else (DATASET_DIRS, _DATASET_FILE)
    found: dict[int, Path] = {}
    for d in dirs:
        folder = root / d
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            m = pattern.match(path.name)
            if not m or not path.is_file():
                continue
            number = int(m.group(1))
            if number in found:
                raise DuplicateQAFile(
                    f"{source[:-1]} {number:02d} is present twice: {found[number]} and {path}; keep one"
                )
            found[number] = path
    return found


SOURCES = ("auto", "subsets", "datasets")
_FILE_KIND = {"subsets": "Subset--NN-train.json", "datasets": "ori--NN-train.json"}
_DIRS = {"subsets": SUBSET_DIRS, "datasets": DATASET_DIRS}
_OTHER = {"subsets": "datasets", "datasets": "subsets"}


def resolve_source(root: Path, source: str, subsets: list[int] | None = None,
                   datasets: list[int] | None = None) -> str:
    """``data.source=auto``: the layout the request names (``data.datasets`` alone: datasets; ``data.subsets``:
    subsets), else the one present under ``root``, subsets first (a root with only Original_Medical_Datasets/
    reads that). Explicit ``subsets`` / ``datasets`` are kept as they are."""
    if source != "auto":
        return source
    if datasets is not None and subsets is None:
        return "datasets"
    if subsets is not None:
        return "subsets"
    for candidate in ("subsets", "datasets"):
        try:
            if find_qa_files(root, candidate):
                return candidate
        except DuplicateQAFile:
            return candidate  # present (twice): reading it raises the error that says so
    return "subsets"


def _other_source_hint(root: Path, source: str) -> str:
    """When the other layout's files are present: the setting that reads them."""
    other = _OTHER[source]
    try:
        n = len(find_qa_files(root, other))
    except DuplicateQAFile:
        n = 1
    if not n:
        return ""
    return (f"; but {n} {_FILE_KIND[other]} file(s) are there: set data.source={other} "
            f"(or data.source=auto) to read them")


def _read_json_list(path: Path) -> list:
    try:
        with path.open("rb") as f:
            # utf-8-sig: a file saved by an editor that writes a byte-order mark reads like any other.
            data = json.loads(f.read().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise MedMatFormatError(f"{path}: not valid UTF-8 JSON ({e})") from e
    if not isinstance(data, list):
        raise MedMatFormatError(f"{path}: expected a JSON list of records, got {type(data).__name__}")
    return data


def record_problem(rec: object, required: dict[str, tuple[type, ...]]) -> str | None:
    """What is wrong with a record's shape (not an object, a required key missing or of the wrong type), or None."""
    if not isinstance(rec, dict):
        return f"record is a {type(rec).__name__}, not an object"
    for key, types in required.items():
        if key not in rec:
            return f"missing key {key!r}"
        if not isinstance(rec[key], types) or isinstance(rec[key], bool):
            return f"{key!r} has type {type(rec[key]).__name__}"
    return None


def _check_types(rec: object) -> str | None:
    problem = record_problem(rec, _REQUIRED)
    if problem:
        return problem
    if not str(rec["data-no"]).strip().isdigit():
        return f"'data-no' is {rec['data-no']!r}, not a number"
    return None


def resolve_image(root: Path, rel: str) -> str | None:
    """The image's absolute path, or None when the path is absolute or escapes root.

    A lexical check (one string operation per image) that rejects ``..`` and absolute paths; where symlinks
    on the path lead is checked afterwards, against data.root and data.image_roots (`RootConfinement`).
    """
    if not rel or os.path.isabs(rel) or rel.startswith(("/", "\\")) or "\x00" in rel:
        return None
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith(("../", "..\\")) or os.path.isabs(norm):
        return None
    return os.path.join(str(root), norm)


def _image_folder(rel: str) -> str:
    """The dataset folder an image lives in (``med-mat/<DatasetFolder>``), or its parent folder if shallower."""
    parts = [p for p in os.path.normpath(rel).replace("\\", "/").split("/") if p not in ("", ".")]
    return "/".join(parts[:2]) if len(parts) > 2 else ("/".join(parts[:-1]) or ".")


def _record_to_item(rec: dict, where: str, number: int, source: str, root: Path, report: LoadReport) -> Item | None:
    problem = _check_types(rec)
    if problem:
        report.skip("malformed_record", f"{where}: {problem}")
        return None
    dataset_no = int(str(rec["data-no"]).strip())
    if dataset_no not in DATASETS:
        report.skip("unknown_dataset", f"{where}: data-no {dataset_no}")
        return None
    if source == "subsets":
        subset = SUBSETS[number]
        if dataset_no not in subset.datasets:
            report.warn("dataset_not_in_subset", f"{where}: data-no {dataset_no} not listed for subset {number:02d}")
    else:
        if dataset_no != number:
            report.warn("data_no_differs_from_file", f"{where}: data-no {dataset_no} in ori--{number:02d}")
        subset = subset_of_dataset(dataset_no)
        if subset is None:
            report.skip("dataset_in_no_subset", f"{where}: dataset {dataset_no} belongs to no Med-MAT subset")
            return None
    choice = parse_choice(rec, where, report.skip)
    if choice is None:
        return None
    stem, options, gold = choice
    answer_text = dict(options)[gold]
    if isinstance(rec.get("Answer"), str) and rec["Answer"].strip() != answer_text:
        report.warn("answer_text_differs", f"{where}: Answer {rec['Answer']!r} vs option {gold}: {answer_text!r}")
    prefix = f"S{number:02d}" if source == "subsets" else f"D{number:02d}"
    return Item(
        item_id=f"{prefix}-{rec['id']}",
        subset=subset.number,
        dataset=dataset_no,
        modality=subset.modality,
        area=subset.area,
        task=subset.task,
        image=rec["image"],
        image_path=os.path.join(str(root), rec["image"]),
        prompt=rec["Question-choice"],
        question=stem,
        options=options,
        gold=gold,
        answer_text=answer_text,
        caption=str(rec.get("caption", "")),
    )


def parse_choice(rec: dict, where: str, skip: Callable[[str, str], None]) \
        -> tuple[str, tuple[tuple[str, str], ...], str] | None:
    """``(stem, options, gold letter)`` of a record's ``Question-choice`` / ``Answer-choice``, or None with the
    reason passed to ``skip`` (``unparseable_options`` or ``answer_not_an_option``)."""
    try:
        stem, options, _ = parse_question_choice(rec["Question-choice"])
    except OptionParseError as e:
        skip("unparseable_options", f"{where}: {e}")
        return None
    gold = rec["Answer-choice"].strip().rstrip(".").strip().upper()
    letters = [letter for letter, _ in options]
    if gold not in letters:
        skip("answer_not_an_option", f"{where}: answer {rec['Answer-choice']!r} not in {letters}")
        return None
    return stem, options, gold


def _check_images(items: list[Item], root: Path, confinement: RootConfinement, verify: bool,
                  max_pixels: int | None, workers: int, report: LoadReport) -> list[Item]:
    kept: list[Item] = []
    to_verify: list[Item] = []
    folder_exists: dict[str, bool] = {}
    for item in items:
        path = resolve_image(root, item.image)
        if path is None:
            report.skip("path_outside_root", f"{item.item_id}: {item.image}")
            continue
        folder = _image_folder(item.image)
        if folder not in folder_exists:
            folder_exists[folder] = (root / folder).is_dir()
        if not folder_exists[folder]:
            report.skip("image_folder_missing", f"{item.item_id}: {folder}")
            report.missing_image_folders[folder] += 1
            continue
        if not os.path.isfile(path):
            report.skip("image_missing", f"{item.item_id}: {item.image}")
            continue
        real = confinement.outside(path)
        if real is not None:
            report.skip(OUTSIDE_ROOTS, f"{item.item_id}: {item.image} -> {real} (add its folder to data.image_roots)")
            continue
        to_verify.append(item)
    if not verify and max_pixels is None:
        return to_verify
    # The header (size) of every image, and with ``verify`` its full decode; never a pixel of an oversized one.
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        problems = list(pool.map(lambda it: image_problem(it.image_path, max_pixels, verify), to_verify))
    for item, problem in zip(to_verify, problems):
        if problem is None:
            kept.append(item)
        else:
            report.skip(problem, f"{item.item_id}: {item.image}")
    return kept


def load_medmat(
    root: str | Path,
    source: str = "subsets",
    *,
    subsets: list[int] | None = None,
    datasets: list[int] | None = None,
    max_items_per_file: int | None = None,
    items_file: str | Path | None = None,
    verify_images: bool = True,
    max_image_pixels: int | None = DEFAULT_MAX_IMAGE_PIXELS,
    image_roots: list[str | Path] | tuple[str | Path, ...] | None = None,
    io_workers: int = 8,
    seed: int = 0,
) -> tuple[list[Item], LoadReport]:
    """Read the QA files under ``root`` and return usable items plus a report of everything skipped.

    ``source`` is ``"subsets"`` (Aggregated_Subsets), ``"datasets"`` (Original_Medical_Datasets) or ``"auto"``
    (whichever is there, see `resolve_source`; the report records the one read).
    ``subsets`` / ``datasets`` restrict which files are read; requested numbers with no file are reported.
    ``max_items_per_file`` keeps a seeded random sample of each file's usable items (quick runs).
    Images must really lie (symlinks followed) under ``root`` or one of ``image_roots``, and be at most
    ``max_image_pixels`` by their header (None: no cap but Pillow's); ``verify_images`` also decodes each one.
    """
    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {SOURCES}, got {source!r}")
    max_image_pixels = check_max_pixels(max_image_pixels)
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise DataRootNotFound(f"data.root {root} does not exist or is not a folder")
    extra_roots = [Path(r).expanduser().resolve() for r in (image_roots or [])]
    absent = [str(r) for r in extra_roots if not r.is_dir()]
    if absent:
        raise DataRootNotFound(f"data.image_roots {absent} do not exist or are not folders")
    confinement = RootConfinement([root, *extra_roots])
    requested, source = source, resolve_source(root, source, subsets, datasets)
    report = LoadReport(root=str(root), source=source)
    files = find_qa_files(root, source)
    wanted = subsets if source == "subsets" else datasets
    if wanted is not None:
        wanted = sorted({int(n) for n in wanted})
        report.missing_requested = [n for n in wanted if n not in files]
        files = {n: p for n, p in files.items() if n in wanted}
    if not files:
        if requested == "auto" and wanted is None:  # neither layout is there
            raise NoQAFilesFound(
                f"no Med-MAT QA files under {root}: neither {_FILE_KIND['subsets']} (looked in "
                f"{', '.join(SUBSET_DIRS)}) nor {_FILE_KIND['datasets']} (looked in {', '.join(DATASET_DIRS)})"
            )
        raise NoQAFilesFound(
            f"no {_FILE_KIND[source]} files under {root} (looked in {', '.join(_DIRS[source])})"
            + (f" for requested numbers {wanted}" if wanted is not None else "")
            + _other_source_hint(root, source)
        )
    if source == "subsets":
        unknown = sorted(n for n in files if n not in SUBSETS)
        if unknown:
            raise MedMatFormatError(f"subset numbers {unknown} are not Med-MAT subsets 01-53")

    selected = read_item_ids(items_file) if items_file is not None else None
    report.items_file = str(items_file) if items_file is not None else None
    items: list[Item] = []
    seen_ids: set[str] = set()
    for number, path in sorted(files.items()):
        report.files.append(str(path.relative_to(root)))
        records = _read_json_list(path)
        report.n_records += len(records)
        file_items = []
        for i, rec in enumerate(records):
            item = _record_to_item(rec, f"{path.name}[{i}]", number, source, root, report)
            if item is None:
                continue
            if item.item_id in seen_ids:
                report.skip("duplicate_id", f"{path.name}[{i}]: id {item.item_id}")
                continue
            seen_ids.add(item.item_id)
            file_items.append(item)
        if selected is not None:
            report.not_selected += sum(1 for it in file_items if it.item_id not in selected)
            file_items = [it for it in file_items if it.item_id in selected]
        file_items = _check_images(file_items, root, confinement, verify_images, max_image_pixels, io_workers, report)
        if max_items_per_file is not None and len(file_items) > max_items_per_file:
            report.subsampled_out += len(file_items) - max_items_per_file
            # One generator per file, drawing from the items by id: a file's sample does not depend on which
            # other files were loaded or on the order of its records. (A string seed hashes with sha512.)
            rng = random.Random(f"{seed}/{source}/{number}")
            keep = set(rng.sample(sorted(it.item_id for it in file_items), max_items_per_file))
            file_items = [it for it in file_items if it.item_id in keep]
        items.extend(file_items)
    report.n_items = len(items)
    if selected is not None:
        # Ids the file lists that matched no usable record: skipped records are reported under their reason.
        report.selected_missing = sorted(selected - seen_ids)
    if not items:
        raise NoUsableItems(
            f"none of the {report.n_records} records under {root} is usable; skipped by reason: "
            f"{dict(report.skipped)}; examples: {dict(report.examples)}"
        )
    return items, report


class ItemsFileError(DataError):
    """``data.items_file`` cannot be read or lists no item ids."""


def read_item_ids(path: str | Path) -> set[str]:
    """Item ids from a JSONL file with an ``item_id`` per line (a split's test list, a predictions file)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ItemsFileError(f"data.items_file {path} does not exist")
    ids: set[str] = set()
    try:  # strict: the first line that is not a JSON object with a string item_id stops the run
        for lineno, row in iter_jsonl(path):
            if not isinstance(row.get("item_id"), str):
                raise ItemsFileError(f"{path}:{lineno}: no string 'item_id'")
            ids.add(row["item_id"].split("@r")[0])  # rotation ids of circular runs name their item
    except JsonlLineError as e:
        if e.cause is not None:
            raise ItemsFileError(f"{path}:{e.lineno}: not a JSON line ({e.cause})") from e.cause
        raise ItemsFileError(f"{path}:{e.lineno}: no string 'item_id'") from None
    if not ids:
        raise ItemsFileError(f"{path}: lists no item ids")
    return ids


def items_hash(items: list[Item]) -> str:
    """A hash of exactly the questions evaluated: ids, image paths, prompts and gold letters."""
    h = hashlib.sha256()
    for it in sorted(items, key=lambda x: x.item_id):
        h.update(json.dumps([it.item_id, it.image, it.prompt, it.gold], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()
