"""Table-driven tests of answer extraction: realistic replies of LLaVA / Qwen / InternVL / GPT-style models.

Each row: (reply, options, expected letter or None, expected rule or None for "any rule").
"""

from __future__ import annotations

import pytest

from cgeval.data.records import Item
from cgeval.scoring import extract_choice, extract_choice_with_rule
from cgeval.scoring.extract import LETTER_RULES, RULES

KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Stone"))
COVID = (("A", "Non-COVID"), ("B", "COVID"))
HEM = (("A", "Hemorrhage"), ("B", "No hemorrhage"))
BRAIN = (("A", "Glioma"), ("B", "Meningioma"), ("C", "No tumor"), ("D", "Pituitary"))
LUNG = (("A", "Squamous cell carcinoma"), ("B", "Adenocarcinoma"), ("C", "Large cell carcinoma"), ("D", "Normal"))
YESNO = (("A", "Yes"), ("B", "No"))
THREE = (("A", "Benign"), ("B", "Malignant"), ("C", "Normal"))

CASES = [
    # --- bare letters inside any markup
    ("B", KIDNEY, "B", "bare_letter"),
    ("B.", KIDNEY, "B", "bare_letter"),
    ("(b)", KIDNEY, "B", "bare_letter"),
    ("**B**", KIDNEY, "B", "bare_letter"),
    ("[B]", KIDNEY, "B", "bare_letter"),
    ("  'C'\n", KIDNEY, "C", "bare_letter"),
    ("`D`", KIDNEY, "D", "bare_letter"),
    ("<b>B</b>", KIDNEY, "B", "bare_letter"),
    ("\\boxed{B}", KIDNEY, "B", "boxed"),
    ("$\\boxed{\\text{C}}$", KIDNEY, "C", "boxed"),
    ("<answer>B</answer>", KIDNEY, "B", "answer_tag"),
    ("<answer> (C) Tumor </answer>", KIDNEY, "C", "answer_tag"),
    # --- end-of-turn and template tokens
    ("B</s>", KIDNEY, "B", "bare_letter"),
    ("C<|im_end|>", KIDNEY, "C", "bare_letter"),
    ("<|start_header_id|>assistant<|end_header_id|>\n\nA<|eot_id|>", KIDNEY, "A", "bare_letter"),
    ("<start_of_turn>model\nD<end_of_turn>", KIDNEY, "D", "bare_letter"),
    ("B</s><s>USER: What about this one? ASSISTANT: C", KIDNEY, "B", "bare_letter"),
    ("ASSISTANT: C", KIDNEY, "C", "bare_letter"),
    ("A<|endoftext|>", COVID, "A", "bare_letter"),
    # --- answer phrases
    ("Answer: B", KIDNEY, "B", "answer_phrase"),
    ("The answer is B.", KIDNEY, "B", "answer_phrase"),
    ("The correct answer is (D) Stone.", KIDNEY, "D", "answer_phrase"),
    ("Final answer: C", KIDNEY, "C", "final_answer"),
    ("**Answer:** **B. Cyst**", KIDNEY, "B", "answer_phrase"),
    ("### Final Answer\n\n**A**", KIDNEY, "A", "final_answer"),
    ("ANSWER: d", KIDNEY, "D", "answer_phrase"),
    ("The answer is option C.", KIDNEY, "C", "answer_phrase"),
    ("My answer: D", KIDNEY, "D", "answer_phrase"),
    ("Based on the image, the most likely answer is B, Meningioma.", BRAIN, "B", "answer_phrase"),
    ("Sure! The answer is **C. Tumor**", KIDNEY, "C", "answer_phrase"),
    ("The answer is a cyst.", KIDNEY, "B", "answer_phrase"),
    ("The answer is Adenocarcinoma.", LUNG, "B", "answer_phrase"),
    # --- Chinese
    ("答案是B", KIDNEY, "B", "chinese_phrase"),
    ("答案：C。", KIDNEY, "C", "chinese_phrase"),
    ("根据图像，正确答案为 A", KIDNEY, "A", "chinese_phrase"),
    ("选B", KIDNEY, "B", "chinese_choose"),
    ("我选择D，因为可以看到结石。", KIDNEY, "D", "chinese_choose"),
    ("答案是B或C", KIDNEY, None, "hedge"),
    # --- the option text instead of the letter
    ("Cyst", KIDNEY, "B", "option_text_exact"),
    ("cyst.", KIDNEY, "B", "option_text_exact"),
    ("NON-COVID", COVID, "A", "option_text_exact"),
    ("No hemorrhage", HEM, "B", "option_text_exact"),
    ("There is no hemorrhage.", HEM, "B", "option_text"),
    ("Hemorrhage is seen in the left parietal lobe.", HEM, "A", "option_text"),
    ("The scan shows no tumor.", BRAIN, "C", None),
    ("There is a large cell carcinoma in the right upper lobe.", LUNG, "C", None),
    ("Kidney stones are visible in the lower pole.", KIDNEY, "D", "option_text"),
    ("Yes.", YESNO, "A", "option_text_exact"),
    ("No, there is no evidence of that.", YESNO, "B", None),
    # --- letter plus text
    ("B. Cyst", KIDNEY, "B", "leading_letter"),
    ("(C) Tumor", KIDNEY, "C", "leading_letter"),
    ("D: Stone\n\nThe hyperdense focus in the collecting system is typical of a calculus.", KIDNEY, "D",
     "leading_letter"),
    ("B) Malignant - irregular margins.", THREE, "B", "leading_letter"),
    ("B because the lesion is round and fluid-filled.", KIDNEY, "B", "leading_letter"),
    ("Option B", KIDNEY, "B", "leading_letter"),
    ("B. Normal", KIDNEY, None, "conflict"),
    ("The answer is B (Tumor).", KIDNEY, None, "conflict"),
    # --- reasoning that mentions other options before committing
    ("A is unlikely because the kidney is not normal. C is also unlikely given the smooth wall. "
     "Therefore, the answer is B.", KIDNEY, "B", "answer_phrase"),
    ("Let's analyze each option:\nA. Normal - no, there is a lesion.\nB. Cyst - the lesion is round and "
     "hypodense.\nC. Tumor - there is no enhancement.\nD. Stone - no calcification.\nAnswer: B", KIDNEY, "B",
     "answer_phrase"),
    ("The answer is A. Wait, looking again at the margins, the final answer is C.", KIDNEY, "C", "final_answer"),
    ("Option A is incorrect and option D is incorrect. Option C is correct.", KIDNEY, "C", "letter_is_correct"),
    ("The lesion is not a cyst; it is a tumor.", KIDNEY, "C", None),
    ("This could be a cyst, but the solid enhancing component makes it most likely a tumor.", KIDNEY, "C",
     "commit_phrase"),
    ("I would choose option C.", KIDNEY, "C", "choose_phrase"),
    ("Based on the image, I think the answer is C", KIDNEY, "C", "answer_phrase"),
    ("The findings are consistent with glioma.", BRAIN, "A", "commit_phrase"),
    ("So, D.", KIDNEY, "D", "conclusion"),
    # --- <think> blocks
    ("<think>Maybe A... or C? The wall is thin.</think>B", KIDNEY, "B", "bare_letter"),
    ("<think>\nThe image shows a hypodense lesion. A is wrong. C is wrong.\n</think>\n\nThe answer is B.", KIDNEY, "B",
     "answer_phrase"),
    ("Okay, let me look. The options are A, C and D... </think>\n\nD", KIDNEY, "D", "bare_letter"),
    ("<think>the answer is C", KIDNEY, None, "unfinished_thinking"),
    ("◁think▷It is not normal.◁/think▷C", KIDNEY, "C", "bare_letter"),
    # --- JSON replies
    ('{"answer": "B"}', KIDNEY, "B", "json"),
    ('```json\n{"answer": "Cyst"}\n```', KIDNEY, "B", "json"),
    ('{"reasoning": "round hypodense lesion, A and C excluded", "Answer": "B. Cyst"}', KIDNEY, "B", "json"),
    ('Here is my answer: {"choice": "D"}', KIDNEY, "D", "json"),
    ('{"answer": "B or C"}', KIDNEY, None, "hedge"),
    # --- lower case
    ("i think it's b", KIDNEY, "B", "commit_phrase"),
    ("hmm... b", KIDNEY, "B", "trailing_letter"),
    ("i am not sure", KIDNEY, None, None),
    ("the answer is c", KIDNEY, "C", "answer_phrase"),
    ("a", KIDNEY, "A", "bare_letter"),
    # --- the article "A" and the pronoun "I"
    ("A cyst is present in the left kidney.", KIDNEY, "B", "option_text"),
    ("A normal kidney with no focal lesion.", KIDNEY, "A", None),
    ("A large mass is seen.", KIDNEY, None, "no_answer"),
    ("I think this shows a stone.", KIDNEY, "D", None),
    ("I see a round, well-defined lesion. Cyst.", KIDNEY, "B", None),
    ("A because the parenchyma is unremarkable.", KIDNEY, "A", "leading_letter"),
    ("A is correct.", KIDNEY, "A", "letter_is_correct"),
    # --- abstentions: refusals, hedges, several letters, letters not among the options, echoes
    ("I'm sorry, but I cannot determine the diagnosis from this image alone.", KIDNEY, None, "refusal"),
    ("I cannot provide a medical diagnosis. Please consult a radiologist.", KIDNEY, None, "refusal"),
    ("It is not possible to determine from this image whether it is a cyst or a tumor.", KIDNEY, None, None),
    ("None of the options are correct.", KIDNEY, None, "refusal"),
    ("B or C", KIDNEY, None, "hedge"),
    ("Answer: B or C", KIDNEY, None, "hedge"),
    ("The answer is either B or C.", KIDNEY, None, None),
    ("B/C", KIDNEY, None, "hedge"),
    ("B, C", KIDNEY, None, "hedge"),
    ("A and D", KIDNEY, None, None),
    ("It could be a cyst or a tumor.", KIDNEY, None, None),
    ("E", KIDNEY, None, "letter_not_an_option"),
    ("Answer: D", THREE, None, "letter_not_an_option"),
    ("C", COVID, None, "letter_not_an_option"),
    ("A. Normal\nB. Cyst\nC. Tumor\nD. Stone", KIDNEY, None, "option_echo"),
    ("A: Non-COVID\nB: COVID\nAnswer with the option's letter from the given choices directly.", COVID, None,
     "option_echo"),
    ("Is there evidence of COVID-19 in this lung CT scan?\nA. Non-COVID\nB. COVID", COVID, None, None),
    ("(A) Glioma (B) Meningioma (C) No tumor (D) Pituitary", BRAIN, None, "option_echo"),
    ("A: Normal\nB: Cyst\nC: Tumor\nD: Stone\nAnswer: C", KIDNEY, "C", "answer_phrase"),
    ("", KIDNEY, None, "empty"),
    ("   \n ", KIDNEY, None, "empty"),
    ("</s>", KIDNEY, None, "empty"),
    # --- negation: a mention is not a commitment
    ("No evidence of COVID.", COVID, None, None),
    ("The image shows COVID pneumonia with ground-glass opacities.", COVID, "B", None),
    ("There is no tumor; the lesion is a simple cyst.", KIDNEY, "B", None),
    ("Tumor is ruled out. Cyst.", KIDNEY, "B", None),
    ("The answer is not A, it's B.", KIDNEY, "B", None),
    ("There is no doubt this is a glioma.", BRAIN, "A", None),
    # --- more realistic long-form replies
    ("Looking at this CT scan, I can see a well-circumscribed hypodense lesion in the right kidney, which is "
     "characteristic of a renal cyst. The correct answer is:\n\nB. Cyst", KIDNEY, "B", "answer_phrase"),
    ("The image shows a kidney. Based on the options provided, the correct choice would be B. Cyst.", KIDNEY, "B",
     None),
    ("The answer is B. A cyst is a fluid-filled sac.", KIDNEY, "B", "answer_phrase"),
    ("B\n\nExplanation: A is wrong because the kidney has a lesion.", KIDNEY, "B", "leading_letter"),
    ("The correct option is B, not C.", KIDNEY, "B", "answer_phrase"),
    ('The correct answer is "B".', KIDNEY, "B", "answer_phrase"),
    ("Among the options, option B (Cyst) best describes the finding.", KIDNEY, "B", None),
    ("This is an MRI of the brain showing a pituitary adenoma.", BRAIN, "D", None),
    ("The MRI shows a mass; glioma and meningioma are both possible.", BRAIN, None, "several_options"),
    ("I'd go with D.", KIDNEY, "D", "choose_phrase"),
    ("The choices are A, B, C, D. I pick B.", KIDNEY, "B", "choose_phrase"),
    ("Both B and C are possible.", KIDNEY, None, None),
    ("The image likely shows a cyst or possibly a tumor.", KIDNEY, None, "hedge"),
    ("The answer is D.\n\nA. Normal\nB. Cyst\nC. Tumor\nD. Stone", KIDNEY, "D", "answer_phrase"),
    ("This CT image is consistent with COVID-19 infection.", COVID, "B", None),
    ("Non-COVID-19 pneumonia pattern.", COVID, "A", None),
    ("The fundus image is normal, there is no glaucoma.", (("A", "Glaucoma"), ("B", "Normal")), "B", None),
    ("The X-ray is abnormal.", (("A", "Normal"), ("B", "Abnormal")), "B", "option_text"),
    ("The image is a CT scan of the abdomen.", KIDNEY, None, "no_answer"),
    ("Is there evidence of a tumor?\nA. Normal\nB. Cyst\nC. Tumor\nD. Stone", KIDNEY, None, "option_echo"),
    ("A. Normal\nB. Cyst\nC. Tumor\nD. Stone\n\nC", KIDNEY, "C", "leading_letter"),
    # --- hedges after a commitment
    ("Hmm, it's either a or b.", KIDNEY, None, "hedge"),
    ("I think it might be B, but it could also be C.", KIDNEY, None, "hedge"),
    ("The answer is B, but it could also be C.", KIDNEY, None, "hedge"),
    ("The answer is B or possibly C.", KIDNEY, None, "hedge"),
    ("It's B. Alternatively, D.", KIDNEY, None, "hedge"),
    ("It is B; C is also possible.", KIDNEY, None, "hedge"),
    ("The answer is either a cyst or a tumor.", KIDNEY, None, "hedge"),
    ("It is B. It could also be a cyst.", KIDNEY, "B", "commit_phrase"),
    ("The answer is B, but I'm not entirely sure.", KIDNEY, "B", "answer_phrase"),
    # --- modality questions, where option texts are abbreviations
    ("This is an MRI image.", (("A", "CT"), ("B", "MRI"), ("C", "X-ray"), ("D", "Ultrasound")), "B", None),
    ("It is an X-ray image.", (("A", "CT"), ("B", "MRI"), ("C", "X-ray"), ("D", "Ultrasound")), "C", None),
    ("The image is a chest X-ray, not a CT.", (("A", "CT"), ("B", "MRI"), ("C", "X-ray"), ("D", "Ultrasound")), "C",
     None),
    # --- more forms
    ("(B) is correct", KIDNEY, "B", "letter_is_correct"),
    ("The most appropriate option would be (C).", KIDNEY, "C", "answer_phrase"),
    ("Correct answer - D", KIDNEY, "D", "answer_phrase"),
    ("Choice: b", KIDNEY, "B", "answer_phrase"),
    ("Meningioma (B)", BRAIN, "B", "letter_and_text"),
    ("The lesion is consistent with a glioma rather than a meningioma.", BRAIN, "A", "commit_phrase"),
    ("This is not a glioma.", BRAIN, None, "no_answer"),
    ("The scan is negative for COVID.", COVID, None, "no_answer"),
    ("There are no signs of COVID-19 pneumonia. The lungs are clear.", COVID, None, "no_answer"),
    ("B) Cyst\nC) Tumor", KIDNEY, None, "option_echo"),
    # --- hyphenated words and abbreviations are not option letters
    ("X-ray shows a stone.", KIDNEY, "D", None),
    ("The T2-weighted image shows a meningioma.", BRAIN, "B", None),
    ("B-cell lymphoma is not among the choices, so I would say Tumor.", KIDNEY, "C", None),
    # --- "a <option A's text>" is the article, not the letter A: negation decides it
    ("The kidney does not show a cyst.", (("A", "Cyst"), ("B", "Normal"), ("C", "Stone")), None, None),
    ("The ultrasound does not show a cyst; the kidney looks normal.", (("A", "Cyst"), ("B", "Normal"),
                                                                       ("C", "Stone")), "B", None),
    ("A cyst is not present; the kidney is normal.", (("A", "Cyst"), ("B", "Normal"), ("C", "Stone")), "B", None),
    ("This is not consistent with a glioma. Meningioma.", BRAIN, "B", None),
    ("A glioma is present.", BRAIN, "A", None),
    ("The answer is A Glioma", BRAIN, "A", None),
    # --- a first line that is the answer is not overridden by the explanation after it
    ("C. Stone\nReason: the image suggests normal parenchyma around an echogenic focus.", KIDNEY, None, "conflict"),
    ("D. Stone\nReason: the image suggests normal parenchyma around an echogenic focus.", KIDNEY, "D",
     "leading_letter"),
    ("B. Malignant\n\nThe lesion shows some features of a benign nevus, but the irregular border favors malignancy.",
     THREE, "B", "leading_letter"),
    ("B\n\nThe lesion shows irregular borders typical of benign.", THREE, "B", "leading_letter"),
    # --- a letter joined by a comma to another option's text; "nothing suggests X"
    ("Answer: A, pneumonia.", (("A", "Normal"), ("B", "Pneumonia")), None, "conflict"),
    ("Nothing here indicates pneumonia.", (("A", "Normal"), ("B", "Pneumonia")), None, None),
    ("There is nothing to suggest a glioma.", BRAIN, None, None),
]


@pytest.mark.parametrize("reply,options,letter,rule", CASES, ids=[repr(c[0])[:50] for c in CASES])
def test_extract_table(reply, options, letter, rule):
    got, got_rule = extract_choice_with_rule(reply, options)
    assert got == letter, (reply, got, got_rule)
    assert got_rule in RULES
    if rule is not None:
        assert got_rule == rule, (reply, got, got_rule)
    assert (got_rule in LETTER_RULES) == (got is not None)
    assert extract_choice(reply, options) == letter


@pytest.mark.parametrize("options", [dict(KIDNEY), list(KIDNEY), [list(p) for p in KIDNEY]])
def test_options_as_mapping_or_pairs(options):
    assert extract_choice("The answer is C", options) == "C"
    assert extract_choice("kidney stone", options) == "D"


def test_item_options_work_directly():
    item = Item("S01-1", 1, 1, "CT", "Kidney", "Disease", "x.png", "/x.png",
                "Q?\nA. Normal\nB. Cyst\nC. Tumor\nD. Stone\nAnswer.", "Q?", KIDNEY, "B", "Cyst")
    assert extract_choice("B. Cyst", item.options) == item.gold


def test_lower_case_option_keys():
    assert extract_choice("b", {"a": "Normal", "b": "Cyst"}) == "B"


def test_empty_options_abstain():
    assert extract_choice_with_rule("B", {}) == (None, "empty")
    assert extract_choice("B", []) is None


def test_none_and_non_string_reply():
    assert extract_choice_with_rule(None, KIDNEY) == (None, "empty")


def test_unknown_mode_is_an_error():
    with pytest.raises(ValueError, match="mode"):
        extract_choice_with_rule("B", KIDNEY, mode="fuzzy")


# --- lenient mode: adds fuzzy text matching and the answer inside an unfinished <think> block
LENIENT = [
    ("The lesion looks like a kidney stonee", KIDNEY, None, "D"),
    ("Adenocarcinomma", LUNG, None, "B"),
    ("menigioma", BRAIN, None, "B"),
    ("non covid", COVID, None, "A"),
    ("<think>the answer is C", KIDNEY, None, "C"),
    ("No evidence of COVID.", COVID, None, None),
    ("Probably something else entirely.", KIDNEY, None, None),
    ("B", KIDNEY, "B", "B"),
    ("B or C", KIDNEY, None, None),
]


@pytest.mark.parametrize("reply,options,strict,lenient", LENIENT, ids=[c[0][:40] for c in LENIENT])
def test_lenient(reply, options, strict, lenient):
    assert extract_choice(reply, options, mode="strict") == strict
    letter, rule = extract_choice_with_rule(reply, options, mode="lenient")
    assert letter == lenient
    if lenient is not None and strict is None:
        assert rule in ("fuzzy_text", "think_only")


def test_a_long_reply_is_read():
    """Speed: experiments/bench_extract.py."""
    reply = ("The kidney shows several features. " * 2000) + "The answer is B."
    assert extract_choice(reply, KIDNEY) == "B"
