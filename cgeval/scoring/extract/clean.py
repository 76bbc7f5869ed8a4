"""Clean-up before reading: reasoning blocks, chat-template tokens, role prefixes; a reply that is one letter."""

from __future__ import annotations

import re

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

