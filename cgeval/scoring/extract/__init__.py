"""Read the option letter a reply commits to, or None when it commits to no single option.

``extract_choice_with_rule(text, options, mode)`` returns ``(letter or None, rule)``: the letter a careful
human grader would take, and the name of the rule that decided (recorded in every prediction row, so that
*why* a letter was taken, or why none was, can be audited and counted).

The rules live by tier: ``clean.py`` (clean-up), ``options.py`` and ``vocabulary.py`` (what names an option: its
letter, its text and that text's other names), ``option_text.py`` (option texts named in a reply, negated or
only offered as a possibility), ``explicit.py`` (explicit answer forms), ``reasoning.py`` (per-option verdicts,
self-corrections, elimination, cut-off reasoning). This module reads a reply through them, in order; the first
step that decides wins:

1. Cleaning (``clean``): ``<think>…</think>`` blocks (and a reasoning part closed by a stray ``</think>``) are
   dropped; chat-template tokens are removed and the reply is cut at the first end-of-turn token (``</s>``,
   ``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``, ...); an ``ASSISTANT:`` prefix is dropped.
2. The whole reply is one letter inside any markup: ``B``, ``(b)``, ``**B**``, ``[B]``, ``'B.'``.
3. JSON: ``{"answer": "B"}`` (also fenced, also embedded); the value is read by these same rules.
4. The whole reply is one option's text, or another name of it: ``Cyst``, ``no tumor``, ``CNV`` for
   "Choroidal neovascularization", ``grade 2`` for "Grade II", ``是`` for "Yes".
5. A yes / no item answered at the start: "Yes, definitely.", "Nope", "Absolutely not", "是的，…", "没有。"
   (``yes_no``).
6. Per-option verdicts: lines or table rows that each open with an option and mark it (yes / no, correct /
   incorrect, likely / unlikely, ✓ / ✗; two options at least): the one option marked as the pick
   (``option_verdicts``); none marked (``verdicts_none``) or several (``verdicts_several``) abstain. An explicit
   answer after the list still decides.
7. An echo of the option list (``A. x`` / ``B: y`` lines in order) is cut out; what is left is read on.
8. Explicit answers, by tier; within a tier the *last* decided one wins, so that reasoning which mentions
   other options before committing is read as the commitment:
   tier 1 ``\\boxed{B}``, ``<answer>B</answer>``, "Final answer: B";
   tier 2 "Answer: B", "The (correct) answer is B", "答案是B", "最可能是B", "选B", "B is correct", "选项B正确",
   "I would choose B", "That leaves B" / "By elimination, B" (``elimination``);
   tier 3 "it's B", "this is a cyst", "most likely B", "consistent with glioma", "Therefore, B".
   The thing after a marker is a letter (``B``, ``(B)``, ``option B``, ``B. Cyst``) or, after an explicit
   separator, an option's text. A letter directly followed by another option's text ("B. Normal" where B
   is Cyst) is a conflict; "B or C", "B/C", "B and C" is a hedge; both abstain.
9. A reply that starts with a letter: "B. Cyst", "B) ...", "B because ...", "**B**\\n\\nExplanation".
10. Refusals ("I'm sorry", "cannot be determined", "none of the options", "不确定", ...) abstain.
11. Weak evidence: option texts named in the reply (case-insensitive, whole words, longest first so that
    "No hemorrhage" is not also read as "Hemorrhage"; standard abbreviations and expansions, British and
    American spellings, Roman and Arabic numerals count; negated mentions such as "no evidence of COVID",
    "no pneumothorax, effusion or cardiomegaly", "tumor is ruled out" or "不是A" do not count, nor background
    ones such as "otherwise normal", "normal in size") together with capital letters standing alone (not the
    article in "A cyst is present", not the pronoun in "I think"). A finding offered only as a possibility
    ("a tumor cannot be ruled out", "raises the possibility of TB", "grade 1 or 2") abstains
    (``hedged_mention``). Exactly one option -> that option; more -> abstain.
12. A lower-case letter standing alone at the very end ("hmm... b").
13. ``lenient`` only: fuzzy matching of option texts (difflib), and the answer inside a ``<think>`` block
    when nothing follows it.

Then, over the whole reply: a pick revised later ("B... wait, actually C", "The answer is B. Wait, no - it's
C", "答案是B。不对，…") is read from after the last revision that decides explicitly (``self_correction`` when
that changes the pick); reasoning cut off mid-sentence before any explicit pick ("Let's analyze each option.
A. Normal: unlikely. B. Cyst: the lesion is anechoic with") abstains (``unfinished_reasoning``).

A letter that is not among the item's options abstains (``letter_not_an_option``); nothing is ever forced
onto an option. The function is pure; patterns that depend on the options are cached per option set.
"""

from __future__ import annotations

import re

from .clean import _HTML_TAG, _MARKUP, _bare_letter, _clean
from .explicit import (_ANSWER_TAG, _BOXED, _FINAL, _LEADING, _LETTER_IS_CORRECT, _REFUSAL, _TEX_COMMAND, _TIER2,
                       _TIER3, _TRAILING_LOWER, _UNSURE, _UPPER_STANDALONE, _answer_line, _balanced, _conflict, _from_json,
                       _hedge_after, _remove_echo, _resolve_at, _tier, yes_no, _CHINESE_CORRECT)
from .option_text import _fuzzy, _negated_after, _negated_before, _scan_texts
from .options import _OPTION_RANGE, Options, _context, _Ctx, _in_range, _letter_token, _normalise_options
from .reasoning import ELIMINATION, corrections, cut_off, may_eliminate, option_verdicts

__all__ = ["extract_choice", "extract_choice_with_rule", "LETTER_RULES", "ABSTAIN_RULES", "RULES", "MODES", "Options"]

MODES = ("strict", "lenient")

# Rules that give a letter.
LETTER_RULES = frozenset({
    "bare_letter", "json", "option_text_exact", "boxed", "answer_tag", "final_answer", "answer_phrase",
    "chinese_phrase", "chinese_choose", "letter_is_correct", "choose_phrase", "commit_phrase", "conclusion",
    "leading_letter", "option_text", "standalone_letter", "letter_and_text", "trailing_letter",
    "fuzzy_text", "think_only", "option_verdicts", "self_correction", "yes_no", "elimination",
})
# Rules that give None: the reply commits to no single option of this item.
ABSTAIN_RULES = frozenset({
    "empty", "no_answer", "unfinished_thinking", "option_echo", "refusal", "hedge", "several_options",
    "conflict", "letter_not_an_option", "hedged_mention", "verdicts_none", "verdicts_several", "unfinished_reasoning",
})
RULES = LETTER_RULES | ABSTAIN_RULES
# Internal outcomes meaning "nothing found here": an enclosing rule may go on looking elsewhere.
_UNDECIDED = frozenset({"empty", "no_answer", "unfinished_thinking", "option_echo"})

# What a later part of the reply must be read by to override an earlier pick (a self-correction, or what follows
# a list of per-option verdicts): an explicit answer or a hedge, not a finding named in passing.
_DECISIVE = frozenset({
    "bare_letter", "json", "boxed", "answer_tag", "final_answer", "answer_phrase", "chinese_phrase",
    "chinese_choose", "letter_is_correct", "choose_phrase", "commit_phrase", "conclusion", "leading_letter",
    "option_verdicts", "yes_no", "elimination", "option_text_exact", "self_correction",
    "hedge", "conflict", "refusal", "letter_not_an_option", "verdicts_none", "verdicts_several",
})
# Readings that a reasoning cut off mid-sentence does not support: a pick in passing, or nothing found.
_TENTATIVE = frozenset({"commit_phrase", "conclusion", "option_text", "standalone_letter", "letter_and_text",
                        "trailing_letter", "several_options", "no_answer"})
_NAMED = frozenset({"option_text", "letter_and_text", "standalone_letter"})
_TIER2_ALL = [*_TIER2, ("elimination", ELIMINATION, True)]
_MAX_DEPTH = 3


# ------------------------------------------------------------------------------------------------ core
def _read(text: str, ctx: _Ctx, mode: str, depth: int) -> tuple[str | None, str]:
    t = text.strip()
    if not t:
        return None, "empty"

    letter = _bare_letter(t)
    if letter is not None:
        return (letter, "bare_letter") if letter in ctx.opts else (None, "letter_not_an_option")

    if depth < _MAX_DEPTH and "{" in t:
        for value in _from_json(t):
            got, rule = _read(value, ctx, mode, depth + 1)
            if rule not in _UNDECIDED:
                return (got, "json") if got is not None else (None, rule)

    t = _HTML_TAG.sub(" ", t).strip()
    letter = _bare_letter(t)
    if letter is not None:
        return (letter, "bare_letter") if letter in ctx.opts else (None, "letter_not_an_option")

    core = " ".join(t.strip(_MARKUP).lower().split())
    for let, low, pat in ctx.texts:
        if pat.fullmatch(core):
            return let, "option_text_exact"

    if ctx.yes is not None:
        said = yes_no(t)
        if said is not None:
            return (ctx.yes if said else ctx.no), "yes_no"

    # A list or table marking each option: what follows it may still answer explicitly.
    verdicts = option_verdicts(t, ctx)
    if verdicts is not None:
        letter, rule, end = verdicts
        if depth < _MAX_DEPTH and t[end:].strip():
            got, after = _read(t[end:], ctx, mode, depth + 1)
            if after in _DECISIVE:
                return got, after
        return letter, rule

    t, echoed = _remove_echo(t, ctx)

    # Tier 1: boxed, <answer>, "Final answer". Positions decide: the last decided one wins.
    hits = []
    if depth < _MAX_DEPTH:
        for m in _BOXED.finditer(t):
            inner = _balanced(t, m.end())
            if inner is not None:
                hits.append((m.start(), "boxed", _TEX_COMMAND.sub("", inner)))
        for m in _ANSWER_TAG.finditer(t):
            hits.append((m.start(), "answer_tag", m.group("inner")))
    for m in _FINAL.finditer(t):
        hits.append((m.start(), "final_answer", m))
    hits.sort(key=lambda h: h[0])
    for _, name, payload in reversed(hits):
        if isinstance(payload, str):
            got, rule = _read(payload, ctx, mode, depth + 1)
            if rule in _UNDECIDED:
                continue
            return (got, name) if got is not None else (None, rule)
        allow_text = bool(payload.group("sep")) or t[payload.end():payload.end() + 3].lstrip(" \t*#:").startswith("\n")
        r = _resolve_at(t, payload.end(), ctx, allow_text, weak=False)
        if r is not None:
            return (r[0], name) if r[0] is not None else (None, r[1])

    # Tier 2: explicit answer phrases; "B is correct" decides directly.
    tier2 = _TIER2_ALL if may_eliminate(t) else _TIER2
    r = _tier(t, ctx, tier2, weak=False)
    correct_hits = list(_LETTER_IS_CORRECT.finditer(t))
    if not t.isascii():
        correct_hits = sorted([*correct_hits, *_CHINESE_CORRECT.finditer(t)], key=lambda m: m.start())
    if correct_hits:
        m = correct_hits[-1]
        tier2_pos = -1
        if r is not None:
            tier2_pos = max((mm.start() for _, pat, _ in tier2 for mm in pat.finditer(t)), default=-1)
        if r is None or m.start() > tier2_pos:
            letter = m.group("x")
            if _letter_token(t, m.start("x"), ctx) is not None:
                if letter not in ctx.opts:
                    return None, "letter_not_an_option"
                return letter, "letter_is_correct"
    if r is not None:
        return r

    # A first line that is a letter alone, or a letter and its own option text ("C. Stone", "B"), is the answer;
    # what follows explains it, and words there ("suggests normal ...") must not override it.
    lead = None if echoed else _answer_line(t, ctx)
    if lead is not None:
        return lead

    # Tier 3: weaker commitments; not read in what is left of an echo (the question stem, usually).
    r = None if echoed else _tier(t, ctx, _TIER3, weak=True)
    if r is not None and r[0] is not None and _UNSURE.search(t):
        return None, "hedge"
    if r is not None:
        return r

    # A reply that starts with a letter.
    start = _LEADING.match(t).end()
    tok = _letter_token(t, start, ctx)
    if tok is not None:
        letter, q = tok
        lower_ok = t[start].isupper() or re.match(r"[ \t]*(?:[.:)\]]|$|\n)", t[q:q + 2] if q < len(t) else "")
        if lower_ok:
            if letter not in ctx.opts:
                if letter in _OPTION_RANGE:
                    return None, "letter_not_an_option"
            elif _conflict(t, q, letter, ctx):
                return None, "conflict"
            elif _hedge_after(t, q, letter, ctx):
                return None, "hedge"
            else:
                return letter, "leading_letter"

    if _REFUSAL.search(t):
        return None, "refusal"
    if echoed:  # a reply that repeats the options commits to none of them by naming them
        return None, "option_echo"

    # Weak evidence: option texts and capital letters standing alone.
    by_text, _, hedged, masked = _scan_texts(t, ctx)
    letters: set[str] = set()
    for m in _UPPER_STANDALONE.finditer(masked):
        tok = _letter_token(masked, m.start(), ctx)
        if tok is None or not _in_range(tok[0], ctx):
            continue
        if _negated_before(masked, m.start(), 3) or _negated_after(masked, tok[1]):
            continue
        letters.add(tok[0])
    found = by_text | letters
    if hedged - found:  # a finding offered only as a possibility ("a tumor cannot be ruled out")
        return None, "hedged_mention"
    if len(found) == 1:
        letter = found.pop()
        if letter not in ctx.opts:
            return None, "letter_not_an_option"
        if by_text and letters:
            return letter, "letter_and_text"
        return letter, ("option_text" if by_text else "standalone_letter")
    if len(found) > 1:
        return None, "several_options"

    m = _TRAILING_LOWER.search(t)
    if m:
        if re.search(r"(?:\bor\b|\band\b|/|,|&)[\s(\[*\"'`]*$", t[: m.start(1)], re.I):
            return None, "hedge"
        letter = m.group(1).upper()
        return (letter, "trailing_letter") if letter in ctx.opts else (None, "letter_not_an_option")

    if mode == "lenient":
        letter = _fuzzy(t, ctx)
        if letter is not None:
            return letter, "fuzzy_text"
    return None, "no_answer"


def extract_choice_with_rule(text: str | None, options: Options, mode: str = "strict") -> tuple[str | None, str]:
    """(option letter or None, name of the rule that decided). ``mode``: ``strict`` or ``lenient``."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    ctx = _context(_normalise_options(options))
    if not ctx.opts or text is None or not isinstance(text, str) or not text.strip():
        return None, "empty"
    cleaned, reasoning, unfinished = _clean(text)
    if not cleaned:
        if mode == "lenient" and reasoning:
            letter, rule = _read(reasoning, ctx, mode, 0)
            if letter is not None:
                return letter, "think_only"
        return None, ("unfinished_thinking" if unfinished else "empty")
    letter, rule = _read(cleaned, ctx, mode, 0)
    for start, plain in reversed(corrections(cleaned)):  # "B... wait, actually C": the last revision that picks
        tail = cleaned[start:]
        if not tail.strip():
            continue
        revised, why = _read(tail, ctx, mode, 1)
        # A finding named after a plain revision counts when nothing before was an explicit pick: "I first
        # thought glioma, but actually the dural tail makes it a meningioma".
        if why in _DECISIVE or (plain and why in _NAMED and rule not in _DECISIVE):
            if revised != letter:
                letter, rule = revised, ("self_correction" if revised is not None else why)
            break
    if rule in _TENTATIVE and cut_off(cleaned, ctx):
        return None, "unfinished_reasoning"
    if letter is not None and letter not in ctx.opts:  # never a letter outside the item's options
        return None, "letter_not_an_option"
    return letter, rule


def extract_choice(text: str | None, options: Options, mode: str = "strict") -> str | None:
    """The option letter the reply commits to, or None (refusal, hedge, several letters, not an option)."""
    return extract_choice_with_rule(text, options, mode)[0]
