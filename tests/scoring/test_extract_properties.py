"""Property tests of answer extraction (hypothesis)."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgeval.scoring.extract import LETTER_RULES, RULES, extract_choice, extract_choice_with_rule

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VOCAB = ["Normal", "Cyst", "Tumor", "Stone", "Glioma", "Meningioma", "No tumor", "Pituitary", "COVID", "Non-COVID",
         "Pneumonia", "Adenocarcinoma", "Large cell carcinoma", "Squamous cell carcinoma", "Benign", "Malignant",
         "Hemorrhage", "No hemorrhage", "Glaucoma", "Cataract", "Diabetic retinopathy", "Melanoma", "Nevus",
         "Effusion", "Cardiomegaly", "Atelectasis", "Fracture", "Edema", "Polyp", "Ulcer"]


@st.composite
def option_sets(draw, texts=st.sampled_from(VOCAB)):
    n = draw(st.integers(2, 4))
    labels = draw(st.lists(texts, min_size=n, max_size=n, unique_by=lambda s: s.lower()))
    return tuple(zip(string.ascii_uppercase, labels))


# --- never raises, never a letter outside the options, on arbitrary text and options -----------------------
arbitrary_options = st.one_of(
    st.dictionaries(st.text(max_size=3), st.text(max_size=30), max_size=6),
    st.lists(st.tuples(st.sampled_from(list("ABCDEFGHIJabcd")), st.text(max_size=30)), max_size=6),
    option_sets(),
    option_sets(st.text(min_size=0, max_size=20)),
)
FRAGMENTS = ["A", "B", "C", "D", "E", "I", "a", "b", "i", "(", ")", "[", "]", "**", ".", ",", ":", " ", "\n",
             "The answer is ", "Answer:", "Final answer:", "option ", " or ", " and ", "/", "not ", "no ",
             "<think>", "</think>", "</s>", "<|im_end|>", "\\boxed{", "}", "<answer>", "</answer>", "{", "\"answer\"",
             "\"", "答案是", "选", "it's ", "is correct", "I think ", "A cyst", "Cyst", "Tumor", "Normal", "No tumor",
             "COVID", "Non-COVID", "-19", "-", "I'm sorry", "```json", "```", "e.g.", "\x00", "◁think▷"]
fuzzy_text = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(FRAGMENTS), max_size=30).map("".join),
    st.lists(st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=5)), max_size=30).map("".join),
)


def _letters(options) -> set[str]:
    pairs = options.items() if isinstance(options, dict) else options
    return {str(k).strip().upper() for k, _ in pairs}


@SETTINGS
@given(text=fuzzy_text, options=arbitrary_options, mode=st.sampled_from(["strict", "lenient"]))
def test_never_raises_and_never_outside_options(text, options, mode):
    letter, rule = extract_choice_with_rule(text, options, mode=mode)
    assert rule in RULES
    assert (letter is not None) == (rule in LETTER_RULES)
    if letter is not None:
        assert letter in _letters(options)
    assert extract_choice_with_rule(text, options, mode=mode) == (letter, rule)  # pure


# --- a bare option letter inside random markup is that letter ----------------------------------------------
WRAPPERS = [("", ""), ("**", "**"), ("(", ")"), ("[", "]"), ("\\boxed{", "}"), ("<answer>", "</answer>"),
            ("`", "`"), ('"', '"'), ("'", "'"), ("_", "_"), ("<b>", "</b>"), ("$\\boxed{", "}$"),
            ("\\boxed{\\text{", "}}"), ("「", "」"), ("{", "}"), (" ", " "), ("\n", "\n")]
PREFIXES = ["", " ", "\n\n", "ASSISTANT: ", "<|im_start|>assistant\n", "<start_of_turn>model\n", "Answer: ",
            "The answer is ", "**Answer:** ", "Final answer: ", "答案是", "<think>Let me see: A? C?</think>",
            "<|start_header_id|>assistant<|end_header_id|>\n\n", "[/INST] ", "Correct answer: "]
SUFFIXES = ["", ".", ".\n", "</s>", "<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|endoftext|>", " ", "!", "\n",
            "<｜end▁of▁sentence｜>", ".</s><s>USER: and this one?"]


@SETTINGS
@given(options=option_sets(), data=st.data())
def test_bare_letter_in_markup(options, data):
    letter = data.draw(st.sampled_from([k for k, _ in options]))
    shown = data.draw(st.sampled_from([letter, letter.lower()]))
    wrappers = data.draw(st.lists(st.sampled_from(WRAPPERS), max_size=3))
    text = shown
    for left, right in wrappers:
        text = left + text + right
    text = data.draw(st.sampled_from(PREFIXES)) + text + data.draw(st.sampled_from(SUFFIXES))
    got, rule = extract_choice_with_rule(text, options)
    assert got == letter, (text, got, rule)
    assert extract_choice(text, options, mode="lenient") == letter


# --- the option list echoed back commits to nothing ---------------------------------------------------------
STEMS = ["", "What does this image show?", "Is there evidence of disease in this image?",
         "Which diagnosis best fits this scan?", "Classify this image."]
INSTRUCTIONS = ["", "Answer with the option's letter from the given choices directly."]
word = st.from_regex(r"[A-Z][a-z]{2,9}( [a-z]{3,9}){0,2}", fullmatch=True)


@SETTINGS
@given(options=st.one_of(option_sets(), option_sets(word)),
       style=st.sampled_from(["{L}. {T}", "{L}: {T}", "({L}) {T}", "{L}) {T}", "**{L}.** {T}", "- {L}. {T}"]),
       sep=st.sampled_from(["\n", "\n\n", " ", ", ", "; "]),
       stem=st.sampled_from(STEMS), instruction=st.sampled_from(INSTRUCTIONS),
       suffix=st.sampled_from(["", "</s>", "<|im_end|>"]))
def test_option_list_echo_abstains(options, style, sep, stem, instruction, suffix):
    listing = sep.join(style.format(L=letter, T=text) for letter, text in options)
    text = "\n".join(part for part in (stem, listing, instruction) if part) + suffix
    got, rule = extract_choice_with_rule(text, options)
    assert got is None, (text, got, rule)


# --- the option text alone is that option; an explicit answer after reasoning about other options wins ----
@SETTINGS
@given(options=st.one_of(option_sets(), option_sets(word)), data=st.data())
def test_option_text_alone(options, data):
    letter, label = data.draw(st.sampled_from(options))
    shown = data.draw(st.sampled_from([label, label.lower(), label.upper(), f"**{label}**", f"{label}.",
                                       f"\"{label}\"", f"The answer is {label}.", f"Answer: {label}"]))
    assert extract_choice(shown, options) == letter, shown


REASONING = ["Option {O} is unlikely because the margins are irregular.", "{O} does not fit the findings.",
             "We can rule out {O}.", "At first glance {O} seems possible, but the density is wrong.",
             "The lesion is not {T}.", "There is no evidence of {T}.", "Let me consider {O}."]


@SETTINGS
@given(options=option_sets(), data=st.data())
def test_commitment_after_reasoning(options, data):
    letter = data.draw(st.sampled_from([k for k, _ in options]))
    others = [(k, t) for k, t in options if k != letter]
    sentences = []
    for _ in range(data.draw(st.integers(0, 4))):
        o, t = data.draw(st.sampled_from(others))
        sentences.append(data.draw(st.sampled_from(REASONING)).format(O=o, T=t.lower()))
    final = data.draw(st.sampled_from(["The answer is {L}.", "Final answer: {L}", "Answer: ({L})",
                                       "Therefore, the correct option is {L}.", "\\boxed{{{L}}}",
                                       "<answer>{L}</answer>", "So I would choose {L}."]))
    text = " ".join(sentences + [final.format(L=letter)])
    assert extract_choice(text, options) == letter, text


@SETTINGS
@given(options=option_sets(), data=st.data())
def test_hedge_between_two_options_abstains(options, data):
    a, b = data.draw(st.lists(st.sampled_from([k for k, _ in options]), min_size=2, max_size=2, unique=True))
    form = data.draw(st.sampled_from(["{a} or {b}", "{a}/{b}", "The answer is {a} or {b}.", "Answer: {a}, {b}",
                                      "It is either {a} or {b}.", "{a} and {b}", "Both {a} and {b} are possible."]))
    text = form.format(a=a, b=b)
    assert extract_choice(text, options) is None, text


@SETTINGS
@given(options=option_sets(), letter=st.sampled_from(list("EFGH")),
       form=st.sampled_from(["{L}", "({L})", "The answer is {L}.", "Answer: {L}", "\\boxed{{{L}}}"]))
def test_letter_not_among_options_abstains(options, letter, form):
    assert extract_choice_with_rule(form.format(L=letter), options) == (None, "letter_not_an_option")
