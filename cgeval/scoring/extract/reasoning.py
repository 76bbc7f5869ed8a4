"""Reasoning that walks the options: per-option verdicts (a list or table marking each option), picks revised
later in the reply (self-corrections), elimination, and reasoning cut off before any pick."""

from __future__ import annotations

import re

from .option_text import _options_named
from .options import _Ctx

# ---------------------------------------------------------------------------------------- per-option verdicts
# A verdict at the start of what is said about an option, strongest reading first. Levels: 3 the pick ("correct",
# "yes", "most likely", ✓), 2 in favour ("likely", "consistent"), 1 a possibility, 0 against.
_VERDICT = re.compile(
    r"(?P<neg>(?:not|less|least)\s+(?:likely|consistent|correct|supported|the\s+(?:answer|best))|unlikely|"
    r"incorrect|inconsistent|wrong|false|not|no|excluded|ruled\s+out|eliminated?|absent|implausible|"
    r"[✗✘❌×]|错误|错|否|不正确|不符合|排除|不太可能|不可能)"
    r"|(?P<pos3>correct|right(?=\s*(?:[,.;:!)]|$))|true|yes|most\s+likely|best\s+(?:answer|fit|match|choice)|the\s+answer|"
    r"answer|[✓✔✅☑]|正确|对|是|最可能)"
    r"|(?P<pos2>likely|probable|consistent|supported|fits|matches|present|favou?red|可能性大|符合)"
    r"|(?P<pos1>possible|plausible|possibly|maybe|cannot\s+be\s+(?:excluded|ruled\s+out)|可能)",
    re.I,
)
_VERDICT_END = re.compile(r"(?![A-Za-z])")
# "this is unlikely ...", "which is the most likely diagnosis", "it is incorrect"
_VERDICT_SENTENCE = re.compile(
    r"\b(?:this|it|which|that)\s+(?:option\s+)?(?:is|seems|appears|looks|would\s+be)\s+(?:also\s+)?(?:the\s+)?",
    re.I,
)
_VERDICT_AT_END = re.compile(r"\s[-–—:→]+\s*[*_]*(?P<v>[^-–—:→*_.!\n]{1,20}?)[*_]*\s*[.!]?\s*$")
_LINE_LEAD = re.compile(r"[ \t>*_#•·+\-]*(?:\d{1,2}[.)][ \t]+)?[ \t*_]*")
_LETTER_REF = re.compile(
    r"(?:(?i:option|choice)[ \t]+[(\[]?(?P<l1>[A-Za-z])[)\]]?|[(\[](?P<l2>[A-Za-z])[)\]]"
    r"|(?P<l3>[A-Z])(?=[ \t]*[.):：(]|[ \t]+[-–—|]|[ \t]*\*\*|[*_]*[ \t]*$))"
)
_AFTER_REF = re.compile(r"[ \t]*[.):：]?[ \t*_]*")
_PAREN_TEXT = re.compile(r"[ \t]*\([^()\n]{1,60}\)")
_SEPARATOR = re.compile(r"[ \t*_]*(?:[:：=|→.)]|->|[-–—]+)[ \t*_]*")
_BODY_LEAD = re.compile(r"[ \t*_\"'“(\[]*")
# Verdicts may also follow one another on one line: "A: No. B: No. C: Yes. D: No."
_INLINE_BREAK = re.compile(r"(?<=[.;])[ \t]+(?=(?:(?i:option|choice)[ \t]+)?[(\[]?[A-H][).:：\]][ \t])")
_SEGMENT_BREAK = re.compile(r"\n|" + _INLINE_BREAK.pattern)
_TABLE_RULE = re.compile(r"^[\s|:\-–—]+$")
# A likelihood column: | Meningioma | High |
_LIKELIHOOD_CELL = re.compile(r"(?:very\s+)?(?:(?P<high>high)|(?P<mid>moderate|medium|intermediate)|low)"
                              r"(?:\s+(?:likelihood|probability))?", re.I)
_CELL_MARKUP = " \t*_`'\"“”.:"


def _ref_at(line: str, ctx: _Ctx) -> tuple[str, int] | None:
    """The option a list line starts with ("A.", "(B)", "Option C", "**D.**", an option's text): (letter, end)."""
    p = _LINE_LEAD.match(line).end()
    m = _LETTER_REF.match(line, p)
    if m:
        letter = (m.group("l1") or m.group("l2") or m.group("l3")).upper()
        if letter not in ctx.opts:
            return None
        q = _AFTER_REF.match(line, m.end()).end()
        for let, _, pat in ctx.texts:  # the letter's own text may follow: "A. Normal", "(A) Normal"
            mm = pat.match(line, q)
            if mm:
                if let != letter:
                    return None  # "A. Cyst" where A is Normal: not a verdict on either
                q = mm.end()
                break
        else:
            q = m.end()
        pm = _PAREN_TEXT.match(line, q)
        return letter, (pm.end() if pm else q)
    for let, _, pat in ctx.texts:  # "Normal: unlikely", "- Glioma: ✗"
        mm = pat.match(line, p)
        if mm:
            pm = _PAREN_TEXT.match(line, mm.end())
            return let, (pm.end() if pm else mm.end())
    return None


def _level_of(m: re.Match) -> int:
    return 0 if m.group("neg") else 3 if m.group("pos3") else 2 if m.group("pos2") else 1


def _level(body: str) -> int | None:
    """The verdict ``body`` opens with, as a level (see ``_VERDICT``), or None when it gives none."""
    p = _BODY_LEAD.match(body).end()
    s = _VERDICT_SENTENCE.match(body, p)
    for start in ((p, s.end()) if s else (p,)):
        m = _VERDICT.match(body, start)
        if m and (not m.group(0)[-1].isascii() or not m.group(0)[-1].isalpha()
                  or _VERDICT_END.match(body, m.end())):
            return _level_of(m)
    m = _VERDICT_AT_END.search(body)  # "A) Glioma: intra-axial mass with edema - likely."
    if m:
        v = _VERDICT.fullmatch(m.group("v"))
        if v:
            return _level_of(v)
    s = _VERDICT_SENTENCE.search(body, p)  # "- A (Glioma) – the lesion is extra-axial, so this is unlikely."
    if s:
        m = _VERDICT.match(body, s.end())
        if m and _VERDICT_END.match(body, m.end()):
            return _level_of(m)
    return None


def _table_verdict(line: str, ctx: _Ctx) -> tuple[str, int] | None:
    """A markdown table row: | A | Normal | Unlikely | -> (letter, level). The verdict is the first short cell
    that is one (not an option's own text, such as "No tumor"), else the last cell."""
    cells = [c.strip(_CELL_MARKUP) for c in line.strip().strip("|").split("|")]
    cells = [c for c in cells if c]
    if len(cells) < 2:
        return None
    ref = _ref_at(cells[0], ctx)
    if ref is None or ref[1] < len(cells[0].rstrip()) - 1:
        return None
    for cell in cells[1:]:
        if len(cell.split()) <= 3 and not any(pat.fullmatch(cell) for _, _, pat in ctx.texts):
            m = _LIKELIHOOD_CELL.fullmatch(cell)
            level = _level(cell) if m is None else 3 if m.group("high") else 1 if m.group("mid") else 0
            if level is not None:
                return ref[0], level
    level = _level(cells[-1])
    return (ref[0], level) if level is not None else None


def option_verdicts(t: str, ctx: _Ctx) -> tuple[str | None, str, int] | None:
    """Lines that each open with an option and mark it (yes / no, correct / incorrect, likely / unlikely, ✓ / ✗):
    ``(letter, "option_verdicts", end)`` when exactly one option is marked as the pick, ``(None, "verdicts_none",
    end)`` when none is, ``(None, "verdicts_several", end)`` when several are; ``end``: where the list ends.
    None when fewer than two options are marked."""
    if "\n" not in t and not _INLINE_BREAK.search(t):
        return None
    verdicts: dict[str, int] = {}
    end = 0
    pos = 0
    for brk in [*_SEGMENT_BREAK.finditer(t), None]:
        line_end = brk.start() if brk is not None else len(t)
        line = t[pos:line_end]
        got = None
        if line.lstrip().startswith("|"):
            if not _TABLE_RULE.match(line):
                got = _table_verdict(line, ctx)
        else:
            ref = _ref_at(line, ctx)
            if ref is not None:
                sep = _SEPARATOR.match(line, ref[1])
                if sep:
                    level = _level(line[sep.end():])
                    if level is not None:
                        got = (ref[0], level)
        if got is not None:
            verdicts[got[0]] = got[1]  # a later verdict on the same option replaces the earlier one
            end = line_end
        if brk is not None:
            pos = brk.end()
    if len(verdicts) < 2:
        return None
    marked = {letter: level for letter, level in verdicts.items() if level > 0}
    if not marked:
        return None, "verdicts_none", end
    top = max(marked.values())
    at_top = [letter for letter, level in marked.items() if level == top]
    if len(at_top) > 1 or (top < 3 and len(marked) > 1):
        return None, "verdicts_several", end
    if top == 1:
        return None, "verdicts_none", end
    return at_top[0], "option_verdicts", end


# --------------------------------------------------------------------------------------------- elimination
ELIMINATION = re.compile(
    r"\b(?:(?:that|which|this)\s+leaves(?:\s+(?:us\s+with|only))?|(?:the\s+)?(?:only\s+)?remaining"
    r"(?:\s+(?:option|choice|answer|possibility|candidate)(?:\s+is)?|(?=\s*[:：]))|by\s+(?:the\s+)?(?:process\s+of\s+)?"
    r"elimination,?(?:\s+(?:it\s+is|it['’]s|we\s+get))?|(?:only|last)\s+(?:option|choice)\s+(?:left|remaining)"
    r"(?:\s+is)?)(?P<sep>\s*[:：]?)",
    re.I,
)

_ELIMINATION_WORDS = ("leave", "remaining", "eliminat", "left")


def may_eliminate(t: str) -> bool:
    """Whether ``ELIMINATION`` can match at all (a cheap test before scanning for it)."""
    low = t.lower()
    return any(w in low for w in _ELIMINATION_WORDS)


# ----------------------------------------------------------------------------------------- self-corrections
_CORRECTION = re.compile(
    r"(?:\b(?:wait|actually|on\s+second\s+thoughts?|correction|scratch\s+that|i\s+was\s+wrong|"
    r"i\s+made\s+a\s+mistake|let\s+me\s+(?:reconsider|correct\s+(?:that|myself))|upon\s+(?:further\s+)?"
    r"(?:reflection|review))\b|不对|等等|更正|纠正)"
    r"(?:[\s,.!:;—–-]*(?:no\b|not\s+quite\b|that['’]?s\s+(?:wrong|incorrect|not\s+right)\b))?[\s,.!:;—–-]*",
    re.I,
)


_ASIDE = re.compile(r"actually[\s,.!:;—–-]*", re.I)


_CORRECTION_WORDS = ("wait", "actually", "second thought", "correction", "scratch that", "was wrong", "mistake",
                     "reconsider", "let me correct", "upon ", "不对", "等等", "更正", "纠正")


def corrections(t: str) -> list[tuple[int, bool]]:
    """Where the reply revises itself ("wait", "actually, no", "on second thought"), last one last: (where the
    revision starts, whether it is plainly one). A bare "Actually, ..." may be an aside rather than a revision;
    "but actually" is one."""
    low = t.lower()
    if not any(w in low for w in _CORRECTION_WORDS):  # the common case, without scanning the pattern
        return []
    out = []
    for m in _CORRECTION.finditer(t):
        plain = not _ASIDE.fullmatch(m.group(0)) or t[max(0, m.start() - 4):m.start()].lower() == "but "
        out.append((m.end(), plain))
    return out


# ----------------------------------------------------------------------------------- unfinished reasoning
_REASONING_OPENER = re.compile(
    r"(?:^|\n)\W*(?:okay|ok|alright|hmm+|so|well|first(?:ly)?|let(?:['’]s|\s+us|\s+me)|to\s+(?:determine|answer|"
    r"identify|figure|decide|find|choose)|we\s+need|i\s+need|i['’]ll|step\s*1)\b"
    r"|\bstep\s*(?:1|one)\b|\blet(?:['’]s|\s+us|\s+me)\s+(?:think|analy[sz]e|consider|evaluate|go\s+through|"
    r"look|examine|review|break)",
    re.I,
)
_FINISHED_END = re.compile(r"[.!?。！？)\]}>*\"'`|”’»」』】）]\s*$")
_LAST_FRAGMENT = re.compile(r"[^.!?。！？\n]*$")
# A reply that stops on one of these words was cut off mid-sentence.
_DANGLING = re.compile(
    r"(?:\b(?:the|a|an|of|with|and|or|to|in|for|is|are|was|were|which|that|as|by|at|on|from|after|before|than|"
    r"be|this|these|its|their|whether|if|because|since|but|so|into|between|like|such)|,|:|-)\s*$",
    re.I,
)


def cut_off(t: str, ctx: _Ctx) -> bool:
    """Reasoning cut off before it got anywhere: it reads like reasoning and stops mid-sentence, either on a word
    that cannot end one ("... which is typical of") or on a fragment that names no option ("Here the mass")."""
    if len(t) < 60 or _FINISHED_END.search(t[-4:]) or not _REASONING_OPENER.search(t):
        return False
    return bool(_DANGLING.search(t[-20:])) or not _options_named(_LAST_FRAGMENT.search(t).group(0), ctx)
