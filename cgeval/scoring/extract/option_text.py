"""Option texts named in a reply: where each is named, whether it is negated, and fuzzy matching (lenient)."""

from __future__ import annotations

import difflib
import re

from .options import _Ctx, _in_range, _letter_token

_NEG_BEFORE = re.compile(
    r"\b(?:no|not|non|without|absence|absent|negative|rule|rules|ruled|ruling|exclude|excluded|excluding|"
    r"except|rather|instead|nor|neither|isn't|isnt|aren't|wasn't|doesn't|don't|cannot|can't|unlikely|"
    r"less|other|unlike|eliminate|eliminated|eliminating|lack|lacks|lacking|free|never|against|nothing|none)\b",
    re.I,
)
_NOT_NEGATION = re.compile(r"\bno\s+doubt\b|\bnot\s+only\b|\bno\s+question\b|\bcan(?:'|no)t\s+rule\s+out\b", re.I)
_NEG_AFTER = re.compile(
    r"^(?:[\s)\]*_'\"]|\.(?![ \t\n]))*(?:\([^()\n]{0,60}\)\s*)?(?:(?:,|and|or)\s*(?:option\s*)?[(\[]?(?-i:[A-Z])[)\]]?\s*)*"
    r"(?:is|are|was|were|seems|appears|looks|can\s+be|has\s+been|have\s+been)?\s*"
    r"(?:not|unlikely|less\s+likely|incorrect|wrong|ruled\s+out|excluded|eliminated|false|implausible|"
    r"inconsistent|absent|negative)\b",
    re.I,
)
_BACKGROUND = re.compile(r"\b(?:otherwise|elsewhere|(?:the\s+)?(?:rest|remainder)\s+of|remaining)\b", re.I)
_NEG_ZH = re.compile(r"(?:不|非|排除|没有|无)[^。；，、,;.!?！？\s]{0,4}$")
_CLAUSE_BREAK = re.compile(r"[.;!?\n,:()]|\bbut\b|\bhowever\b|\bwhereas\b|\bwhile\b|\bthough\b", re.I)


def _negated_before(s: str, start: int, words: int) -> bool:
    pre = s[max(0, start - 80):start]
    cut = None
    for cut in _CLAUSE_BREAK.finditer(pre):
        pass
    if cut is not None:
        pre = pre[cut.end():]
    pre = _NOT_NEGATION.sub(" ", pre)
    if _BACKGROUND.search(pre):  # "the rest of the kidney is normal": said of what is not the finding
        return True
    if not pre.isascii() and _NEG_ZH.search(pre):  # "不是A", "排除B", "不考虑为C"
        return True
    tail = pre.split()[-words:]
    return bool(_NEG_BEFORE.search(" ".join(tail)))


# "SARS-CoV-2 infection is absent": a word or two may stand between the finding and its absence.
_ABSENT_AFTER = re.compile(
    r"^[ \t]+(?:[A-Za-z-]+[ \t]+){1,2}?(?:is|are|was|were)[ \t]+(?:absent|not[ \t]+(?:seen|present|identified|"
    r"visible|evident|detected|demonstrated))\b",
    re.I,
)


# "The kidney is normal in size": a property of an organ, not the diagnosis "Normal".
_QUALIFIED_AFTER = re.compile(
    r"^[ \t]+in[ \t]+(?:size|shape|contour|calib(?:re|er)|position|thickness|density|signal|echogenicity|"
    r"appearance|volume|course|morphology)\b",
    re.I,
)


def _negated_after(s: str, end: int) -> bool:
    tail = s[end:end + 90]
    return bool(_NEG_AFTER.match(tail) or _ABSENT_AFTER.match(tail) or _QUALIFIED_AFTER.match(tail))


# A finding offered only as a possibility: "cannot be ruled out", "not excluded", "should be considered".
_HEDGE_BEFORE = re.compile(
    r"(?:\b(?:cannot|can['’]?t|can\s+not|could\s+not|couldn['’]t|unable\s+to|not)\s+(?:be\s+)?"
    r"(?:entirely\s+|completely\s+|fully\s+|definitely\s+|definitively\s+|yet\s+)?"
    r"(?:rule[ds]?\s+out|ruled\s+out|exclude[ds]?)|\bpossibility\s+of|\braises?\s+(?:the\s+)?(?:possibility|"
    r"question|concern)\s+(?:of|for)|\bdifferential(?:\s+diagnosis)?\s+(?:includes?|of|:))"
    r"(?:\s+(?:a|an|the|some|any|small|possible|early|underlying|subtle))*\s*$",
    re.I,
)
_HEDGE_AFTER = re.compile(
    r"^[\s).\]*_'\"]*(?:\([^()\n]{0,60}\)\s*)?(?:[A-Za-z-]+\s+){0,2}?(?:(?:is|are)\s+)?(?:(?:cannot|can['’]?t|can\s+not|could\s+not|"
    r"not|to\s+be)\s+(?:be\s+)?(?:entirely\s+|completely\s+|fully\s+|definitely\s+|definitively\s+|yet\s+)?"
    r"(?:ruled\s+out|excluded)|(?:should|must|may|might|could|can)\s+(?:also\s+)?be\s+(?:considered|"
    r"excluded|ruled\s+out)|(?:also\s+)?(?:a\s+)?(?:consideration|possibilit(?:y|ies)|in\s+the\s+differential)|"
    r"remains?\s+(?:a\s+)?(?:possibilit(?:y|ies)|possible|in\s+the\s+differential))\b",
    re.I,
)
# "no X, Y or Z": the negation reaches the whole list.
_LIST_GAP = re.compile(r"(?:\s*,\s*(?:(?:or|nor|and)\s+)?|\s+(?:or|nor|and)\s+)(?:(?:any|a|an)\s+)?"
                       r"(?:[A-Za-z-]+\s*,\s*(?:(?:or|nor|and)\s+)?){0,2}", re.I)
# "Grade 1 or 2", "stage II to III": a range of numbered options names none of them.
_NUMERAL_RANGE = re.compile(r"\s*(?:-|–|/|\bor\b|\bto\b)\s*(?:\d+|[ivx]+|one|two|three|four|five)\b", re.I)


def _hedged(s: str, start: int, end: int) -> bool:
    return bool(_HEDGE_BEFORE.search(s[max(0, start - 80):start]) or _HEDGE_AFTER.match(s[end:end + 90]))


def _scan_texts(s: str, ctx: _Ctx) -> tuple[set[str], set[str], set[str], str]:
    """(letters named positively by text, letters named only negatively, letters named only as a possibility,
    s with matched spans blanked)."""
    hits: list[tuple[int, int, str, str]] = []  # (start, end, letter, "pos" / "neg" / "hedge")
    masked = s
    for letter, _, pat in ctx.texts:
        found = list(pat.finditer(masked))
        if not found:
            continue
        for m in found:
            if _hedged(masked, m.start(), m.end()):
                status = "hedge"
            elif letter in ctx.numeral_end and _NUMERAL_RANGE.match(masked, m.end()):
                status = "hedge"
            elif _negated_before(masked, m.start(), 4) or _negated_after(masked, m.end()):
                status = "neg"
            else:
                status = "pos"
            hits.append((m.start(), m.end(), letter, status))
        masked = pat.sub(lambda m: "\x00" * len(m.group(0)), masked)
    hits.sort()
    positive: set[str] = set()
    negative: set[str] = set()
    hedged: set[str] = set()
    prev = None
    for start, end, letter, status in hits:
        if status == "pos" and prev is not None and prev[3] == "neg":
            gap = _LIST_GAP.match(masked, prev[1])
            if gap and gap.end() == start:
                status = "neg"
        {"pos": positive, "neg": negative, "hedge": hedged}[status].add(letter)
        prev = (start, end, letter, status)
    return positive, negative - positive, hedged - positive, masked


def _options_named(seg: str, ctx: _Ctx) -> set[str]:
    """Option letters standing alone (either case) and option texts named in ``seg``."""
    found, _, _, masked = _scan_texts(seg, ctx)
    for m in re.finditer(r"(?<![A-Za-z0-9])[A-Za-z](?![A-Za-z0-9])", masked):
        tok = _letter_token(masked, m.start(), ctx)
        if tok is not None and _in_range(tok[0], ctx):
            found.add(tok[0])
    return found


def _fuzzy(s: str, ctx: _Ctx) -> str | None:
    """Lenient: the one option whose text closely matches a run of words in the reply (difflib ratio >= 0.8,
    ahead of the next option by >= 0.1). Negated runs ("no evidence of covid") do not count."""
    tokens = list(re.finditer(r"[A-Za-z0-9]+", s))[-400:]
    if not tokens:
        return None
    low = [m.group(0).lower() for m in tokens]
    scores = {}
    for letter, text, _ in ctx.texts:
        target_words = re.findall(r"[a-z0-9]+", text)
        target = " ".join(target_words)
        if len(target) < 4:
            continue
        n = len(target_words)
        best = 0.0
        sm = difflib.SequenceMatcher(autojunk=False)
        sm.set_seq2(target)
        for size in sorted({max(1, n - 1), n, n + 1}):
            for i in range(0, max(1, len(low) - size + 1)):
                window = " ".join(low[i:i + size])
                for cand in (window, window.replace(" ", "")):
                    sm.set_seq1(cand)
                    if sm.real_quick_ratio() <= best or sm.quick_ratio() <= best:
                        continue
                    ratio = sm.ratio()
                    if ratio <= best:
                        continue
                    start, end = tokens[i].start(), tokens[min(i + size, len(tokens)) - 1].end()
                    if _negated_before(s, start, 4) or _negated_after(s, end):
                        continue
                    best = ratio
        scores[letter] = best
    if not scores:
        return None
    ranked = sorted(scores.items(), key=lambda kv: -kv[1])
    top, score = ranked[0]
    runner = ranked[1][1] if len(ranked) > 1 else 0.0
    if score >= 0.8 and score - runner >= 0.1:
        return top
    return None

