"""The shared JSON Lines reader and its three callers: strict item lists and predictions, tolerant resume caches."""

from __future__ import annotations

import json

import pytest

from cgeval.analysis.metrics import TruncatedPredictions, _raise_bad_line
from cgeval.data.loader import ItemsFileError, read_item_ids
from cgeval.jsonl import JsonlLineError, ends_with_line_end, iter_jsonl, read_jsonl
from cgeval.store import read_rows

ROWS = [{"item_id": f"S03-{i}", "x": i} for i in range(4)]


def _write(path, text: str | bytes):
    if isinstance(text, str):
        text = text.encode()
    path.write_bytes(text)
    return path


def _lines(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_strict_reads_objects_with_their_line_numbers_and_skips_blank_lines(tmp_path):
    p = _write(tmp_path / "a.jsonl", _lines(ROWS[:2]) + "\n  \r\n" + _lines(ROWS[2:]).replace("\n", "\r\n"))
    got = read_jsonl(p)
    assert got.rows == ROWS and got.linenos == [1, 2, 5, 6] and got.n_bad == 0


@pytest.mark.parametrize("cut, lineno, is_last, reason", [
    (lambda t: t[:-10], 4, True, "json"),                                          # killed mid-row
    (lambda t: t.replace('{"item_id": "S03-1"', '{"item_id" "S03-1"'), 2, False, "json"),
    (lambda t: t + "[1, 2]\n", 5, True, "not_object"),
    (lambda t: t[:-10] + "\n\n", 4, False, "json"),                               # blank line after it
])
def test_strict_names_the_first_bad_line(tmp_path, cut, lineno, is_last, reason):
    p = _write(tmp_path / "a.jsonl", cut(_lines(ROWS)))
    with pytest.raises(JsonlLineError) as e:
        read_jsonl(p)
    assert (e.value.lineno, e.value.is_last, e.value.reason) == (lineno, is_last, reason)
    assert (e.value.cause is not None) == (reason == "json")


def test_tolerant_drops_and_counts_every_unreadable_line(tmp_path):
    text = _lines(ROWS[:2]) + "\n" + "[1]\n" + b"\xff\xfe\n".decode("latin-1") + _lines(ROWS[2:])[:-10]
    p = _write(tmp_path / "a.jsonl", text.encode("latin-1"))
    got = read_jsonl(p, bad_lines="count", skip_blank=False)
    assert got.rows == ROWS[:2] + ROWS[2:3] and got.n_bad == 4  # blank, not an object, not UTF-8, cut short
    assert [r for _, r in iter_jsonl(p, bad_lines="count")].count(None) == 3  # blank lines skipped
    with pytest.raises(UnicodeDecodeError):  # strict: as before, a non-UTF-8 file is not read
        read_jsonl(_write(tmp_path / "b.jsonl", b"\xff\n"))
    with pytest.raises(ValueError, match="bad_lines"):
        read_jsonl(p, bad_lines="skip")


def test_ends_with_line_end(tmp_path):
    assert ends_with_line_end(_write(tmp_path / "a.jsonl", _lines(ROWS)))
    assert not ends_with_line_end(_write(tmp_path / "b.jsonl", _lines(ROWS).rstrip("\n")))


def test_read_rows_stays_tolerant(tmp_path):
    full = _lines(ROWS)
    rows, bad = read_rows(_write(tmp_path / "a.jsonl", full[:-10]))
    assert rows == ROWS[:3] and bad == 1
    rows, bad = read_rows(_write(tmp_path / "b.jsonl", full + "\n"))  # a blank line is not a row: counted
    assert rows == ROWS and bad == 1


def test_read_item_ids_stays_strict(tmp_path):
    assert read_item_ids(_write(tmp_path / "a.jsonl", _lines(ROWS) + "\n")) == {r["item_id"] for r in ROWS}
    with pytest.raises(ItemsFileError, match=r"a\.jsonl:4: not a JSON line \(") as e:
        read_item_ids(_write(tmp_path / "a.jsonl", _lines(ROWS)[:-10]))
    assert isinstance(e.value.__cause__, json.JSONDecodeError)
    with pytest.raises(ItemsFileError, match=r":2: no string 'item_id'"):
        read_item_ids(_write(tmp_path / "a.jsonl", _lines(ROWS[:1]) + "[1]\n" + _lines(ROWS[1:])))
    # line order decides which problem is reported first, as before
    with pytest.raises(ItemsFileError, match=r":1: no string 'item_id'"):
        read_item_ids(_write(tmp_path / "a.jsonl", '{"id": 1}\n' + _lines(ROWS)[:-10]))
    with pytest.raises(ItemsFileError, match="lists no item ids"):
        read_item_ids(_write(tmp_path / "a.jsonl", "\n"))


def test_predictions_bad_line_messages(tmp_path):
    with pytest.raises(TruncatedPredictions, match=r":4: last line is not a JSON row .*truncated or corrupt"):
        _raise_bad_line(_write(tmp_path / "a.jsonl", _lines(ROWS)[:-10]))
    with pytest.raises(TruncatedPredictions, match=r":1: a middle line is not a JSON row"):
        _raise_bad_line(_write(tmp_path / "a.jsonl", '{"a"\n' + _lines(ROWS)))
    with pytest.raises(TruncatedPredictions, match=r":2: not a JSON object$"):
        _raise_bad_line(_write(tmp_path / "a.jsonl", _lines(ROWS[:1]) + "3\n"))
    assert _raise_bad_line(_write(tmp_path / "a.jsonl", _lines(ROWS))) is None  # nothing to name
