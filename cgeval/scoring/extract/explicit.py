"""Explicit answer forms: answer markers ("Answer: B", "\\boxed{B}", "答案是B", "it's B"), what follows them
(a letter, an option's text, a hedge or a conflict), JSON answers, the option list echoed back, refusals."""

from __future__ import annotations

import json
import re

from .options import _OPTION_RANGE, _Ctx, _in_range, _letter_token, _starts_with_text
from .option_text import _options_named, _scan_texts

_CLAUSE_START = re.compile(r"[.;!?\n。；！？]|\b(?:but|although|though|however|whereas|while)\b", re.I)
_ALTERNATIVE = re.compile(
    r"\b(?:could|might|may|can)\s+also\s+be\b|\balternatively\b,?|\bor\s+(?:possibly|maybe|perhaps)\b|"
    r"\b(?:also|equally)\s+(?:possible|likely)\b\s*(?:is|are|:)?|\bor\s+(?:it\s+)?(?:could|might|may)\s+be\b",
    re.I,
)
_ALTERNATIVE_BEFORE = re.compile(
    r"\b(?:is|are|would\s+be|seems|remains)\s+(?:also|equally|still)\s+(?:possible|likely|plausible|"
    r"a\s+possibility|an\s+option|in\s+the\s+differential)", re.I)
_EITHER = re.compile(r"(?:either|between|one\s+of)\b", re.I)
_SENTENCE_END = re.compile(r"\n|[.;!?。；！？](?=\s|$)")
_SPAN_END = re.compile(
    r"\n|[.;!?。；！？](?=\s|$)|\b(?:but|although|though|however|whereas|while|rather|instead|unlike|except|"
    r"not|because|since|as|given|due|which|where|than)\b",
    re.I,
)
_REFUSAL = re.compile(
    r"\b(?:i(?:'m|’m| am)\s+(?:sorry|unable|not\s+able)|sorry|apologi[sz]e|i\s+(?:cannot|can['’]?t|can\s+not|"
    r"could\s+not|couldn['’]t)\s+(?:determine|tell|say|provide|identify|diagnose|answer|make|assess|"
    r"see|view|access|analy[sz]e|interpret|help|be\s+sure|be\s+certain|confirm)|(?:unable|not\s+able)\s+to|"
    r"(?:cannot|can['’]?t|can\s+not)\s+be\s+(?:determined|assessed|established|made)|not\s+possible\s+to|"
    r"impossible\s+to|as\s+an\s+ai|i\s+don['’]?t\s+know|not\s+enough\s+(?:information|detail|data)|"
    r"insufficient\s+(?:information|detail|data|evidence)|consult\s+(?:a|an|your|with)|"
    r"none\s+of\s+the\s+(?:above|options|choices|provided|given|listed)|no\s+(?:correct|right)\s+(?:answer|option)|"
    r"(?:need|require)s?\s+(?:more|additional|further)\s+(?:information|context|clinical|imaging)|"
    r"无法|不能确定|不确定|难以确定|不清楚|抱歉)",
    re.I,
)

# --------------------------------------------------------------------------------------------- markers
_ANS_SEP = r"(?P<sep>\s*(?:is|was|would\s+be|should\s+be|will\s+be|must\s+be|:|：|=|-|—|–)(?![A-Za-z]))"
_BOXED = re.compile(r"\\(?:boxed|fbox)\s*\{")
_TEX_COMMAND = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|bf)\b\s*")
_ANSWER_TAG = re.compile(r"<answer>(?P<inner>.*?)(?:</answer>|$)", re.S | re.I)
_FINAL = re.compile(r"\bfinal\s+(?:answer|choice|option|diagnosis)(?:\s*\([^()\n]{0,20}\))?" + _ANS_SEP + "?", re.I)
_ANSWER_PHRASE = re.compile(
    r"\b(?:(?:the|my|correct|right|best|most\s+(?:likely|appropriate|accurate|suitable))\s+)*"
    r"(?:answer|option|choice|response)(?:\s+(?:choice|option))?" + _ANS_SEP,
    re.I,
)
_ANSWER_BARE = re.compile(r"\banswer\b(?P<sep>)(?=[\s*_`'\"(\[]*[A-Za-z](?![A-Za-z0-9]))", re.I)
_CHINESE_PHRASE = re.compile(r"(?:正确答案|答案|正确选项|选项)\s*(?:应该|应|就|可能)?\s*(?P<sep>是|为|选|[:：])?\s*")
# "最可能是B", "诊断为B", "考虑为B", "我认为是B", "应该是B", "是B" (not "不是B")
_CHINESE_COMMIT = re.compile(
    r"(?<![不非未])(?:最(?:有)?可能(?:的)?(?:诊断|答案|选项)?|可能|诊断|考虑|倾向于?|(?:我)?认为|应该|应当|应)\s*"
    r"(?P<sep>是|为)\s*"
    r"|(?<![不否])是(?P<bare>)(?=\s*[(（]?[A-H](?![A-Za-z]))"
)
# "选项C正确", "B选项是正确的", "B项正确"
_CHINESE_CORRECT = re.compile(r"(?:选项\s*)?(?P<x>[A-H])\s*(?:选项|项)?\s*(?:是|为)?\s*(?:正确|对)(?!于)")
_CHINESE_CHOOSE = re.compile(r"(?<!选)(?:我|应该|应|故|所以|因此)?\s*选(?:择)?(?!项)\s*(?P<sep>[:：])?\s*")
_LETTER_IS_CORRECT = re.compile(
    r"(?<![A-Za-z0-9'’-])(?:(?i:option|choice|answer)\s+)?[(\[*_]*(?P<x>[A-Z])[)\]*_]*(?![A-Za-z0-9-])"
    r"(?:\s*\([^()\n]{0,60}\))?\s*,?\s+(?i:is|seems|appears|would\s+be|looks|should\s+be)\s+(?i:to\s+be\s+)?"
    r"(?i:the\s+)?(?i:correct|right|best|most\s+(?:likely|appropriate|accurate|consistent|plausible|suitable)|"
    r"answer|true|accurate)\b"
)
_CHOOSE = re.compile(
    r"\b(?:i(?:\s+would|\s+will|\s+shall|['’]d|['’]ll)?\s+(?:choose|select|pick|go\s+with|opt\s+for)|"
    r"(?:my\s+)?(?:choice|selection|pick)\s+(?:is|would\s+be))(?P<sep>)\b\s*(?:option|choice)?",
    re.I,
)
_COMMIT = re.compile(
    r"\b(?:it\s+is|it['’]s|this\s+is|that\s+is|that['’]s|(?:this|it)\s+(?:would|should|must|could|might)\s+be|"
    r"(?<!less\s)(?<!un)(?:most\s+)?likely(?:\s+to\s+be)?|probably|possibly|looks\s+like|appears\s+to\s+be|"
    r"seems\s+to\s+be|consistent\s+with|suggestive\s+of|suggests?|indicates?|indicative\s+of|"
    r"diagnosis\s+(?:is|of|:)|represents?|shows?|showing|demonstrates?|favou?rs?|i\s+think|i\s+believe)(?P<sep>)\b",
    re.I,
)
_CONCLUSION = re.compile(
    r"\b(?:therefore|thus|hence|so|in\s+conclusion|in\s+summary|overall|to\s+conclude|conclusion)(?P<sep>)\b\s*[,:]?",
    re.I,
)
# A reply that says it is unsure: a weak pick in it ("Hard to say; possibly yes") is no commitment.
_UNSURE = re.compile(r"\b(?:(?:hard|difficult)\s+to\s+(?:say|tell|determine)|not\s+(?:entirely\s+)?(?:sure|certain)|"
                     r"unsure|can(?:no|['’])t\s+be\s+(?:sure|certain))\b", re.I)
# "... the margins are smooth: B." — a letter after a colon or dash that ends the reply.
_FINAL_LETTER = re.compile(r"(?:[:：—–]|\s-)(?P<sep>)(?=[\s*_(\[]*[A-H][)\]*_]*[.!]?\s*$)")
# (name, pattern, text allowed after the marker even without a separator)
_TIER2 = [
    ("answer_phrase", _ANSWER_PHRASE, False),
    ("answer_phrase", _ANSWER_BARE, False),
    ("chinese_phrase", _CHINESE_PHRASE, False),
    ("chinese_choose", _CHINESE_CHOOSE, True),
    ("chinese_phrase", _CHINESE_COMMIT, False),
    ("choose_phrase", _CHOOSE, True),
]
_TIER3 = [("commit_phrase", _COMMIT, True), ("conclusion", _CONCLUSION, True), ("conclusion", _FINAL_LETTER, False)]
_FRAG_PREFIX = re.compile(
    r"[\s*_`'\"“”‘’「『【（\[{<:：=\-—–>#]*"
    r"(?:(?:probably|likely|most\s+likely|clearly|definitely|certainly|indeed|actually|simply|just|"
    r"therefore|thus|undoubtedly|obviously)\s*,?\s+)?"
    r"(?:(?:the\s+)?(?:option|choice|letter|answer)\s*(?:is\s*)?[:#]?\s*)?"
    r"[\s*_`'\"“”‘’「『【（(\[{<]*",
    re.I,
)
_LEADING = re.compile(
    r"^[\s*_`'\"“”‘’「『【（(\[{<#>•·\-–—]*(?:(?:option|choice|letter|answer)\s*[:#.]?\s*)?[\s*_`'\"“”‘’「『【（(\[{<]*", re.I
)
_HEDGE_CONJ = re.compile(
    r"\s*(?:,|/|&|\bor\b|\band\b|\bvs\.?|\bversus\b|\bto\b|和|或|、|，|及)\s*"
    r"(?:(?:maybe|possibly|perhaps|option|choice|also)\s+)?[\s*_`'\"(\[]*",
    re.I,
)
_INSTRUCTION = re.compile(
    r"answer\s+with\s+the\s+option['’]?s\s+letter[^\n.]*\.?|please\s+(?:select|choose)[^\n.]*\.?", re.I
)
_UPPER_STANDALONE = re.compile(r"(?<![A-Za-z0-9])[A-Z](?![A-Za-z0-9])")
_TRAILING_LOWER = re.compile(r"(?:^|[\s:(\[*\"'`,])([b-h])[\s.)\]*\"'`!]*$")
_JSON_KEYS = ("answer", "final_answer", "answer_letter", "choice", "option", "selected_option", "letter",
              "prediction", "label", "result", "output", "response")
_JSON_BLOCK = re.compile(r"\{[^{}]{0,2000}\}")


_LINE_REST = re.compile(r"[ \t]*[.:)\]*_`]*[ \t]*")
_LINE_TAIL = " \t*_.`"


def _answer_line(t: str, ctx: _Ctx) -> tuple[str | None, str] | None:
    """When the reply's first line is an upper-case option letter alone, or followed by one option's text and
    nothing else: ``(letter, "leading_letter")``, or ``(None, "conflict")`` when that text is another option's
    ("C. Stone" where C is Tumor). Otherwise None: nothing decided here."""
    start = _LEADING.match(t).end()
    tok = _letter_token(t, start, ctx)
    if tok is None or not t[start].isupper() or tok[0] not in ctx.opts:
        return None
    letter, q = tok
    line_end = t.find("\n", q)
    line_end = len(t) if line_end < 0 else line_end
    p = _LINE_REST.match(t, q).end()
    if not t[p:line_end].strip(_LINE_TAIL):
        return letter, "leading_letter"
    for let, _, pat in ctx.texts:  # longest text first
        m = pat.match(t, p)
        if m and m.end() <= line_end and not t[m.end():line_end].strip(_LINE_TAIL):
            return (letter, "leading_letter") if let == letter else (None, "conflict")
    return None



_AFTER_LETTER = re.compile(r"[\s.):\]*_`'\"]*")
_PAREN_AFTER = re.compile(r"\([^()\n]{0,80}\)[\s.):\]*_]*")
_AFTER_TEXT = re.compile(r"[\s.):\]*_]*")
_BEFORE_TEXT = re.compile(r"[ \t]*[.:,)\]*_\-—–]*[ \t]*[(*_]*[ \t]*")


def _hedge_after(s: str, q: int, letter: str, ctx: _Ctx) -> bool:
    """Another option letter joined to this one by or/and/comma/slash: "B or C", "B (cyst) / C"."""
    m = _AFTER_LETTER.match(s, q)
    p = m.end()
    m = _PAREN_AFTER.match(s, p)
    if m:
        p = m.end()
    else:
        own = _starts_with_text(s, p, ctx, letter)
        if own is not None:
            for let, _, pat in ctx.texts:
                if let == letter:
                    mm = pat.match(s, p)
                    if mm:
                        p = mm.end()
                        break
            p = _AFTER_TEXT.match(s, p).end()
    m = _HEDGE_CONJ.match(s, p)
    if not m or m.end() == p:
        return False
    tok = _letter_token(s, m.end(), ctx)
    return tok is not None and _in_range(tok[0], ctx) and tok[0] != letter


def _conflict(s: str, q: int, letter: str, ctx: _Ctx) -> bool:
    """The letter is followed directly by another option's text: "B. Normal" where B is Cyst."""
    p = _BEFORE_TEXT.match(s, q).end()
    if _starts_with_text(s, p, ctx, letter) is not None:
        return False
    other = _starts_with_text(s, p, ctx)
    return other is not None and other != letter


def _span(s: str, p: int) -> str:
    m = _SPAN_END.search(s, p)
    return s[p: m.start()] if m else s[p:]


def _resolve_at(s: str, pos: int, ctx: _Ctx, allow_text: bool, weak: bool) -> tuple[str | None, str] | None:
    """Read what follows an answer marker. None: nothing decided here; else (letter or None, status)."""
    p = _FRAG_PREFIX.match(s, pos).end()
    m = _EITHER.match(s, p)
    if m:  # "either B or C", "between a cyst and a tumor", "one of A, B"
        end = _SENTENCE_END.search(s, m.end())
        if len(_options_named(s[m.end(): end.start() if end else len(s)], ctx)) >= 2:
            return None, "hedge"
    tok = _letter_token(s, p, ctx)
    if tok is not None:
        letter, q = tok
        if letter not in ctx.opts:
            if weak and letter not in _OPTION_RANGE:
                return None
            return None, "letter_not_an_option"
        if _conflict(s, q, letter, ctx):
            return None, "conflict"
        if _hedge_after(s, q, letter, ctx):
            return None, "hedge"
        return letter, "ok"
    if not allow_text:
        return None
    span = _span(s, p)
    if weak:
        # A weak marker inside a hedge ("likely a cyst or possibly a tumor"): read the whole clause.
        back = None
        for back in _CLAUSE_START.finditer(s, max(0, pos - 300), pos):
            pass
        span = s[back.end() if back else max(0, pos - 300):pos] + " " + span
    if not span.strip():
        return None
    positive, _, _, _ = _scan_texts(span, ctx)
    if len(positive) == 1:
        return positive.pop(), "ok"
    if len(positive) > 1:
        return None, "hedge"
    return None


def _balanced(s: str, p: int, limit: int = 500) -> str | None:
    """The text from ``p`` up to the brace that closes the one opened just before ``p``."""
    depth = 1
    for i in range(p, min(len(s), p + limit)):
        if s[i] == "{":
            depth += 1
        elif s[i] == "}":
            depth -= 1
            if depth == 0:
                return s[p:i]
    return None


def _from_json(text: str) -> list[str]:
    """Answer values found in JSON objects in the reply, last one last."""
    s = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", s, re.S | re.I)
    candidates = [fenced.group(1).strip()] if fenced else []
    if s.startswith("{"):
        candidates.append(s)
    candidates.extend(m.group(0) for m in _JSON_BLOCK.finditer(s))
    values: list[str] = []
    for cand in candidates:
        if not cand.startswith("{"):
            continue
        try:
            data = json.loads(cand)
        except (ValueError, RecursionError):
            continue
        if not isinstance(data, dict):
            continue
        lowered = {str(k).strip().lower(): v for k, v in data.items()}
        for key in _JSON_KEYS:
            v = lowered.get(key)
            if isinstance(v, list) and len(v) == 1:
                v = v[0]
            if isinstance(v, str) and v.strip():
                values.append(v)
                break
        if values:
            return values[-1:]
    return values


def _remove_echo(s: str, ctx: _Ctx) -> tuple[str, bool]:
    """Cut out an echo of the option list: >= 2 option lines "A. x", "B. y" in order, one after another."""
    hits = []
    for letter, pat in ctx.echo:
        for m in pat.finditer(s):
            hits.append((m.start(), m.end(), letter))
    if len(hits) < 2:
        return s, False
    hits.sort()
    order = {letter: i for i, (letter, _) in enumerate(ctx.echo)}
    runs: list[list[tuple[int, int, str]]] = []
    run: list[tuple[int, int, str]] = []
    for h in hits:
        if run:
            prev = run[-1]
            gap = s[prev[1]:h[0]]
            if (h[0] >= prev[1] and order[h[2]] == order[prev[2]] + 1
                    and re.fullmatch(r"[\s,;|*_•·\-–—]*", gap)):
                run.append(h)
                continue
            if len(run) >= 2:
                runs.append(run)
            run = []
        if not run:
            run = [h]
    if len(run) >= 2:
        runs.append(run)
    if not runs:
        return s, False
    out = []
    last = 0
    for r in runs:
        out.append(s[last:r[0][0]])
        out.append("\n")
        last = r[-1][1]
    out.append(s[last:])
    rest = _INSTRUCTION.sub(" ", "".join(out))
    return rest, True


def _tier(s: str, ctx: _Ctx, patterns, weak: bool) -> tuple[str | None, str] | None:
    hits = []
    ascii_only = s.isascii()
    for name, pat, text_ok in patterns:
        if ascii_only and name.startswith("chinese"):
            continue
        for m in pat.finditer(s):
            sep = m.groupdict().get("sep")
            hits.append((m.start(), m.end(), name, text_ok or bool(sep)))
    hits.sort(key=lambda h: (h[0], h[1]))
    for start, end, name, allow_text in reversed(hits):
        r = _resolve_at(s, end, ctx, allow_text, weak)
        if r is None:
            continue
        letter, status = r
        if letter is not None and _alternative_after(s, end, letter, ctx):
            return None, "hedge"  # "it might be B, but it could also be C"
        return (letter, name) if letter is not None else (None, status)
    return None


def _alternative_after(s: str, pos: int, letter: str, ctx: _Ctx) -> bool:
    """After a commitment, another option offered as an alternative ("could also be C", "or possibly C")."""
    for m in _ALTERNATIVE.finditer(s, pos):
        r = _resolve_at(s, m.end(), ctx, True, weak=False)
        if r is not None and r[0] is not None and r[0] != letter:
            return True
    for m in _ALTERNATIVE_BEFORE.finditer(s, pos):  # "C is also possible"
        back = None
        for back in _CLAUSE_START.finditer(s, pos, m.start()):
            pass
        if _options_named(s[back.end() if back else pos: m.start()], ctx) - {letter}:
            return True
    return False



# ------------------------------------------------------------------------------------------------ yes / no
# A yes / no item answered at the start of the reply, in English (also emphatic or elliptical) or Chinese. "No"
# must end its clause: "No abnormality is seen" answers "Is this normal?" with yes.
_YES_NO = re.compile(
    r"^[\s*_`'\"“「(\[]*(?:"
    r"(?P<no>(?:absolutely|definitely|certainly|of\s+course|surely)\s+not|not\s+at\s+all|no\s+way|nope|nah|"
    r"negative|no)(?=\s*(?:[,.!;:—–)*\]]|$))"
    r"|(?P<yes>(?:yes|yeah|yep|yup)(?![A-Za-z])(?!\s*(?:\bor\b|\band\b|/))|(?:affirmative|absolutely|definitely|"
    r"certainly|of\s+course|indeed|correct)(?=\s*(?:[,.;]|$)))"
    r"|(?P<zh_no>不是的|不是|不对|没有|不存在|不|否|无)(?=[\s，,。.！!；;：:]|$)"
    r"|(?P<zh_yes>是的|是|有的|有|存在|对的|对)(?=[\s，,。.！!；;：:]|$))",
    re.I,
)


def yes_no(t: str) -> bool | None:
    """True / False when the reply opens with a yes / a no; None when it opens with neither."""
    m = _YES_NO.match(t)
    if m is None:
        return None
    return bool(m.group("yes") or m.group("zh_yes"))
