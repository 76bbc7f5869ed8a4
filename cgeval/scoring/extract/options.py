"""What names an option: the item's option set (letters and texts, with the patterns that find each text in a
reply) and an option letter standing alone."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .vocabulary import SPELLING, SYNONYM_GROUPS, numeral_forms, numeral_value

Options = Mapping[str, str] | Sequence[tuple[str, str]]
# Letters that look like option letters even when this item has fewer options (abstain rather than ignore).
_OPTION_RANGE = frozenset("ABCDEFGH")

# ------------------------------------------------------------------------------------------ vocabulary
# Words after "A"/"a" that make it a letter rather than the article ("A is correct", "A because ...").
_AFTER_LETTER_A = frozenset({
    "is", "was", "are", "would", "should", "could", "might", "must", "will", "seems", "appears", "looks",
    "matches", "fits", "corresponds", "represents", "indicates", "reflects", "because", "since", "as", "and",
    "or", "but", "which", "that", "with", "for", "from", "here", "then", "so", "given", "due", "while",
    "whereas", "than", "vs", "versus", "describes", "shows", "best",
})
# Words after "I" that make it a letter rather than the pronoun ("I is correct").
_AFTER_LETTER_I = frozenset({"is", "was", "seems", "appears", "matches", "fits", "corresponds"})


# ------------------------------------------------------------------------------------------- per-option
@dataclass(frozen=True)
class _Ctx:
    opts: dict  # letter -> text
    # (letter, lowered text, compiled pattern) longest text first
    texts: tuple
    echo: tuple  # (letter, compiled "L. text" pattern)
    numeral_end: frozenset = frozenset()  # letters whose text ends in a numeral ("Grade II")
    yes: str | None = None  # the letters of a yes / no item
    no: str | None = None


def _group_of(words: tuple[str, ...]) -> int | None:
    return _GROUP_BY_WORDS.get(words)


_GROUP_BY_WORDS = {tuple(name.lower().split()): i for i, group in enumerate(SYNONYM_GROUPS) for name in group}
_GROUP_MAX_WORDS = max(len(k) for k in _GROUP_BY_WORDS)
_SPELL = re.compile("|".join(sorted({a for pair in SPELLING for a in pair}, key=len, reverse=True)))
_AMERICAN = {brit: amer for brit, amer in SPELLING} | {amer: amer for _, amer in SPELLING}
_BRITISH = {amer: brit for brit, amer in SPELLING}


def _word_regex(word: str) -> str:
    """A word of an option's text, either spelling ("tumou?r") accepted."""
    if len(word) < 4:
        return re.escape(word)
    out, last = [], 0
    for m in _SPELL.finditer(word.lower()):
        amer = _AMERICAN[m.group(0)]
        out.append(re.escape(word[last:m.start()]) + f"(?:{amer}|{_BRITISH[amer]})")
        last = m.end()
    return "".join(out) + re.escape(word[last:])


def _name_regex(name: str) -> str:
    """One name of a synonym group: an abbreviation in capitals matches in capitals only."""
    if name.isupper() and name.isascii():
        return f"(?-i:{re.escape(name)})"
    return r"\s+".join(_word_regex(w) for w in name.split())


def _text_pattern(label: str, skip_groups: frozenset = frozenset()) -> re.Pattern | None:
    """The pattern that finds an option's text in a reply: whole words, a plural, other spellings, the other
    names of a run of its words (``SYNONYM_GROUPS``), the other forms of a numeral after its first word."""
    lab = " ".join(label.strip().split())
    if not lab:
        return None
    words = lab.split(" ")
    low = tuple(w.lower() for w in words)
    parts: list[str] = []
    i = 0
    ends_in_numeral = False
    while i < len(words):
        for j in range(min(len(words), i + _GROUP_MAX_WORDS), i, -1):
            g = _group_of(low[i:j])
            if g is not None and g not in skip_groups:
                own = " ".join(low[i:j])  # the option's own words match in any case, as without synonyms
                names = sorted(SYNONYM_GROUPS[g], key=len, reverse=True)
                parts.append("(?:" + "|".join(r"\s+".join(_word_regex(w) for w in n.split()) if n.lower() == own
                                              else _name_regex(n) for n in names) + ")")
                i = j
                ends_in_numeral = False
                break
        else:
            n = numeral_value(words[i]) if i > 0 else None
            if n is not None:
                parts.append("(?:" + "|".join(numeral_forms(n)) + ")")
            else:
                parts.append(_word_regex(words[i]))
            ends_in_numeral = n is not None
            i += 1
    body = r"\s+".join(parts)
    left = r"(?<![\w-])" if (lab[0].isalnum() or lab[0] == "_") else ""
    if ends_in_numeral:  # "Grade 2" is not "grade 2.5", "grade 2-3" or "grade 20"
        return re.compile(left + body + r"(?![\w-])(?![.,]\d)", re.I)
    plural = r"(?:e?s)?" if lab[-1].isalpha() else ""
    # "COVID-19" names the option "COVID"; "B-cell" and "Non-COVID" name no option "B" / "COVID".
    right = r"(?:-\d+)?(?![\w-])" if (lab[-1].isalnum() or lab[-1] == "_") else ""
    return re.compile(left + body + plural + right, re.I)


def _ends_in_numeral(label: str) -> bool:
    words = label.split()
    return len(words) > 1 and numeral_value(words[-1]) is not None


@lru_cache(maxsize=4096)
def _context(pairs: tuple[tuple[str, str], ...]) -> _Ctx:
    opts = dict(pairs)
    # A synonym group that two options' whole texts belong to ("Normal", "No finding") does not tell them apart.
    seen: dict[int, int] = {}
    for _, label in pairs:
        g = _group_of(tuple(label.lower().split()))
        if g is not None:
            seen[g] = seen.get(g, 0) + 1
    shared = frozenset(g for g, count in seen.items() if count > 1)
    texts = []
    echo = []
    for letter, label in sorted(pairs, key=lambda kv: -len(kv[1].strip())):
        pat = _text_pattern(label, shared)
        if pat is not None:
            texts.append((letter, " ".join(label.strip().lower().split()), pat))
            if len(letter) == 1:
                echo.append((letter, re.compile(
                    r"(?<![A-Za-z0-9])[(\[]?" + re.escape(letter) + r"[*_]*\s*[.:)\]][*_]*[ \t]*" + pat.pattern,
                    re.I)))
    echo.sort(key=lambda kv: kv[0])
    by_text = {" ".join(label.lower().split()): letter for letter, label in pairs}
    yes, no = by_text.get("yes"), by_text.get("no")
    return _Ctx(opts=opts, texts=tuple(texts), echo=tuple(echo),
                numeral_end=frozenset(letter for letter, label in pairs if _ends_in_numeral(label)),
                yes=yes if yes and no else None, no=no if yes and no else None)


def _normalise_options(options: Options | None) -> tuple[tuple[str, str], ...]:
    if options is None:
        return ()
    if isinstance(options, Mapping):
        pairs = list(options.items())
    else:
        pairs = []
        for i, entry in enumerate(options):
            if isinstance(entry, (tuple, list)) and len(entry) == 2:
                pairs.append((entry[0], entry[1]))
            else:  # a bare list of option texts: lettered A, B, C, ...
                pairs.append((chr(ord("A") + i) if i < 26 else str(i), entry))
    out: dict[str, str] = {}
    for k, v in pairs:
        key = str(k).strip().upper()
        if key and key not in out:
            out[key] = "" if v is None else str(v)
    return tuple(out.items())



def _is_ascii_alnum(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z") or ("0" <= ch <= "9")


def _starts_with_text(s: str, pos: int, ctx: _Ctx, letter: str | None = None) -> str | None:
    """The letter whose option text starts at ``pos`` (longest first); with ``letter``, only that one."""
    for let, _, pat in ctx.texts:
        if letter is not None and let != letter:
            continue
        if pat.match(s, pos):
            return let
    return None


_ABBREVIATION = re.compile(r"\.[A-Za-z]\.")  # e.g., i.e., U.S.
_NEXT_WORD = re.compile(r"[ \t]+([A-Za-z\x00][A-Za-z'’\x00-]*)")
_I_ALONE = re.compile(r"[ \t]*(?:[.):\]*]|\n|$)")


def _letter_token(s: str, p: int, ctx: _Ctx) -> tuple[str, int] | None:
    """An option letter standing alone at ``p``: (upper-case letter, end), or None (not a letter here)."""
    if p >= len(s):
        return None
    ch = s[p]
    if not ("A" <= ch <= "Z" or "a" <= ch <= "z"):
        return None
    if p > 0:
        prev = s[p - 1]
        if _is_ascii_alnum(prev):
            return None
        if prev in "'’" and p >= 2 and _is_ascii_alnum(s[p - 2]):
            return None  # it's, don't
        if prev == "-" and p >= 2 and _is_ascii_alnum(s[p - 2]):
            return None  # non-B
    q = p + 1
    nxt = s[q] if q < len(s) else ""
    if nxt and _is_ascii_alnum(nxt):
        return None
    if nxt in ("-", "'", "’") and q + 1 < len(s) and _is_ascii_alnum(s[q + 1]):
        return None  # B-cell, I'm, B's
    if nxt == "." and _ABBREVIATION.match(s, q):
        return None  # e.g., i.e., U.S.
    upper = ch.upper()
    if upper in ("A", "I"):
        m = _NEXT_WORD.match(s, q)  # \x00: a blanked option text
        if m:
            word = m.group(1).lower()
            allowed = _AFTER_LETTER_A if upper == "A" else _AFTER_LETTER_I
            if word not in allowed:
                # The article ("A cyst is present", "does not show a cyst") or the pronoun ("I think"), also
                # before option A's own text: that is read as text, where negation is checked. A letter
                # followed by its text has punctuation between them ("A. Cyst", "A: cyst", "A) cyst").
                return None
        if ch == "i" and (nxt in ("'", "’") or not _I_ALONE.match(s, q)):
            return None  # lower-case "i" is the pronoun unless it stands alone before punctuation
    return upper, q



def _in_range(letter: str, ctx: _Ctx) -> bool:
    return letter in ctx.opts or letter in _OPTION_RANGE

