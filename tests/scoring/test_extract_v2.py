"""Answer extraction on the replies real models write beyond the short forms of test_extract.py: per-option
verdicts, hedged mentions, elimination and self-corrections, synonyms and expansions of clinical findings,
Roman and Arabic numerals, yes/no in Chinese and emphatic forms, and every form buried in a long reply.

Each row: (reply, options, expected letter or None, expected rule or None for "any rule"). The expected letter is
what a careful human grader takes; None where the reply commits to no single option.
"""

from __future__ import annotations

import pytest

from cgeval.scoring import extract_choice, extract_choice_with_rule
from cgeval.scoring.extract import ABSTAIN_RULES, LETTER_RULES, RULES

from .test_extract import BRAIN, COVID, KIDNEY, LENIENT, LUNG, THREE, YESNO
from .test_extract import CASES as SHORT_CASES

OCT = (("A", "CNV"), ("B", "DME"), ("C", "Drusen"), ("D", "Normal"))
FUNDUS = (("A", "Diabetic retinopathy"), ("B", "Glaucoma"), ("C", "Cataract"), ("D", "Normal"))
MACULA = (("A", "Age-related macular degeneration"), ("B", "Diabetic retinopathy"), ("C", "Normal"))
COVID3 = (("A", "COVID-19"), ("B", "Viral pneumonia"), ("C", "Normal"))
BRAIN_UK = (("A", "Glioma"), ("B", "Meningioma"), ("C", "No tumour"), ("D", "Pituitary tumour"))
CHEST = (("A", "Pneumothorax"), ("B", "Pleural effusion"), ("C", "Cardiomegaly"), ("D", "No finding"))
MODALITY = (("A", "CT"), ("B", "MRI"), ("C", "X-ray"), ("D", "Ultrasound"))
TB = (("A", "Tuberculosis"), ("B", "Normal"))
DR_GRADE = (("A", "No DR"), ("B", "Mild NPDR"), ("C", "Moderate NPDR"), ("D", "Severe NPDR"), ("E", "Proliferative DR"))
GRADE = (("A", "Grade I"), ("B", "Grade II"), ("C", "Grade III"), ("D", "Grade IV"))
STAGE = (("A", "Stage 1"), ("B", "Stage 2"), ("C", "Stage 3"), ("D", "Stage 4"))
KL = (("A", "Grade 0"), ("B", "Grade 1"), ("C", "Grade 2"), ("D", "Grade 3"), ("E", "Grade 4"))
LEVEL = (("A", "Level 1"), ("B", "Level 10"))

VERDICTS = [
    ("A. Normal - No\nB. Cyst - Yes\nC. Tumor - No\nD. Stone - No", KIDNEY, "B", "option_verdicts"),
    ("Let's evaluate each option:\n- A (Normal): Incorrect. There is a clear focal lesion.\n- B (Cyst): Correct. The "
     "lesion is round, anechoic and thin-walled.\n- C (Tumor): Incorrect. No solid component.\n- D (Stone): "
     "Incorrect. No echogenic focus with shadowing.", KIDNEY, "B", "option_verdicts"),
    ("| Option | Diagnosis | Assessment |\n|---|---|---|\n| A | Glioma | Unlikely |\n| B | Meningioma | Likely |\n"
     "| C | No tumor | Unlikely |\n| D | Pituitary | Unlikely |", BRAIN, "B", "option_verdicts"),
    ("**A. Normal**: ✗\n**B. Cyst**: ✓\n**C. Tumor**: ✗\n**D. Stone**: ✗", KIDNEY, "B", "option_verdicts"),
    ("Option A: unlikely\nOption B: unlikely\nOption C: likely\nOption D: unlikely", KIDNEY, "C", "option_verdicts"),
    ("1. Non-COVID: incorrect, ground-glass opacities are present.\n2. COVID: correct, bilateral peripheral GGOs.",
     COVID, "B", "option_verdicts"),
    ("Benign: unlikely, the borders are irregular.\nMalignant: likely, asymmetric pigment network.\nNormal: no.",
     THREE, "B", "option_verdicts"),
    ("| Choice | Verdict |\n| --- | --- |\n| (A) Normal | ❌ |\n| (B) Cyst | ❌ |\n| (C) Tumor | ✅ |\n"
     "| (D) Stone | ❌ |", KIDNEY, "C", "option_verdicts"),
    ("A) Squamous cell carcinoma - less likely\nB) Adenocarcinoma - most likely, peripheral location and glandular "
     "pattern\nC) Large cell carcinoma - less likely\nD) Normal - no", LUNG, "B", "option_verdicts"),
    ("Option A (Glioma) – this is unlikely because the lesion is extra-axial.\nOption B (Meningioma) – this is the "
     "most likely diagnosis given the dural tail.\nOption C (No tumor) – incorrect, there is a clear mass.\n"
     "Option D (Pituitary) – unlikely, the sella is normal.", BRAIN, "B", "option_verdicts"),
    ("A：错误\nB：正确\nC：错误\nD：错误", KIDNEY, "B", "option_verdicts"),
    ("A. Normal - No, there is a lesion.\nB. Cyst - Yes, it is anechoic with posterior enhancement.", KIDNEY, "B",
     "option_verdicts"),
    ("(A) Normal: No\n(B) Cyst: No\n(C) Tumor: Yes\n(D) Stone: No", KIDNEY, "C", "option_verdicts"),
    ("- Glioma: ✗ (no infiltrative margins)\n- Meningioma: ✗\n- No tumor: ✓ (normal brain parenchyma)\n"
     "- Pituitary: ✗", BRAIN, "C", "option_verdicts"),
    ("**A. Benign** — **Incorrect**\n**B. Malignant** — **Correct**\n**C. Normal** — **Incorrect**", THREE, "B",
     "option_verdicts"),
    ("A — True\nB — False\nC — False", THREE, "A", "option_verdicts"),
    ("To find the answer:\nA. Normal - unlikely\nB. Cyst - unlikely\nC. Tumor - likely\nD. Stone - unlikely", KIDNEY,
     "C", "option_verdicts"),
    ("Let me go through the choices.\n* A: not consistent, the mass enhances.\n* B: not consistent.\n"
     "* C: consistent with the enhancing solid mass.\n* D: not consistent.", KIDNEY, "C", "option_verdicts"),
    ("| Option | Verdict | Reason |\n|---|---|---|\n| A. Normal | ✗ | lesion present |\n| B. Cyst | ✓ | anechoic |\n"
     "| C. Tumor | ✗ | no solid part |\n| D. Stone | ✗ | no shadowing |", KIDNEY, "B", "option_verdicts"),
    ("| Option | Text | Fits? |\n|---|---|---|\n| A | Glioma | No |\n| B | Meningioma | No |\n| C | No tumor | Yes |\n"
     "| D | Pituitary | No |", BRAIN, "C", "option_verdicts"),
    ("Glioma: no\nMeningioma: no\nNo tumor: yes\nPituitary: no", BRAIN, "C", "option_verdicts"),
    ("1. **Normal** – **No**\n2. **Cyst** – **Yes**\n3. **Tumor** – **No**\n4. **Stone** – **No**", KIDNEY, "B",
     "option_verdicts"),
    ("A) Normal → ✗\nB) Cyst → ✗\nC) Tumor → ✗\nD) Stone → ✓", KIDNEY, "D", "option_verdicts"),
    ("A. Normal – there is a focal lesion, so this option is incorrect.\nB. Cyst – the lesion is anechoic and "
     "thin-walled, which is consistent.\nC. Tumor – no solid component, so it is unlikely.\nD. Stone – no "
     "shadowing, this is incorrect.", KIDNEY, "B", "option_verdicts"),
    ("A: unlikely\nB: likely\nC: unlikely\nD: unlikely\n\nWait, actually C fits better: the wall enhances.", KIDNEY,
     "C", "self_correction"),
    ("A: unlikely\nB: most likely\nC: unlikely\nD: unlikely\n\nThe lesion is anechoic with a thin wall.", KIDNEY,
     "B", "option_verdicts"),
    # lists that mark nothing are not verdicts
    ("Cyst: a fluid-filled sac, usually benign.\nTumor: a solid mass that may be malignant.\nStone: a calcified "
     "deposit.", KIDNEY, None, None),
    ("A. Normal: right kidney smaller than the left.\nB. Cyst: not seen.\nC. Tumor: not seen.\nD. Stone: no.", KIDNEY,
     None, "verdicts_none"),
    ("Findings:\n- Kidney: enlarged\n- Cortex: thinned\n- Collecting system: not dilated\nImpression: tumor", KIDNEY,
     "C", None),
    ("A) Normal: a focal lesion is present - unlikely.\nB) Cyst: anechoic, thin wall - likely.\nC) Tumor: no solid "
     "part - unlikely.\nD) Stone: no shadowing - unlikely.", KIDNEY, "B", "option_verdicts"),
    ("A: No. B: No. C: Yes. D: No.", KIDNEY, "C", "option_verdicts"),
    ("Option A: incorrect; Option B: correct; Option C: incorrect; Option D: incorrect.", KIDNEY, "B",
     "option_verdicts"),
    ("| Diagnosis | Likelihood |\n|---|---|\n| Normal | Low |\n| Cyst | Moderate |\n| Tumor | High |\n| Stone | Low |",
     KIDNEY, "C", "option_verdicts"),
    ("| Diagnosis | Likelihood |\n|---|---|\n| Normal | Low |\n| Cyst | High |\n| Tumor | High |\n| Stone | Low |",
     KIDNEY, None, "verdicts_several"),
    # an explicit answer after the list decides
    ("A. Normal - no\nB. Cyst - yes\nC. Tumor - no\nD. Stone - no\n\nAnswer: B", KIDNEY, "B", "answer_phrase"),
    # none marked, or several: no commitment
    ("A. Normal - No\nB. Cyst - No\nC. Tumor - No\nD. Stone - No", KIDNEY, None, "verdicts_none"),
    ("Option A: unlikely\nOption B: unlikely\nOption C: unlikely\nOption D: unlikely", KIDNEY, None, "verdicts_none"),
    ("A. Glioma — possible\nB. Meningioma — possible\nC. No tumor — unlikely\nD. Pituitary — unlikely", BRAIN, None,
     "verdicts_several"),
    ("A: likely\nB: likely\nC: unlikely\nD: unlikely", KIDNEY, None, "verdicts_several"),
    ("| Option | Likely? |\n|---|---|\n| A. Normal | No |\n| B. Cyst | Yes |\n| C. Tumor | Yes |\n| D. Stone | No |",
     KIDNEY, None, "verdicts_several"),
    ("- Benign: likely\n- Malignant: possible\n- Normal: unlikely", THREE, None, "verdicts_several"),
]

HEDGED = [
    ("A tumor cannot be ruled out.", KIDNEY, None, "hedged_mention"),
    ("Malignancy is not excluded; clinical correlation is recommended.", THREE, None, None),
    ("Malignant transformation cannot be excluded; clinical correlation is recommended.", THREE, None,
     "hedged_mention"),
    ("Findings may represent a cyst or a tumor.", KIDNEY, None, None),
    ("The differential diagnosis includes glioma and meningioma.", BRAIN, None, None),
    ("Glioma versus meningioma.", BRAIN, None, None),
    ("COVID pneumonia cannot be excluded.", COVID, None, "hedged_mention"),
    ("Cannot rule out pleural effusion.", CHEST, None, "hedged_mention"),
    ("We can't exclude a small pneumothorax on this view.", CHEST, None, "hedged_mention"),
    ("The lesion could represent either a meningioma or a pituitary tumor; further imaging is recommended.", BRAIN,
     None, None),
    ("Differential: benign vs malignant.", THREE, None, None),
    ("Pneumothorax is not entirely ruled out on this view.", CHEST, None, None),
    ("A small pleural effusion is not ruled out.", CHEST, None, None),
    ("There is a possibility of COVID, but non-COVID pneumonia is also possible.", COVID, None, None),
    ("Both cyst and tumor remain possibilities.", KIDNEY, None, None),
    ("A small stone cannot be excluded, but the kidney otherwise appears normal.", KIDNEY, None, None),
    ("No definite pneumothorax, though a small apical one cannot be ruled out.", CHEST, None, None),
    ("The appearance raises the possibility of tuberculosis.", TB, None, "hedged_mention"),
    ("Glioma or meningioma are both possible here.", BRAIN, None, None),
    ("Possible glioma; meningioma is also a consideration.", BRAIN, None, None),
    ("Tuberculosis should be considered.", TB, None, "hedged_mention"),
    ("Cannot exclude malignancy.", THREE, None, "hedged_mention"),
    ("Tuberculosis is a possibility.", TB, None, "hedged_mention"),
    ("COVID-19 remains in the differential.", COVID3, None, "hedged_mention"),
    ("We cannot rule out a stone.", KIDNEY, None, "hedged_mention"),
    ("A tumor is less likely, but cannot be excluded.", KIDNEY, None, None),
    ("Intracranial hemorrhage should be excluded with a follow-up scan.", (("A", "Intracranial hemorrhage"),
                                                                         ("B", "Normal")), None, "hedged_mention"),
    ("Difficult to tell from this image; probably a cyst.", KIDNEY, None, "hedge"),
    ("Not sure, maybe it is a meningioma.", BRAIN, None, "hedge"),
    # a commitment with a caveat about another option is still a commitment
    ("The findings favor meningioma, although a glioma cannot be excluded.", BRAIN, "B", None),
    ("Most likely a simple cyst; a tumor cannot be entirely ruled out.", KIDNEY, "B", None),
]

REASONING = [
    # elimination: every option named before the pick
    ("Let me think step by step. The lesion is extra-axial, so glioma (A) is unlikely. There is a clear mass, so C "
     "(no tumor) is excluded. The sella is normal, so pituitary (D) is unlikely. That leaves meningioma.", BRAIN, "B",
     None),
    ("A is wrong because the kidney has a lesion. D is wrong because there is no shadowing. Between B and C, the "
     "lesion has no solid component, so B.", KIDNEY, "B", None),
    ("Step 1: Identify the modality - ultrasound.\nStep 2: Describe the lesion - anechoic, thin-walled, posterior "
     "acoustic enhancement.\nStep 3: Compare with the options: A (Normal) no; C (Tumor) no solid tissue; D (Stone) no "
     "shadowing.\nStep 4: Conclusion: B.", KIDNEY, "B", None),
    ("Elimination: A - no (lesion present). C - no (no solid part). D - no (no shadowing). Remaining: B.", KIDNEY, "B",
     None),
    ("By process of elimination, the answer must be B.", KIDNEY, "B", None),
    ("Glioma is intra-axial and infiltrative, which does not fit. A pituitary tumor would sit in the sella, which is "
     "empty here. The brain is clearly not free of a mass. The only remaining option is meningioma.", BRAIN, "B",
     None),
    ("Let me think step by step.\n1. The mass is intra-axial.\n2. It has infiltrative margins and surrounding "
     "edema.\n3. These features are typical of a glioma.\nSo the answer is A.", BRAIN, "A", None),
    # self-corrections: the final pick counts
    ("B... wait, actually C.", KIDNEY, "C", "self_correction"),
    ("The answer is B. Wait, no - looking at the enhancement pattern, it's C.", KIDNEY, "C", "self_correction"),
    ("I initially thought this was a cyst, but on second thought the enhancing nodule means it's a tumor.", KIDNEY,
     "C", None),
    ("Answer: A\n\nHmm, let me reconsider. The hyperechoic focus with acoustic shadowing is typical of a calculus. "
     "Correction: the answer is D.", KIDNEY, "D", None),
    ("C. Tumor\n\nActually, no. Looking again, the wall is thin and there is no enhancement, so this is a cyst. Final "
     "answer: B", KIDNEY, "B", "final_answer"),
    ("It's B. No wait, it's D.", KIDNEY, "D", None),
    ("答案是B。不对，应该是C。", KIDNEY, "C", None),
    ("I'd go with B. Hmm, actually no - C.", KIDNEY, "C", "self_correction"),
    ("The correct answer is A. Wait, that's wrong. The correct answer is B.", KIDNEY, "B", None),
    ("B\n\nWait, actually C is better because the lesion enhances.", KIDNEY, "C", "self_correction"),
    ("<think>Glioma? meningioma? The dural tail suggests meningioma.</think>\n\nWait, the lesion is intra-axial. "
     "Answer: A", BRAIN, "A", None),
    ("Meningioma. On second thought, the lesion is intra-axial, so it is a glioma.", BRAIN, "A", None),
    ("Actually, this is a classic meningioma.", BRAIN, "B", "commit_phrase"),
    ("A. Normal\n\nOn second thought, there is a small echogenic focus with shadowing: a stone. Answer: D", KIDNEY, "D",
     None),
    ("C looks right at first, but on second thought the margins are regular and thin: B.", KIDNEY, "B",
     "self_correction"),
    ("Considering the thin wall and the absence of enhancement, my pick: B.", KIDNEY, "B", None),
    ("Thin wall, no enhancement, posterior acoustic enhancement - B", KIDNEY, "B", "conclusion"),
    ("My first impression was a glioma, but actually the broad dural base points to a meningioma.", BRAIN, "B",
     "self_correction"),
    ("Looks cystic. Wait, there is an enhancing mural nodule, which means tumor.", KIDNEY, "C", None),
    # a remark after the pick that is no revision keeps the pick
    ("The answer is B. Actually, tumors are rare in this age group and the wall is thin.", KIDNEY, "B", None),
    ("B. Cyst. Wait, let me double-check: round, anechoic, thin wall. Yes, B.", KIDNEY, "B", None),
    ("The answer is C. Actually, let me explain: the mass enhances avidly.", KIDNEY, "C", "answer_phrase"),
    ("B\n\nWait, is it? Yes: the wall is thin, so B is right.", KIDNEY, "B", None),
    ("Let me think. The mass has a dural tail and is extra-axial, consistent with meningioma", BRAIN, "B",
     "commit_phrase"),
    ("Let me think. The mass has a dural tail, so the answer is B", BRAIN, "B", "answer_phrase"),
    # a general remark naming another option is not told apart from a finding: no letter rather than a wrong one
    ("The lesion is a simple cyst. Actually, tumors of this size are rare in children.", KIDNEY, None,
     "several_options"),
    ("The answer is B. Wait, I should check the tumor margins once more. They are smooth.", KIDNEY, "B",
     "answer_phrase"),
    # cut off before any pick: no commitment
    ("Let's analyze each option step by step.\n\nA. Normal: The kidney shows a focal lesion, so this is unlikely.\n"
     "B. Cyst: The lesion is anechoic with", KIDNEY, None, "unfinished_reasoning"),
    ("Okay, so the image shows bilateral ground-glass opacities in a peripheral distribution. This pattern is "
     "commonly seen in COVID-19, but it can also be seen in other viral infections. Let me consider the", COVID, None,
     "unfinished_reasoning"),
    ("First, the modality is CT. Second, the lesion is hypodense and measures about 3 cm. The wall looks thin, "
     "which would suggest a cyst. However, I need to check the density and whether there is any enhancement after",
     KIDNEY, None, "unfinished_reasoning"),
    ("Let me think about this. Glioma usually appears as an infiltrative intra-axial mass. Meningioma is extra-axial "
     "with a dural tail. Pituitary tumors arise in the sella. Here the mass", BRAIN, None, "unfinished_reasoning"),
    ("To determine the diagnosis, I'll first look at the lesion's location. The mass is extra-axial and "
     "broad-based along the dura, which is typical of", BRAIN, None, None),
    ("Step 1: The image is an axial T1 post-contrast MRI.\nStep 2: There is an extra-axial enhancing mass with a "
     "dural tail, suggesting", BRAIN, None, "unfinished_reasoning"),
    ("Alright, let's look at the options. Glioma is possible given the location, and", BRAIN, None,
     "unfinished_reasoning"),
    ("<think>The lesion is round and anechoic. Probably a cyst, but let me check the wall", KIDNEY, None,
     "unfinished_thinking"),
]

SYNONYMS = [
    ("The OCT shows subretinal fluid and a fibrovascular pigment epithelial detachment, consistent with choroidal "
     "neovascularization.", OCT, "A", None),
    ("There is no evidence of choroidal neovascularization; multiple drusen are seen beneath the RPE.", OCT, "C", None),
    ("Findings are consistent with diabetic macular edema.", OCT, "B", None),
    ("Diabetic macular oedema with intraretinal cysts.", OCT, "B", None),
    ("Choroidal neovascularisation.", OCT, "A", None),
    ("No CNV or DME. The retinal layers are intact.", OCT, None, None),
    ("The macula appears normal with no abnormality detected.", OCT, "D", None),
    ("There is no CNV, but drusen are present.", OCT, "C", None),
    ("Not consistent with DME; drusen noted.", OCT, "C", None),
    ("Without evidence of CNV or drusen, the OCT is within normal limits.", OCT, "D", None),
    ("Fundus photograph shows microaneurysms and dot-blot hemorrhages, consistent with DR.", FUNDUS, "A", None),
    ("No signs of DR. The fundus is unremarkable.", FUNDUS, "D", None),
    ("There is no diabetic retinopathy; the lens opacity indicates a cataract.", FUNDUS, "C", None),
    ("Absence of diabetic retinopathy.", FUNDUS, None, None),
    ("DR is absent.", FUNDUS, None, None),
    ("The patient's Dr. Smith ordered this fundus photograph; the disc is cupped.", FUNDUS, None, None),
    ("Drusen and geographic atrophy at the macula: AMD.", MACULA, "A", None),
    ("Findings suggest ARMD.", MACULA, "A", None),
    ("Age related macular degeneration with soft drusen.", MACULA, "A", None),
    ("No features of AMD or DR are seen; this is a normal fundus.", MACULA, "C", None),
    ("Bilateral peripheral ground-glass opacities typical of COVID pneumonia.", COVID3, "A", None),
    ("Chest CT shows SARS-CoV-2 pneumonia.", COVID3, "A", None),
    ("Negative for COVID-19.", COVID3, None, None),
    ("Unremarkable chest radiograph.", COVID3, "C", None),
    ("There is no tumor in this MRI.", BRAIN_UK, "C", None),
    ("A pituitary tumor (macroadenoma) is seen.", BRAIN_UK, "D", None),
    ("No tumour is visible.", BRAIN, "C", None),
    ("Tumour ruled out; kidney normal.", KIDNEY, "A", None),
    ("Blunting of the costophrenic angle indicates a pleural effusion.", CHEST, "B", None),
    ("Enlarged cardiac silhouette (cardiomegaly), no pleural effusion, no pneumothorax.", CHEST, "C", None),
    ("No pneumothorax, pleural effusion or cardiomegaly is seen.", CHEST, None, None),
    ("There is no pneumothorax, effusion, or cardiomegaly.", CHEST, None, None),
    ("No pleural effusion. There is a large right pneumothorax.", CHEST, "A", None),
    ("Normal chest X-ray.", CHEST, "D", None),
    ("This is a computed tomography (CT) scan of the abdomen.", MODALITY, "A", None),
    ("Magnetic resonance image of the brain, T2-weighted.", MODALITY, "B", None),
    ("This is a plain radiograph of the chest.", MODALITY, "C", None),
    ("This is a sonogram of the liver.", MODALITY, "D", None),
    ("This image was taken with us in mind: a CT of the abdomen.", MODALITY, "A", None),
    ("Unremarkable.", COVID3, "C", "option_text_exact"),
    ("Findings of SARS-CoV-2 infection are absent.", COVID3, None, None),
    ("The fundus is within normal limits.", FUNDUS, "D", None),
    ("Diabetic retinopathy is not seen; there is glaucomatous cupping.", FUNDUS, None, None),
    ("There is an ICH in the left basal ganglia.", (("A", "Intracranial hemorrhage"), ("B", "Normal")), "A", None),
    ("Acute intracranial haemorrhage.", (("A", "Intracranial hemorrhage"), ("B", "Normal")), "A", None),
    ("Haemorrhage is seen in the left parietal lobe.", (("A", "Hemorrhage"), ("B", "No hemorrhage")), "A", None),
    ("No haemorrhage.", (("A", "Hemorrhage"), ("B", "No hemorrhage")), "B", "option_text_exact"),
    ("AMD is unlikely; these are diabetic changes with DR.", MACULA, "B", None),
    ("A renal tumour.", KIDNEY, "C", None),
    ("Large tumour in the left kidney, no stone.", KIDNEY, "C", None),
    ("The rest of the abdomen is unremarkable. There is a 2 cm cyst in the left kidney.", KIDNEY, "B", None),
    ("A small stone in the lower pole; the kidney is otherwise normal.", KIDNEY, "D", None),
    ("This is a ct scan of the chest.", MODALITY, "A", None),
    ("This is a Ct scan of the chest; ct is not an mri.", MODALITY, "A", None),
    ("The kidney shows a cyst. Not a tumor.", KIDNEY, "B", None),
    ("Basal cell carcinoma. Not melanoma.", (("A", "Melanoma"), ("B", "Nevus"), ("C", "Basal cell carcinoma")), "C",
     None),
    ("The liver is normal in size. A stone is seen in the left kidney.", KIDNEY, "D", None),
    ("Sagittal T1-weighted MR image of the lumbar spine.", MODALITY, "B", None),
    ("Ultrasonographic image of the gallbladder.", MODALITY, "D", None),
    ("Clear lungs, normal heart size. No acute abnormality.", CHEST, "D", None),
    ("Upper lobe cavitation consistent with TB.", TB, "A", None),
    ("No radiographic evidence of tuberculosis.", TB, None, None),
    ("The fundus shows moderate non-proliferative diabetic retinopathy.", DR_GRADE, "C", None),
    ("Neovascularization of the disc: proliferative diabetic retinopathy.", DR_GRADE, "E", None),
    ("There is no diabetic retinopathy.", DR_GRADE, "A", None),
    ("Mild NPDR with a few microaneurysms; no proliferative DR.", DR_GRADE, "B", None),
]

NUMERALS = [
    ("This is a grade 2 glioma.", GRADE, "B", None),
    ("Findings are consistent with Grade III.", GRADE, "C", None),
    ("grade 3", GRADE, "C", None),
    ("grade IV", GRADE, "D", None),
    ("Grade III astrocytoma (anaplastic).", GRADE, "C", None),
    ("This is a high-grade (WHO grade 4) glioblastoma.", GRADE, "D", None),
    ("The answer is Grade II", GRADE, "B", "answer_phrase"),
    ("Grade II (B)", GRADE, "B", None),
    ("grade one", GRADE, "A", None),
    ("Grade II-III.", GRADE, None, None),
    ("Grade 1 or 2.", GRADE, None, None),
    ("Between grade II and grade III.", GRADE, None, None),
    ("Grade 4 (IV) glioma.", GRADE, "D", None),
    ("Not grade IV, this is grade III.", GRADE, "C", None),
    ("grade II/III", GRADE, None, None),
    ("KL grade 1-2.", KL, None, None),
    ("Stage 1 vs stage 2.", STAGE, None, None),
    ("Stage II disease.", STAGE, "B", None),
    ("This corresponds to stage IV.", STAGE, "D", None),
    ("The tumor is stage II, not stage I.", STAGE, "B", None),
    ("Stage 3 chronic kidney disease.", STAGE, "C", None),
    ("stage three", STAGE, "C", None),
    ("Stage 2.5 is not a stage.", STAGE, None, None),
    ("Kellgren-Lawrence grade 3 osteoarthritis.", KL, "D", None),
    ("KL grade III: definite narrowing and osteophytes.", KL, "D", None),
    ("Grade 0, no features of osteoarthritis.", KL, "A", None),
    ("KL grade 2 changes in the medial compartment.", KL, "C", None),
    ("Level 10.", LEVEL, "B", None),
    ("level 1", LEVEL, "A", None),
    ("The severity is level 10, not level 1.", LEVEL, "B", None),
]

YES_NO_CHINESE = [
    ("是", YESNO, "A", None),
    ("是的，图像中可见肿块。", YESNO, "A", "yes_no"),
    ("否", YESNO, "B", None),
    ("不是。", YESNO, "B", None),
    ("没有", YESNO, "B", None),
    ("有，左肺可见结节。", YESNO, "A", "yes_no"),
    ("没有，双肺未见明显异常。", YESNO, "B", "yes_no"),
    ("Yes, definitely.", YESNO, "A", None),
    ("Nope.", YESNO, "B", "yes_no"),
    ("Absolutely not.", YESNO, "B", "yes_no"),
    ("Definitely not, the lungs are clear.", YESNO, "B", "yes_no"),
    ("Yep", YESNO, "A", "yes_no"),
    ("Of course not.", YESNO, "B", "yes_no"),
    ("Certainly.", YESNO, "A", "yes_no"),
    ("Not at all.", YESNO, "B", "yes_no"),
    ("Yes!", YESNO, "A", None),
    ("Negative.", YESNO, "B", "yes_no"),
    ("Absolutely, there is a large effusion.", YESNO, "A", "yes_no"),
    ("答案：否", YESNO, "B", None),
    ("答案是：是", YESNO, "A", None),
    ("不确定", YESNO, None, None),
    ("是或否", YESNO, None, None),
    ("Yes or no, I cannot tell.", YESNO, None, None),
    ("No. There is no pneumothorax.", YESNO, "B", "yes_no"),
    ("No, definitely not.", YESNO, "B", "yes_no"),
    ("Yes and no.", YESNO, None, None),
    ("Certainly! Here is my analysis of the image.", YESNO, None, None),
    ("对。", YESNO, "A", None),
    ("不对。", YESNO, "B", "yes_no"),
    ("不是的，未见异常。", YESNO, "B", "yes_no"),
    ("答案为C", KIDNEY, "C", "chinese_phrase"),
    ("正确答案是 D。", KIDNEY, "D", "chinese_phrase"),
    ("应选B", KIDNEY, "B", None),
    ("故选A。", KIDNEY, "A", None),
    ("最可能是B（囊肿）。", KIDNEY, "B", None),
    ("该病变最可能的诊断是C。", KIDNEY, "C", None),
    ("根据影像表现，考虑为B。", KIDNEY, "B", None),
    ("选项C正确。", KIDNEY, "C", None),
    ("B选项是正确的。", KIDNEY, "B", None),
    ("我认为是D。", KIDNEY, "D", None),
    ("最有可能的答案是A", KIDNEY, "A", None),
    ("答案应该是B。", KIDNEY, "B", "chinese_phrase"),
    ("我选C", KIDNEY, "C", "chinese_choose"),
    ("正确选项为D", KIDNEY, "D", "chinese_phrase"),
    ("因此，最终答案是 B。", KIDNEY, "B", None),
    ("B和C都有可能", KIDNEY, None, None),
    ("不可能是B，答案是C。", KIDNEY, "C", None),
    ("不考虑为A。", KIDNEY, None, None),
    ("可能是B或C", KIDNEY, None, None),
    ("不是A，是B。", KIDNEY, "B", None),
    ("综上所述，答案为 C. Tumor", KIDNEY, "C", None),
]

# ---------------------------------------------------------------------------------------------- long replies
# Neutral findings prose that names no option of any table above (no option text, synonym, letter or yes/no).
_FILLER_SENTENCES = [
    "Looking at this image carefully, I will describe what I see before deciding.",
    "The image is a grayscale medical image with good contrast and without obvious motion artifact.",
    "The anatomy is displayed in the standard orientation, and the field of view includes the structures of "
    "interest as well as some surrounding tissue.",
    "The quality of the acquisition appears adequate for interpretation.",
    "Key features to consider are location, size, shape, margins, internal characteristics and the relationship "
    "to adjacent structures, as these are what radiologists use when interpreting such images.",
    "The surrounding soft tissues and bony structures are included in the field of view.",
    "Window and level settings seem appropriate for the soft tissues being examined.",
    "Clinical history, prior imaging and laboratory values would normally be taken into account as well.",
]


def filler(chars: int = 2200) -> str:
    out, i = [], 0
    while sum(len(s) + 1 for s in out) < chars:
        out.append(_FILLER_SENTENCES[i % len(_FILLER_SENTENCES)])
        i += 1
    return " ".join(out)


def buried(reply: str, where: str) -> str:
    """The reply inside 2,000+ characters of findings prose: ``before`` it, ``after`` it, or ``both``."""
    before = filler() + "\n\n" if where in ("before", "both") else ""
    after = "\n\n" + filler() if where in ("after", "both") else ""
    return before + reply + after


# (table, the reply's opening, where the filler goes): forms of each category, buried.
_LONG_PICKS = [
    (VERDICTS, "Let's evaluate each option:", "before"), (VERDICTS, "| Option | Diagnosis | Assessment |", "before"),
    (VERDICTS, "Option A: unlikely\nOption B: unlikely\nOption C: likely", "both"),
    (VERDICTS, "Option A (Glioma) – this is unlikely", "before"), (VERDICTS, "A. Normal - No\nB. Cyst - No", "before"),
    (VERDICTS, "A. Glioma — possible", "before"), (VERDICTS, "A. Normal - no\nB. Cyst - yes", "before"),
    (VERDICTS, "1. **Normal** – **No**", "after"), (VERDICTS, "A: unlikely\nB: likely\nC: unlikely\nD: unlikely\n\n"
                                                               "Wait", "before"),
    (HEDGED, "A tumor cannot be ruled out.", "before"), (HEDGED, "Findings may represent a cyst", "before"),
    (HEDGED, "Cannot rule out pleural effusion.", "both"), (HEDGED, "The appearance raises the possibility", "before"),
    (HEDGED, "The findings favor meningioma", "before"), (HEDGED, "Tuberculosis is a possibility.", "after"),
    (REASONING, "Let me think step by step. The lesion is extra-axial", "before"),
    (REASONING, "A is wrong because the kidney has a lesion.", "before"),
    (REASONING, "The answer is B. Wait, no", "before"), (REASONING, "It's B. No wait, it's D.", "before"),
    (REASONING, "答案是B。不对，应该是C。", "before"), (REASONING, "B\n\nWait, actually C is better", "after"),
    (REASONING, "Let's analyze each option step by step.", "before"), (REASONING, "Okay, so the image shows", "before"),
    (REASONING, "The answer is B. Actually, tumors are rare", "before"),
    (REASONING, "Step 1: The image is an axial T1", "before"),
    (SYNONYMS, "The OCT shows subretinal fluid", "before"), (SYNONYMS, "There is no evidence of choroidal", "both"),
    (SYNONYMS, "Fundus photograph shows microaneurysms", "before"), (SYNONYMS, "Bilateral peripheral ground-glass",
                                                                    "both"),
    (SYNONYMS, "No pneumothorax, pleural effusion or cardiomegaly", "before"), (SYNONYMS, "Normal chest X-ray.", "after"),
    (SYNONYMS, "The fundus shows moderate non-proliferative", "before"), (SYNONYMS, "Acute intracranial haemorrhage.",
                                                                          "before"),
    (NUMERALS, "This is a grade 2 glioma.", "before"), (NUMERALS, "Grade II-III.", "both"),
    (NUMERALS, "The tumor is stage II, not stage I.", "before"), (NUMERALS, "Kellgren-Lawrence grade 3", "before"),
    (NUMERALS, "Grade 1 or 2.", "before"), (NUMERALS, "The severity is level 10", "after"),
    (YES_NO_CHINESE, "Yes, definitely.", "after"), (YES_NO_CHINESE, "Definitely not, the lungs are clear.", "after"),
    (YES_NO_CHINESE, "Absolutely not.", "after"), (YES_NO_CHINESE, "没有，双肺未见明显异常。", "after"),
    (YES_NO_CHINESE, "故选A。", "before"), (YES_NO_CHINESE, "最可能是B（囊肿）。", "before"),
    (YES_NO_CHINESE, "可能是B或C", "before"), (YES_NO_CHINESE, "答案应该是B。", "both"),
]


def _pick(table, opening):
    (case,) = [c for c in table if c[0].startswith(opening)]
    return case


LONG = [(buried(case[0], where), *case[1:]) for case, where in ((_pick(t, o), w) for t, o, w in _LONG_PICKS)]

CATEGORIES = {"verdicts": VERDICTS, "hedged": HEDGED, "reasoning": REASONING, "synonyms": SYNONYMS,
              "numerals": NUMERALS, "yes_no_chinese": YES_NO_CHINESE, "long": LONG}
CASES = [case for table in CATEGORIES.values() for case in table]


def _check(reply, options, letter, rule):
    got, got_rule = extract_choice_with_rule(reply, options)
    assert got == letter, (reply[-300:], got, got_rule)
    assert got_rule in RULES
    assert (got_rule in LETTER_RULES) == (got is not None)
    assert (got_rule in ABSTAIN_RULES) == (got is None)
    if rule is not None:
        assert got_rule == rule, (reply[-300:], got, got_rule)
    assert extract_choice(reply, options) == letter


def _ids(table):
    return [repr(c[0])[:50] for c in table]


@pytest.mark.parametrize("reply,options,letter,rule", VERDICTS, ids=_ids(VERDICTS))
def test_per_option_verdicts(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", HEDGED, ids=_ids(HEDGED))
def test_hedged_mentions(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", REASONING, ids=_ids(REASONING))
def test_elimination_self_correction_unfinished(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", SYNONYMS, ids=_ids(SYNONYMS))
def test_synonyms_expansions_and_negation(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", NUMERALS, ids=_ids(NUMERALS))
def test_roman_and_arabic_numerals(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", YES_NO_CHINESE, ids=_ids(YES_NO_CHINESE))
def test_yes_no_and_chinese(reply, options, letter, rule):
    _check(reply, options, letter, rule)


@pytest.mark.parametrize("reply,options,letter,rule", LONG, ids=[f"long-{i}" for i in range(len(LONG))])
def test_every_form_buried_in_a_long_reply(reply, options, letter, rule):
    assert len(reply) >= 2000
    _check(reply, options, letter, rule)


def test_filler_names_no_option():
    """The long-reply prose is neutral: alone, it commits to nothing under any option set used here."""
    for options in {c[1] for c in CASES}:
        assert extract_choice_with_rule(filler(), options) == (None, "no_answer")


# Replies that reach a rule none of the tables does: with them every rule is exercised.
EXTRA_RULE_CASES = [("The scan fits C well here", KIDNEY, "C", "standalone_letter")]


def test_every_rule_the_extractor_names_is_reached_by_a_reply():
    """Each rule in RULES is what some reply is read by, and each rule always gives a letter or never does."""
    outcome: dict[str, set[bool]] = {}
    for reply, options, letter, rule in [*SHORT_CASES, *CASES, *EXTRA_RULE_CASES]:
        got, got_rule = extract_choice_with_rule(reply, options)
        assert got == letter and got_rule == (rule or got_rule), reply
        outcome.setdefault(got_rule, set()).add(got is not None)
    for reply, options, _, lenient in LENIENT:
        got, got_rule = extract_choice_with_rule(reply, options, mode="lenient")
        outcome.setdefault(got_rule, set()).add(got is not None)
    assert set(outcome) == RULES
    assert {r for r, gives in outcome.items() if gives == {True}} == LETTER_RULES
    assert {r for r, gives in outcome.items() if gives == {False}} == ABSTAIN_RULES
