"""Read the option letter a reply commits to, or None when it commits to no single option.

The rules run from most to least explicit; the first rule that finds an answer decides, and its name is
returned so that predictions record *why* a letter was taken. A reply that names several options, names a
letter outside the item's options, or names none, gives None: a parse failure, counted on its own and
never forced onto an option.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

Options = Mapping[str, str] | Sequence[tuple[str, str]]

_THINK = re.compile(r"<think>.*?(</think>|$)", re.S | re.I)
_SPECIAL = re.compile(
    r"<\|[^|>]{1,40}\|>|</s>|<s>|<eos>|<end_of_turn>|<start_of_turn>|\[/?INST\]|<\|?endoftext\|?>", re.I
)
_MARKUP = " \t\r\n*_`'\"“”‘’[](){}<>.,:;!?|#~-=\\/"
# Explicit answer markers; the letter they introduce is captured in group "x".
_L = r"[\s*_`'\"(\[{<]*(?P<x>[A-Za-z])(?![A-Za-z])"
_MARKERS = [
    ("boxed", re.compile(r"\\boxed\{\s*(?:\\text\{)?\s*(?P<x>[A-Za-z])\s*\}", re.I)),
    ("answer_tag", re.compile(r"<answer>\s*(?P<x>[^<]{1,200}?)\s*</answer>", re.I | re.S)),
    (
        "answer_phrase",
        re.compile(
            r"(?:final\s+answer|correct\s+(?:answer|option|choice)|the\s+answer|answer|option|choice)"
            r"\s*(?:is|would\s+be|should\s+be|:|：|=)\s*(?:option\s*|choice\s*)?" + _L,
            re.I,
        ),
    ),
    ("chinese_phrase", re.compile(r"(?:答案|正确答案|选项)\s*(?:是|为|：|:)?\s*(?P<x>[A-Za-z])(?![A-Za-z])")),
    ("chinese_choose", re.compile(r"选\s*(?:择)?\s*(?P<x>[A-Za-z])(?![A-Za-z])")),
]
_LEADING = re.compile(r"^[\s*_`'\"]*[(\[]?\s*(?P<x>[A-Za-z])\s*(?:[.:)\]]|\s*$)")


def _normalise_options(options: Options) -> dict[str, str]:
    pairs = options.items() if isinstance(options, Mapping) else options
    return {str(k).upper(): str(v) for k, v in pairs}


def _clean(text: str) -> str:
    text = _THINK.sub(" ", text)
    return _SPECIAL.sub(" ", text).strip()


def _from_json(text: str) -> str | None:
    s = text.strip()
    if s.startswith("```"):
        s = s.strip("`").removeprefix("json").strip()
    if not s.startswith("{"):
        return None
    try:
        data = json.loads(s)
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    for key in ("answer", "Answer", "choice", "option", "final_answer", "prediction"):
        if isinstance(data.get(key), str):
            return data[key]
    return None


def _bare_letter(text: str) -> str | None:
    core = text.strip(_MARKUP)
    return core.upper() if len(core) == 1 and core.isalpha() else None


def _text_matches(text: str, opts: dict[str, str]) -> set[str]:
    """Letters whose option text appears in the reply; longer option texts claim their span first."""
    found: set[str] = set()
    low = text.lower()
    for letter, label in sorted(opts.items(), key=lambda kv: -len(kv[1])):
        lab = label.strip().lower()
        if not lab:
            continue
        pattern = re.compile(r"(?<![\w])" + re.escape(lab) + r"(?![\w])")
        if pattern.search(low):
            found.add(letter)
            low = pattern.sub(" \x00 ", low)
    return found


def _standalone_letters(text: str, letters: set[str]) -> set[str]:
    """Upper-case letters standing alone as words, excluding the article 'A' before a lower-case word."""
    found = set()
    for m in re.finditer(r"(?<![A-Za-z0-9'])([A-Z])(?![A-Za-z0-9'])", text):
        letter = m.group(1)
        rest = text[m.end() :]
        if letter == "A" and re.match(r"\s+[a-z]", rest):
            continue  # "A cyst is present": the article, not option A
        if letter == "I" and re.match(r"\s+[a-z']", rest) or rest.startswith("'"):
            continue
        found.add(letter)
    return found & letters if letters else found


def _resolve(fragment: str, opts: dict[str, str]) -> tuple[str | None, bool]:
    """Resolve a marker's captured fragment: (letter or None, decided)."""
    letter = _bare_letter(fragment)
    if letter is not None:
        return (letter if letter in opts else None), True
    m = _LEADING.match(fragment)
    if m:
        letter = m.group("x").upper()
        return (letter if letter in opts else None), True
    by_text = _text_matches(fragment, opts)
    if len(by_text) == 1:
        return by_text.pop(), True
    return None, False


def extract_choice_with_rule(text: str | None, options: Options) -> tuple[str | None, str]:
    """(letter or None, name of the rule that decided)."""
    opts = _normalise_options(options)
    if not text or not text.strip():
        return None, "empty"
    text = _clean(text)
    if not text:
        return None, "empty"

    fragment = _from_json(text)
    if fragment is not None:
        letter, decided = _resolve(fragment, opts)
        return letter, "json" if decided else "json_unresolved"

    letter = _bare_letter(text)
    if letter is not None:
        return (letter if letter in opts else None), ("bare_letter" if letter in opts else "letter_not_an_option")

    for name, pattern in _MARKERS:
        hits = list(pattern.finditer(text))
        if not hits:
            continue
        # Reasoning may mention options before committing: the last explicit marker wins.
        frag = hits[-1].group("x")
        letter, decided = _resolve(frag, opts)
        if decided:
            return letter, name if letter else "letter_not_an_option"

    m = _LEADING.match(text)
    if m and not re.match(r"^\s*A\s+[a-z]", text) and not re.match(r"^\s*I\s+[a-z']", text):
        letter = m.group("x").upper()
        if letter in opts:
            return letter, "leading_letter"
        return None, "letter_not_an_option"

    by_text = _text_matches(text, opts)
    letters = _standalone_letters(text, set(opts))
    if len(by_text) == 1 and (not letters or letters == by_text):
        return by_text.pop(), "option_text"
    if len(by_text) > 1:
        return None, "several_options"
    if len(letters) == 1 and not by_text:
        return letters.pop(), "standalone_letter"
    if len(letters) > 1:
        return None, "several_options"
    return None, "no_answer"


def extract_choice(text: str | None, options: Options) -> str | None:
    """The option letter the reply commits to, or None (refusal, hedge, several letters, not an option)."""
    return extract_choice_with_rule(text, options)[0]
