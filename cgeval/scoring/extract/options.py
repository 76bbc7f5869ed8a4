"""What names an option: the item's option set (letters and texts, with the patterns that find each text in a
reply) and an option letter standing alone."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

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


def _text_pattern(label: str) -> re.Pattern | None:
    lab = " ".join(label.strip().split())
    if not lab:
        return None
    body = r"\s+".join(re.escape(w) for w in lab.split(" "))
    plural = r"(?:e?s)?" if lab[-1].isalpha() else ""
    left = r"(?<![\w-])" if (lab[0].isalnum() or lab[0] == "_") else ""
    # "COVID-19" names the option "COVID"; "B-cell" and "Non-COVID" name no option "B" / "COVID".
    right = r"(?:-\d+)?(?![\w-])" if (lab[-1].isalnum() or lab[-1] == "_") else ""
    return re.compile(left + body + plural + right, re.I)


@lru_cache(maxsize=4096)
def _context(pairs: tuple[tuple[str, str], ...]) -> _Ctx:
    opts = dict(pairs)
    texts = []
    echo = []
    for letter, label in sorted(pairs, key=lambda kv: -len(kv[1].strip())):
        pat = _text_pattern(label)
        if pat is not None:
            texts.append((letter, " ".join(label.strip().lower().split()), pat))
            if len(letter) == 1:
                echo.append((letter, re.compile(
                    r"(?<![A-Za-z0-9])[(\[]?" + re.escape(letter) + r"[*_]*\s*[.:)\]][*_]*[ \t]*" + pat.pattern,
                    re.I)))
    echo.sort(key=lambda kv: kv[0])
    return _Ctx(opts=opts, texts=tuple(texts), echo=tuple(echo))


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
    if nxt == "." and re.match(r"\.[A-Za-z]\.", s[q:q + 3]):
        return None  # e.g., i.e., U.S.
    upper = ch.upper()
    if upper in ("A", "I"):
        m = re.match(r"[ \t]+([A-Za-z\x00][A-Za-z'’\x00-]*)", s[q:])  # \x00: a blanked option text
        if m:
            word = m.group(1).lower()
            allowed = _AFTER_LETTER_A if upper == "A" else _AFTER_LETTER_I
            if word not in allowed:
                # The article ("A cyst is present", "does not show a cyst") or the pronoun ("I think"), also
                # before option A's own text: that is read as text, where negation is checked. A letter
                # followed by its text has punctuation between them ("A. Cyst", "A: cyst", "A) cyst").
                return None
        if ch == "i" and (nxt in ("'", "’") or not re.match(r"[ \t]*(?:[.):\]*]|\n|$)", s[q:])):
            return None  # lower-case "i" is the pronoun unless it stands alone before punctuation
    return upper, q



def _in_range(letter: str, ctx: _Ctx) -> bool:
    return letter in ctx.opts or letter in _OPTION_RANGE

