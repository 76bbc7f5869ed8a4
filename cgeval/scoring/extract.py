"""Read the option letter a reply commits to, or None when it commits to no single option.

``extract_choice_with_rule(text, options, mode)`` returns ``(letter or None, rule)``: the letter a careful
human grader would take, and the name of the rule that decided (recorded in every prediction row, so that
*why* a letter was taken, or why none was, can be audited and counted).

How a reply is read, in order; the first step that decides wins:

1. Cleaning: ``<think>…</think>`` blocks (and a reasoning part closed by a stray ``</think>``) are dropped;
   chat-template tokens are removed and the reply is cut at the first end-of-turn token (``</s>``,
   ``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``, ...); an ``ASSISTANT:`` prefix is dropped.
2. The whole reply is one letter inside any markup: ``B``, ``(b)``, ``**B**``, ``[B]``, ``'B.'``.
3. JSON: ``{"answer": "B"}`` (also fenced, also embedded); the value is read by these same rules.
4. The whole reply is one option's text: ``Cyst``, ``no tumor``.
5. An echo of the option list (``A. x`` / ``B: y`` lines in order) is cut out; what is left is read on.
6. Explicit answers, by tier; within a tier the *last* decided one wins, so that reasoning which mentions
   other options before committing is read as the commitment:
   tier 1 ``\\boxed{B}``, ``<answer>B</answer>``, "Final answer: B";
   tier 2 "Answer: B", "The (correct) answer is B", "答案是B", "选B", "B is correct", "I would choose B";
   tier 3 "it's B", "this is a cyst", "most likely B", "consistent with glioma", "Therefore, B".
   The thing after a marker is a letter (``B``, ``(B)``, ``option B``, ``B. Cyst``) or, after an explicit
   separator, an option's text. A letter directly followed by another option's text ("B. Normal" where B
   is Cyst) is a conflict; "B or C", "B/C", "B and C" is a hedge; both abstain.
7. A reply that starts with a letter: "B. Cyst", "B) ...", "B because ...", "**B**\\n\\nExplanation".
8. Refusals ("I'm sorry", "cannot be determined", "none of the options", ...) abstain.
9. Weak evidence: option texts named in the reply (case-insensitive, whole words, longest first so that
   "No hemorrhage" is not also read as "Hemorrhage"; negated mentions such as "no evidence of COVID" or
   "tumor is ruled out" do not count) together with capital letters standing alone (not the article in
   "A cyst is present", not the pronoun in "I think"). Exactly one option -> that option; more -> abstain.
10. A lower-case letter standing alone at the very end ("hmm... b").
11. ``lenient`` only: fuzzy matching of option texts (difflib), and the answer inside a ``<think>`` block
    when nothing follows it.

A letter that is not among the item's options abstains (``letter_not_an_option``); nothing is ever forced
onto an option. The function is pure; patterns that depend on the options are cached per option set.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

Options = Mapping[str, str] | Sequence[tuple[str, str]]
MODES = ("strict", "lenient")

# Rules that give a letter.
LETTER_RULES = frozenset({
    "bare_letter", "json", "option_text_exact", "boxed", "answer_tag", "final_answer", "answer_phrase",
    "chinese_phrase", "chinese_choose", "letter_is_correct", "choose_phrase", "commit_phrase", "conclusion",
    "leading_letter", "option_text", "standalone_letter", "letter_and_text", "trailing_letter",
    "fuzzy_text", "think_only",
})
# Rules that give None: the reply commits to no single option of this item.
ABSTAIN_RULES = frozenset({
    "empty", "no_answer", "unfinished_thinking", "option_echo", "refusal", "hedge", "several_options",
    "conflict", "letter_not_an_option",
})
RULES = LETTER_RULES | ABSTAIN_RULES
# Internal outcomes meaning "nothing found here": an enclosing rule may go on looking elsewhere.
_UNDECIDED = frozenset({"empty", "no_answer", "unfinished_thinking", "option_echo"})

_MAX_DEPTH = 3
# Letters that look like option letters even when this item has fewer options (abstain rather than ignore).
_OPTION_RANGE = frozenset("ABCDEFGH")

# --------------------------------------------------------------------------------------------- cleaning
_THINK_BLOCK = re.compile(r"<(think|thinking|reasoning)>.*?</\1\s*>|◁think▷.*?◁/think▷", re.S | re.I)
_THINK_OPEN = re.compile(r"<(?:think|thinking|reasoning)>|◁think▷", re.I)
_THINK_CLOSE = re.compile(r"</(?:think|thinking|reasoning)\s*>|◁/think▷", re.I)
_ROLE_TOKENS = re.compile(
    r"<\|start_header_id\|>[^<>\n]{0,20}<\|end_header_id\|>"
    r"|<start_of_turn>[ \t]*(?:model|assistant|user)?"
    r"|<\|im_start\|>[ \t]*(?:assistant|user|system)?"
    r"|<\|(?:assistant|user|system|begin_of_text)\|>|<s>|<bos>|\[/?INST\]",
    re.I,
)
_END_TOKENS = re.compile(
    r"</s>|<eos>|<\|eot_id\|>|<\|im_end\|>|<end_of_turn>|<\|endoftext\|>|<\|end\|>|<\|eom_id\|>"
    r"|<\|end_of_text\|>|<｜end▁of▁sentence｜>",
    re.I,
)
_OTHER_SPECIAL = re.compile(r"<\|[^|<>\n]{1,40}\|>|<｜[^｜<>\n]{1,40}｜>")
_ROLE_PREFIX = re.compile(r"^\s*(?:assistant|gpt|model|bot)\s*:\s*", re.I)
_HTML_TAG = re.compile(r"</?(?:b|i|u|em|strong|p|br|span|div|code|pre|mark|sup|sub|h[1-6]|li|ul|ol)\s*/?>", re.I)
_MARKUP = " \t\r\n*_`'\"“”‘’[](){}<>.,:;!?|#~-=\\/「」『』【】（）。，：；！？"

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
_NEG_BEFORE = re.compile(
    r"\b(?:no|not|non|without|absence|absent|negative|rule|rules|ruled|ruling|exclude|excluded|excluding|"
    r"except|rather|instead|nor|neither|isn't|isnt|aren't|wasn't|doesn't|don't|cannot|can't|unlikely|"
    r"less|other|unlike|eliminate|eliminated|eliminating|lack|lacks|lacking|free|never|against|nothing|none)\b",
    re.I,
)
_NOT_NEGATION = re.compile(r"\bno\s+doubt\b|\bnot\s+only\b|\bno\s+question\b|\bcan(?:'|no)t\s+rule\s+out\b", re.I)
_NEG_AFTER = re.compile(
    r"^[\s).\]*_'\"]*(?:\([^()\n]{0,60}\)\s*)?(?:(?:,|and|or)\s*(?:option\s*)?[(\[]?(?-i:[A-Z])[)\]]?\s*)*"
    r"(?:is|are|was|were|seems|appears|looks|can\s+be|has\s+been|have\s+been)?\s*"
    r"(?:not|unlikely|less\s+likely|incorrect|wrong|ruled\s+out|excluded|eliminated|false|implausible|"
    r"inconsistent|absent|negative)\b",
    re.I,
)
_CLAUSE_BREAK = re.compile(r"[.;!?\n,:()]|\bbut\b|\bhowever\b|\bwhereas\b|\bwhile\b|\bthough\b", re.I)
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
    r"无法|不能确定|抱歉)",
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
# (name, pattern, text allowed after the marker even without a separator)
_TIER2 = [
    ("answer_phrase", _ANSWER_PHRASE, False),
    ("answer_phrase", _ANSWER_BARE, False),
    ("chinese_phrase", _CHINESE_PHRASE, False),
    ("chinese_choose", _CHINESE_CHOOSE, True),
    ("choose_phrase", _CHOOSE, True),
]
_TIER3 = [("commit_phrase", _COMMIT, True), ("conclusion", _CONCLUSION, True)]
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
_WORD = re.compile(r"[A-Za-z][A-Za-z'’-]*")


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


# --------------------------------------------------------------------------------------------- helpers
def _clean(text: str) -> tuple[str, str, bool]:
    """(reply without reasoning and template tokens, reasoning text, reasoning left unfinished)."""
    thinking = []
    for m in _THINK_BLOCK.finditer(text):
        thinking.append(m.group(0))
    t = _THINK_BLOCK.sub(" ", text)
    closes = list(_THINK_CLOSE.finditer(t))
    if closes:  # the opening tag was in the prompt: everything before the last close is reasoning
        thinking.append(t[: closes[-1].start()])
        t = t[closes[-1].end():]
    unfinished = False
    m = _THINK_OPEN.search(t)
    if m:
        thinking.append(t[m.end():])
        t = t[: m.start()]
        unfinished = True
    t = _ROLE_TOKENS.sub(" ", t)
    pieces = _END_TOKENS.split(t)
    t = ""
    for piece in pieces:
        piece = _OTHER_SPECIAL.sub(" ", piece)
        if piece.strip():
            t = piece
            break
    t = _ROLE_PREFIX.sub("", t).strip()
    reasoning = _OTHER_SPECIAL.sub(" ", _THINK_OPEN.sub(" ", _THINK_CLOSE.sub(" ", " ".join(thinking))))
    return t, reasoning.strip(), unfinished and not t


def _bare_letter(text: str) -> str | None:
    core = text.strip(_MARKUP)
    if len(core) == 1 and ("A" <= core <= "Z" or "a" <= core <= "z"):
        return core.upper()
    return None


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


def _negated_before(s: str, start: int, words: int) -> bool:
    pre = s[max(0, start - 80):start]
    cut = None
    for cut in _CLAUSE_BREAK.finditer(pre):
        pass
    if cut is not None:
        pre = pre[cut.end():]
    pre = _NOT_NEGATION.sub(" ", pre)
    tail = pre.split()[-words:]
    return bool(_NEG_BEFORE.search(" ".join(tail)))


def _negated_after(s: str, end: int) -> bool:
    return bool(_NEG_AFTER.match(s[end:end + 90]))


def _scan_texts(s: str, ctx: _Ctx) -> tuple[set[str], set[str], str]:
    """(letters named positively by text, letters named only negatively, s with matched spans blanked)."""
    positive: set[str] = set()
    negative: set[str] = set()
    masked = s
    for letter, _, pat in ctx.texts:
        hits = list(pat.finditer(masked))
        if not hits:
            continue
        for m in hits:
            if _negated_before(masked, m.start(), 4) or _negated_after(masked, m.end()):
                negative.add(letter)
            else:
                positive.add(letter)
        masked = pat.sub(lambda m: "\x00" * len(m.group(0)), masked)
    return positive, negative - positive, masked


def _in_range(letter: str, ctx: _Ctx) -> bool:
    return letter in ctx.opts or letter in _OPTION_RANGE


def _hedge_after(s: str, q: int, letter: str, ctx: _Ctx) -> bool:
    """Another option letter joined to this one by or/and/comma/slash: "B or C", "B (cyst) / C"."""
    m = re.compile(r"[\s.):\]*_`'\"]*").match(s, q)
    p = m.end()
    m = re.compile(r"\([^()\n]{0,80}\)[\s.):\]*_]*").match(s, p)
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
            p = re.compile(r"[\s.):\]*_]*").match(s, p).end()
    m = _HEDGE_CONJ.match(s, p)
    if not m or m.end() == p:
        return False
    tok = _letter_token(s, m.end(), ctx)
    return tok is not None and _in_range(tok[0], ctx) and tok[0] != letter


def _conflict(s: str, q: int, letter: str, ctx: _Ctx) -> bool:
    """The letter is followed directly by another option's text: "B. Normal" where B is Cyst."""
    p = re.compile(r"[ \t]*[.:,)\]*_\-—–]*[ \t]*[(*_]*[ \t]*").match(s, q).end()
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
    positive, _, _ = _scan_texts(span, ctx)
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
    for name, pat, text_ok in patterns:
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


def _options_named(seg: str, ctx: _Ctx) -> set[str]:
    """Option letters standing alone (either case) and option texts named in ``seg``."""
    found, _, masked = _scan_texts(seg, ctx)
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
    r = _tier(t, ctx, _TIER2, weak=False)
    correct_hits = list(_LETTER_IS_CORRECT.finditer(t))
    if correct_hits:
        m = correct_hits[-1]
        tier2_pos = -1
        if r is not None:
            tier2_pos = max((mm.start() for _, pat, _ in _TIER2 for mm in pat.finditer(t)), default=-1)
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
    by_text, _, masked = _scan_texts(t, ctx)
    letters: set[str] = set()
    for m in _UPPER_STANDALONE.finditer(masked):
        tok = _letter_token(masked, m.start(), ctx)
        if tok is None or not _in_range(tok[0], ctx):
            continue
        if _negated_before(masked, m.start(), 3) or _negated_after(masked, tok[1]):
            continue
        letters.add(tok[0])
    found = by_text | letters
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
    if letter is not None and letter not in ctx.opts:  # never a letter outside the item's options
        return None, "letter_not_an_option"
    return letter, rule


def extract_choice(text: str | None, options: Options, mode: str = "strict") -> str | None:
    """The option letter the reply commits to, or None (refusal, hedge, several letters, not an option)."""
    return extract_choice_with_rule(text, options, mode)[0]
