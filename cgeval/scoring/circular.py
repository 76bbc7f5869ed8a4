"""Option-order control: circular evaluation and a letter-bias diagnostic.

Circular evaluation asks each item once per rotation of its options (n rotations for n options): rotation
``r`` moves the option text at letter ``i`` to letter ``(i + r) mod n``, the gold letter follows its text, and
the prompt is rebuilt line for line in the item's own style ("A: x" or "A. x"), stem and instruction kept
verbatim. Rotation 0 is the original question. An item counts as correct only when every rotation is.

    rotated = [r for item in items for r in rotations(item)]     # before inference
    ... score every rotated item as usual, one prediction row each ...
    per_item = aggregate_circular(rotation_rows)                  # before metrics

``letter_bias`` compares the distribution of predicted letters with that of the gold letters.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import replace

from ..data.records import Item, parse_question_choice

ROTATION_SEP = "@r"
_ROTATED_ID = re.compile(r"^(?P<base>.+)@r(?P<r>\d+)$")
# The same option-line grammar as cgeval.data.records (a round trip through parse_question_choice checks it).
_OPTION_LINE = re.compile(r"^\s*\(?([A-Z])\s*[:.)]\s*(\S.*?)\s*$")
ON_INCOMPLETE = ("error", "drop")


class CircularError(ValueError):
    """Rows or items that circular evaluation cannot use as they are."""


class IncompleteRotations(CircularError):
    """Some item lacks the prediction row of one or more of its rotations."""


def rotated_id(item_id: str, r: int) -> str:
    return f"{item_id}{ROTATION_SEP}{r}"


def split_rotated_id(item_id: str) -> tuple[str, int]:
    """``"S03-1@r2"`` -> ``("S03-1", 2)``; an id without a rotation suffix is an error."""
    m = _ROTATED_ID.match(str(item_id))
    if not m:
        raise CircularError(f"item id {item_id!r} has no rotation suffix '{ROTATION_SEP}<k>'")
    return m.group("base"), int(m.group("r"))


def base_item_id(item_id: str) -> str:
    """The original item's id: ``"S03-1@r2"`` -> ``"S03-1"``; an id without a suffix is returned as is."""
    m = _ROTATED_ID.match(str(item_id))
    return m.group("base") if m else str(item_id)


def _option_block(lines: list[str]) -> list[tuple[int, re.Match]]:
    """Line index and match of each option line: the first run of consecutive lines lettered A, B, C, ..."""
    block: list[tuple[int, re.Match]] = []
    for i, line in enumerate(lines):
        m = _OPTION_LINE.match(line.rstrip("\r\n"))
        expected = string.ascii_uppercase[len(block)] if len(block) < 26 else None
        if m and m.group(1) == expected and (not block or i == block[-1][0] + 1):
            block.append((i, m))
        elif block:
            break
    return block


def rotate_prompt(prompt: str, options: tuple[tuple[str, str], ...], r: int) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The prompt with its option texts rotated by ``r``, each line otherwise as it was; and the new options."""
    n = len(options)
    texts = [t for _, t in options]
    new_options = tuple((letter, texts[(i - r) % n]) for i, (letter, _) in enumerate(options))
    lines = prompt.splitlines(keepends=True)
    block = _option_block(lines)
    found = tuple((m.group(1), m.group(2)) for _, m in block)
    if found != tuple(options):
        raise CircularError(f"the prompt's option lines {found} are not the item's options {tuple(options)}")
    for (i, m), (_, text) in zip(block, new_options):
        line = lines[i]
        lines[i] = line[: m.start(2)] + text + line[m.end(2):]
    return "".join(lines), new_options


def rotations(item: Item) -> list[Item]:
    """The item asked with its options in each of its n rotations; rotation 0 is the original question.

    Ids get the suffix ``@r<k>``; ``meta`` records ``rotation``, ``n_rotations``, ``base_item_id`` and
    ``base_gold``. Raises ``CircularError`` when the prompt's option lines are not the item's options.
    """
    n = item.n_options
    letters = item.letters
    if n < 2 or list(letters) != list(string.ascii_uppercase[:n]):
        raise CircularError(f"{item.item_id}: options must be lettered A, B, ... in order, got {letters}")
    stem, _, instruction = parse_question_choice(item.prompt)
    g = letters.index(item.gold)
    out = []
    for r in range(n):
        try:
            prompt, new_options = rotate_prompt(item.prompt, item.options, r)
        except CircularError as e:
            raise CircularError(f"{item.item_id}: {e}") from None
        gold = letters[(g + r) % n]
        assert dict(new_options)[gold] == dict(item.options)[item.gold]  # the gold letter follows its text
        check = parse_question_choice(prompt)
        if check != (stem, new_options, instruction):  # the rebuilt prompt reads back as the rotated item
            raise CircularError(f"{item.item_id}: rotation {r} does not parse back to its options")
        out.append(replace(
            item,
            item_id=rotated_id(item.item_id, r),
            prompt=prompt,
            options=new_options,
            gold=gold,
            meta={**item.meta, "rotation": r, "n_rotations": n, "base_item_id": item.item_id,
                  "base_gold": item.gold},
        ))
    return out


def expand_rotations(items: Iterable[Item]) -> list[Item]:
    """Every rotation of every item, item by item."""
    return [rot for item in items for rot in rotations(item)]


def _index(letter: object) -> int | None:
    if isinstance(letter, str) and len(letter) == 1 and "A" <= letter <= "Z":
        return ord(letter) - ord("A")
    return None


def _to_original(letter: object, r: int, n: int) -> str | None:
    """A letter of rotation ``r`` as the letter of the same option text in the original order."""
    i = _index(letter)
    if i is None or i >= n:
        return None
    return string.ascii_uppercase[(i - r) % n]


def _rows(rows) -> list[dict]:
    if hasattr(rows, "to_dict") and not isinstance(rows, Mapping):
        return rows.to_dict("records")  # a pandas DataFrame
    return list(rows)


def aggregate_circular(rows, on_incomplete: str = "error") -> list[dict]:
    """One row per original item from the per-rotation prediction rows.

    ``correct`` is True only when every rotation is correct. Each row keeps the fields of its rotation-0
    row (so ``pred`` and ``response`` are the answer to the original question) and adds ``n_rotations``,
    ``n_rotations_correct``, ``preds_original`` (each rotation's answer as a letter of the original order,
    None where unparsed), ``n_parse_failures``, ``consistency`` (share of rotations giving the most common
    answer) and ``consistent``. An item missing rotation rows raises ``IncompleteRotations``, or with
    ``on_incomplete="drop"`` is left out.
    """
    if on_incomplete not in ON_INCOMPLETE:
        raise ValueError(f"on_incomplete must be one of {ON_INCOMPLETE}, got {on_incomplete!r}")
    groups: dict[str, dict[int, dict]] = {}
    for row in _rows(rows):
        base, r = split_rotated_id(row["item_id"])
        if "rotation" in row and row["rotation"] is not None and int(row["rotation"]) != r:
            raise CircularError(f"{row['item_id']}: rotation field {row['rotation']} disagrees with the id")
        group = groups.setdefault(base, {})
        if r in group:
            raise CircularError(f"{row['item_id']} appears twice")
        group[r] = row

    out: list[dict] = []
    incomplete: list[str] = []
    for base, group in groups.items():
        n = int(group[min(group)]["n_options"])
        if any(int(row["n_options"]) != n for row in group.values()):
            raise CircularError(f"{base}: rotations disagree on the number of options")
        if n > len(string.ascii_uppercase):
            raise CircularError(f"{base}: {n} options, more than the letters A to Z")
        if any(r >= n for r in group):
            raise CircularError(f"{base}: rotation {max(group)} for an item with {n} options")
        if len(group) < n:
            incomplete.append(f"{base} (has rotations {sorted(group)} of {n})")
            continue
        golds = {_to_original(group[r]["gold"], r, n) for r in range(n)}
        if len(golds) != 1 or None in golds:
            raise CircularError(f"{base}: the rotations' gold letters do not follow one option text ({golds})")
        answers = [_to_original(group[r].get("pred"), r, n) for r in range(n)]
        corrects = [bool(group[r]["correct"]) for r in range(n)]
        parsed = [a for a in answers if a is not None]
        modal = Counter(parsed).most_common(1)[0][1] if parsed else 0
        agg = {k: v for k, v in group[0].items() if k not in ("cache_key", "rotation")}
        agg.update(
            item_id=base,
            gold=golds.pop(),
            correct=all(corrects),
            parse_rule="circular",
            circular=True,
            n_rotations=n,
            n_rotations_correct=sum(corrects),
            preds_original=answers,
            n_parse_failures=sum(a is None for a in answers),
            consistency=modal / n,
            consistent=modal == n,
        )
        out.append(agg)
    if incomplete and on_incomplete == "error":
        raise IncompleteRotations(
            f"{len(incomplete)} items lack rotation rows, e.g. {incomplete[:5]}; re-run to fill them, "
            "or aggregate with on_incomplete='drop' to leave these items out"
        )
    return out


def letter_bias(rows, by: str | None = None) -> dict:
    """Distribution of predicted letters vs gold letters, with a chi-square goodness-of-fit test.

    Counts and proportions are over the rows with a parsed prediction (``n``); rows without one are counted
    in ``n_parse_failures``. The test (``scipy.stats.chisquare``) asks whether the predicted letters follow
    the gold letters' distribution; it is reported as None, with ``test_note`` saying why, when it cannot be
    computed (fewer than two letters, or a predicted letter that is never gold). ``accuracy_by_gold`` is the
    accuracy on the items whose gold is each letter. With ``by`` (a row field such as ``n_options``), the
    same for each value of that field under ``groups``.
    """
    from scipy import stats

    data = _rows(rows)
    if by is not None:
        values = sorted({row.get(by) for row in data}, key=lambda v: (v is None, str(v)))
        return {"by": by, "groups": {v: letter_bias([r for r in data if r.get(by) == v]) for v in values},
                "all": letter_bias(data)}
    parsed = [r for r in data if isinstance(r.get("pred"), str) and r.get("pred")]
    pred_counts = Counter(r["pred"] for r in parsed)
    gold_counts = Counter(r["gold"] for r in parsed)
    letters = sorted(set(pred_counts) | set(gold_counts))
    n = len(parsed)
    result = {
        "n": n,
        "n_rows": len(data),
        "n_parse_failures": len(data) - n,
        "letters": letters,
        "pred_counts": {l: pred_counts.get(l, 0) for l in letters},
        "gold_counts": {l: gold_counts.get(l, 0) for l in letters},
        "pred_proportions": {l: (pred_counts.get(l, 0) / n if n else None) for l in letters},
        "gold_proportions": {l: (gold_counts.get(l, 0) / n if n else None) for l in letters},
        "pred_minus_gold": {l: ((pred_counts.get(l, 0) - gold_counts.get(l, 0)) / n if n else None)
                            for l in letters},
        "accuracy_by_gold": {},
        "chi2": None,
        "dof": None,
        "p_value": None,
        "min_expected": None,
        "test_note": None,
    }
    for l in letters:
        on_l = [r for r in data if r.get("gold") == l]
        result["accuracy_by_gold"][l] = (sum(bool(r.get("correct")) for r in on_l) / len(on_l)) if on_l else None
    test_letters = [l for l in letters if gold_counts.get(l, 0) > 0]
    never_gold = [l for l in letters if gold_counts.get(l, 0) == 0 and pred_counts.get(l, 0) > 0]
    if n == 0:
        result["test_note"] = "no parsed predictions"
    elif never_gold:
        result["test_note"] = f"predicted letters {never_gold} are never gold: the goodness-of-fit test is undefined"
    elif len(test_letters) < 2:
        result["test_note"] = "fewer than two gold letters: nothing to test"
    else:
        observed = [pred_counts.get(l, 0) for l in test_letters]
        expected = [gold_counts[l] for l in test_letters]  # proportions x n, with the same total n
        res = stats.chisquare(observed, f_exp=expected)
        result.update(chi2=float(res.statistic), p_value=float(res.pvalue), dof=len(test_letters) - 1,
                      min_expected=float(min(expected)))
        if min(expected) < 5:
            result["test_note"] = "some expected counts are below 5: the chi-square approximation is rough"
    return result
