"""One reader for the JSON Lines files cgeval reads: predictions, resume caches, item lists.

A line is one JSON object, ended by ``\\n`` (a ``\\r\\n`` ending is fine: ``\\r`` is JSON whitespace). Two modes:

* ``bad_lines="raise"`` (strict, the default): the first line that is not a JSON object raises
  :class:`JsonlLineError`, which says where (line number, and whether it is the file's last line) and why.
  Blank lines are skipped unless ``skip_blank=False``. A line that is not UTF-8 raises ``UnicodeDecodeError``.
* ``bad_lines="count"`` (tolerant): for a file that a killed run may have cut off mid-row. Every line that
  cannot be read as a JSON object (cut short, not UTF-8, not an object) is dropped and counted in
  :attr:`JsonlRows.n_bad`; the caller decides what a non-zero count means.

Callers turn :class:`JsonlLineError` into their own named errors.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

BadLines = Literal["raise", "count"]


class JsonlLineError(ValueError):
    """A line of a JSON Lines file that is not a JSON object (strict mode)."""

    def __init__(self, path: Path, lineno: int, is_last: bool, reason: str,
                 cause: json.JSONDecodeError | None = None):
        self.path = path
        self.lineno = lineno
        self.is_last = is_last
        self.reason = reason  # "json": not JSON (``cause`` says why); "not_object": JSON, but not an object
        self.cause = cause
        what = f"not JSON ({cause})" if cause is not None else "not a JSON object"
        super().__init__(f"{path}:{lineno}: {'last' if is_last else 'a middle'} line is {what}")


@dataclass
class JsonlRows:
    """The objects of a JSON Lines file, the line number of each, and how many lines were dropped."""

    rows: list[dict] = field(default_factory=list)
    linenos: list[int] = field(default_factory=list)
    n_bad: int = 0


def iter_jsonl(path: str | Path, *, bad_lines: BadLines = "raise",
               skip_blank: bool = True) -> Iterator[tuple[int, dict | None]]:
    """``(line number, object)`` for each line of ``path``, in file order, so a caller that checks the rows
    stops at the first offending line. With ``bad_lines="count"`` an unreadable line yields ``(lineno, None)``."""
    if bad_lines not in ("raise", "count"):
        raise ValueError(f"bad_lines must be 'raise' or 'count', got {bad_lines!r}")
    path = Path(path)
    tolerant = bad_lines == "count"
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                text = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")  # a leading byte-order mark is accepted
            except UnicodeDecodeError:
                if tolerant:
                    yield lineno, None
                    continue
                raise
            if skip_blank and not text.strip():
                continue
            try:
                row = json.loads(text)
            except json.JSONDecodeError as e:
                if tolerant:
                    yield lineno, None
                    continue
                raise JsonlLineError(path, lineno, _at_end(f), "json", e) from e
            if not isinstance(row, dict):
                if tolerant:
                    yield lineno, None
                    continue
                raise JsonlLineError(path, lineno, _at_end(f), "not_object")
            yield lineno, row


def read_jsonl(path: str | Path, *, bad_lines: BadLines = "raise", skip_blank: bool = True) -> JsonlRows:
    """Every JSON object of ``path`` (see the module docstring for the two modes)."""
    out = JsonlRows()
    for lineno, row in iter_jsonl(path, bad_lines=bad_lines, skip_blank=skip_blank):
        if row is None:
            out.n_bad += 1
        else:
            out.rows.append(row)
            out.linenos.append(lineno)
    return out


def _at_end(f) -> bool:
    """Whether the line just read was the file's last one."""
    return f.read(1) == b""


def ends_with_line_end(path: str | Path) -> bool:
    """Whether a non-empty file's last byte is ``\\n`` (every row written whole ends with one)."""
    with Path(path).open("rb") as f:
        f.seek(-1, 2)
        return f.read(1) == b"\n"


__all__ = ["JsonlLineError", "JsonlRows", "ends_with_line_end", "iter_jsonl", "read_jsonl"]
