"""One prompt for every model: the item's own Med-MAT text, through the model's own chat template.

A per-model override is opt-in (``prompt.template`` in the model's config) and its hash goes into the
run manifest, so cross-model comparisons stay fair and visible.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..data.records import Item

DEFAULT_TEMPLATE = "{prompt}"

# Item.meta key of an item without an image (a question put to a judge model): its image and image_path are not
# read, and every back end sends only its text.
TEXT_ONLY = "text_only"


def is_text_only(item: Item) -> bool:
    return bool(item.meta.get(TEXT_ONLY))


@dataclass(frozen=True)
class PromptTemplate:
    """``template`` may use {prompt} (the record's Question-choice, verbatim), {question} (the stem),
    {options} (one "A. text" line per option) and {letters} ("A, B, C")."""

    template: str = DEFAULT_TEMPLATE
    system: str | None = None

    def render(self, item: Item) -> str:
        return self.template.format(
            prompt=item.prompt,
            question=item.question,
            options="\n".join(f"{l}. {t}" for l, t in item.options),
            letters=", ".join(item.letters),
        )

    @property
    def is_default(self) -> bool:
        return self.template == DEFAULT_TEMPLATE and self.system is None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(f"{self.system!r}\x00{self.template}".encode()).hexdigest()[:16]

    def describe(self) -> dict:
        return {"template": self.template, "system": self.system, "sha256": self.sha256,
                "default": self.is_default}


def chat_messages(item: Item, template: PromptTemplate) -> list[dict]:
    """Messages in the transformers / OpenAI content-list style: the image first, then the text (the text alone for
    a text-only item)."""
    messages: list[dict] = []
    if template.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": template.system}]})
    image = [] if is_text_only(item) else [{"type": "image"}]
    messages.append({"role": "user", "content": [*image, {"type": "text", "text": template.render(item)}]})
    return messages
