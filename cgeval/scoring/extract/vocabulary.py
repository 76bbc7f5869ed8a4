"""Other names of an option's text that a reply may use: standard abbreviations and expansions of findings and
modalities, British and American spellings, Roman, Arabic and spelled-out numerals, and yes / no in Chinese.

A name is used only for an option whose own text is in its group: "MR" names an option "MRI" (among the
options of a modality question it means nothing else) and never a finding. Names that are ordinary words in a
reply ("ALL", "MS") are left out. An abbreviation in capitals here is matched in capitals only ("DR", not the
"Dr." of a name; "US", not "us").
"""

from __future__ import annotations

# Each group: names of one thing. An option whose text (or a run of its words) is one of them is also named
# by the others. A group two options of one item both belong to is not used for that item.
SYNONYM_GROUPS: tuple[tuple[str, ...], ...] = (
    ("choroidal neovascularization", "CNV", "choroidal neovascular membrane"),
    ("diabetic macular edema", "DME"),
    ("diabetic retinopathy", "DR"),
    ("non-proliferative diabetic retinopathy", "NPDR", "nonproliferative diabetic retinopathy",
     "non-proliferative DR"),
    ("proliferative diabetic retinopathy", "PDR"),
    ("age-related macular degeneration", "AMD", "ARMD", "age related macular degeneration"),
    ("covid-19", "covid", "sars-cov-2"),
    ("tuberculosis", "TB"),
    ("normal", "no abnormality", "no abnormalities", "unremarkable", "within normal limits", "no finding",
     "no findings", "no acute findings", "no acute finding", "no acute abnormality", "no acute abnormalities"),
    ("computed tomography", "CT", "computed tomographic"),
    ("magnetic resonance imaging", "MRI", "magnetic resonance", "MR"),
    ("x-ray", "radiograph", "radiography", "xray"),
    ("ultrasound", "sonogram", "sonography", "sonographic", "ultrasonography", "ultrasonographic", "US"),
    ("optical coherence tomography", "OCT"),
    ("intracranial hemorrhage", "ICH"),
    ("chronic obstructive pulmonary disease", "COPD"),
    ("hepatocellular carcinoma", "HCC"),
    ("renal cell carcinoma", "RCC"),
    ("basal cell carcinoma", "BCC"),
    ("malignant", "malignancy"),
    ("yes", "是", "是的", "有", "对"),
    ("no", "否", "不是", "没有", "无", "不"),
)

# British spelling -> American; either names the option whichever the option uses. Longest first.
SPELLING: tuple[tuple[str, str], ...] = (
    ("orthopaed", "orthoped"), ("oesophag", "esophag"), ("ischaem", "ischem"), ("leukaem", "leukem"),
    ("paediat", "pediat"), ("isation", "ization"), ("tumour", "tumor"), ("colour", "color"), ("anaem", "anem"),
    ("oedem", "edem"), ("oestr", "estr"), ("haem", "hem"), ("naev", "nev"), ("foet", "fet"),
)

# A numeral qualifying another word of an option ("Grade II", "Stage 3"): its Roman, Arabic and spelled forms.
NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
ROMAN = ("", "i", "ii", "iii", "iv", "v", "vi", "vii", "viii", "ix", "x")


def numeral_value(word: str) -> int | None:
    """0-10 for "3", "III", "three" (any case); None for any other word."""
    w = word.lower()
    if w.isdecimal():  # not isdigit: "²" is a digit that int() refuses
        n = int(w)
        return n if n <= 10 and str(n) == w else None
    if w in NUMBER_WORDS:
        return NUMBER_WORDS.index(w)
    if w and w in ROMAN:
        return ROMAN.index(w)
    return None


def numeral_forms(n: int) -> tuple[str, ...]:
    return tuple(f for f in (str(n), ROMAN[n], NUMBER_WORDS[n]) if f)
