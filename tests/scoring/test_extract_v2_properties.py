"""Property tests of the issue-14 rules (hypothesis): generated verdict lists, numerals, self-corrections, yes / no
and long replies, each with the expected letter known from how the reply was built."""

from __future__ import annotations

import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgeval.scoring import extract_choice, extract_choice_with_rule

from .test_extract_properties import option_sets, word
from .test_extract_v2 import filler

SETTINGS = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

POSITIVE = ["Yes", "yes", "Correct", "**Correct**", "✓", "✅", "Most likely", "most likely", "True", "正确",
            "This is the most likely diagnosis.", "Correct - the findings fit."]
NEGATIVE = ["No", "no", "Incorrect", "**Incorrect**", "✗", "❌", "Unlikely", "unlikely", "False", "Not consistent",
            "错误", "Less likely", "This is unlikely.", "No - the findings do not fit."]
ROW_STYLES = ["{L}. {T} - {V}", "{L}) {T}: {V}", "- **{L}. {T}**: {V}", "Option {L} ({T}): {V}", "{T}: {V}",
              "({L}) {T} — {V}", "* {L}: {V}", "{n}. {T} – {V}"]


def _listing(options, verdict_of, style, table):
    if table:
        rows = ["| Option | Text | Verdict |", "|---|---|---|"]
        rows += [f"| {letter} | {text} | {verdict_of(letter)} |" for letter, text in options]
        return "\n".join(rows)
    return "\n".join(style.format(L=letter, T=text, V=verdict_of(letter), n=i + 1)
                     for i, (letter, text) in enumerate(options))


@SETTINGS
@given(options=st.one_of(option_sets(), option_sets(word)), data=st.data())
def test_the_one_option_marked_positive_is_read(options, data):
    letter = data.draw(st.sampled_from([k for k, _ in options]))
    pos = data.draw(st.sampled_from(POSITIVE))
    neg = data.draw(st.lists(st.sampled_from(NEGATIVE), min_size=len(options), max_size=len(options)))
    table = data.draw(st.booleans())
    style = data.draw(st.sampled_from(ROW_STYLES))
    text = _listing(options, lambda k: pos if k == letter else neg[ord(k) - ord("A")], style, table)
    intro = data.draw(st.sampled_from(["", "Let's evaluate each option:\n", "To find the answer:\n"]))
    got, rule = extract_choice_with_rule(intro + text, options)
    assert (got, rule) == (letter, "option_verdicts"), (intro + text, got, rule)


@SETTINGS
@given(options=st.one_of(option_sets(), option_sets(word)), data=st.data())
def test_none_or_several_marked_is_no_commitment(options, data):
    letters = [k for k, _ in options]
    marked = set(data.draw(st.sampled_from([[], *[[a, b] for a in letters for b in letters if a < b]])))
    pos = data.draw(st.sampled_from(POSITIVE))
    neg = data.draw(st.sampled_from(NEGATIVE))
    style = data.draw(st.sampled_from(ROW_STYLES))
    text = _listing(options, lambda k: pos if k in marked else neg, style, data.draw(st.booleans()))
    got, rule = extract_choice_with_rule(text, options)
    assert got is None, (text, got, rule)
    assert rule == ("verdicts_several" if marked else "verdicts_none"), (text, rule)


ROMAN = ["I", "II", "III", "IV", "V"]
SPELLED = ["one", "two", "three", "four", "five"]


@SETTINGS
@given(noun=st.sampled_from(["Grade", "Stage", "Type", "Level", "Class"]), n_options=st.integers(2, 5),
       roman_options=st.booleans(), data=st.data())
def test_numerals_name_their_grade_and_never_a_neighbour(noun, n_options, roman_options, data):
    options = tuple((string.ascii_uppercase[i], f"{noun} {ROMAN[i] if roman_options else i + 1}")
                    for i in range(n_options))
    i = data.draw(st.integers(0, n_options - 1))
    form = data.draw(st.sampled_from([ROMAN[i], str(i + 1), SPELLED[i]]))
    shown = data.draw(st.sampled_from([noun.lower(), noun, noun.upper()]))
    reply = data.draw(st.sampled_from(["{g}", "This is {g}.", "Findings are consistent with {g} disease.",
                                       "The answer is {g}", "{g}, based on the features shown."])).format(
        g=f"{shown} {form}")
    assert extract_choice(reply, options) == options[i][0], reply


@SETTINGS
@given(noun=st.sampled_from(["Grade", "Stage"]), data=st.data())
def test_a_range_of_grades_is_no_commitment(noun, data):
    options = tuple((string.ascii_uppercase[i], f"{noun} {ROMAN[i]}") for i in range(4))
    i = data.draw(st.integers(0, 2))
    a, b = data.draw(st.sampled_from([(ROMAN[i], ROMAN[i + 1]), (str(i + 1), str(i + 2))]))
    sep = data.draw(st.sampled_from(["-", "–", "/", " or ", " to "]))
    reply = f"{noun} {a}{sep}{b}."
    assert extract_choice(reply, options) is None, reply


@SETTINGS
@given(options=option_sets(), data=st.data())
def test_the_revised_pick_counts(options, data):
    first, final = data.draw(st.lists(st.sampled_from([k for k, _ in options]), min_size=2, max_size=2, unique=True))
    first_form = data.draw(st.sampled_from(["{L}", "The answer is {L}.", "I'd go with {L}.", "Answer: {L}", "{L}..."]))
    marker = data.draw(st.sampled_from(["Wait, actually", "Wait, no -", "Hmm, actually no,", "On second thought,",
                                        "Correction:", "Actually, no:", "不对，"]))
    final_form = data.draw(st.sampled_from(["{L}.", "it's {L}.", "the answer is {L}.", "{L} is correct.",
                                            "I would choose {L}."]))
    reply = f"{first_form.format(L=first)} {marker} {final_form.format(L=final)}"
    assert extract_choice(reply, options) == final, reply


YES = ["Yes", "Yes.", "Yes, definitely.", "Yep", "Yeah, there is.", "Definitely.", "Absolutely, it is present.",
       "Of course.", "是", "是的", "是的，可见病灶。", "有", "有。", "对"]
NO = ["No", "No.", "Nope.", "Nah.", "No, there is none.", "Absolutely not.", "Definitely not, it is clear.",
      "Not at all.", "Of course not.", "Negative.", "否", "不是", "不是。", "没有", "没有，未见异常。", "无"]


@SETTINGS
@given(answer=st.sampled_from([(y, True) for y in YES] + [(n, False) for n in NO]),
       order=st.sampled_from([(("A", "Yes"), ("B", "No")), (("A", "No"), ("B", "Yes"))]),
       long=st.booleans())
def test_yes_no_in_english_and_chinese(answer, order, long):
    reply, is_yes = answer
    if long:
        reply = reply + "\n\n" + filler()
    want = next(letter for letter, text in order if text == ("Yes" if is_yes else "No"))
    assert extract_choice(reply, order) == want, reply[:80]


FORMS = ["The answer is {L}.", "Final answer: {L}", "\\boxed{{{L}}}", "答案是{L}。", "Therefore, {L}.",
         "{L} is correct.", "That leaves {L}."]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(options=option_sets(), data=st.data())
def test_an_answer_buried_after_long_reasoning_is_read(options, data):
    letter = data.draw(st.sampled_from([k for k, _ in options]))
    reply = filler(data.draw(st.integers(2000, 6000))) + "\n\n" + data.draw(st.sampled_from(FORMS)).format(L=letter)
    assert extract_choice(reply, options) == letter, reply[-60:]
