"""Held-out reply tables for experiments/bench_extract.py: replies written after the rules of issue 14 were,
in two batches, each measured once before any rule was changed for it (the unit-test tables are what the rules
were written against, so their figures only say the rules do what they were built to do). First measurements
(% right / % wrong commitment / % abstained): batch 1 82.5 / 5.0 / 12.5 (main 57.5 / 7.5 / 35.0), batch 2
80.0 / 6.7 / 13.3 (main 46.7 / 16.7 / 36.7). Some of their failures were then fixed (with new unit-test cases
in other words), so today's figures on these two are no longer held-out figures. Batch 3, written after the last
rule change and used for none: 88.0 / 0.0 / 12.0 (main 72.0 / 12.0 / 16.0).
Each row: (reply, options, the letter a careful grader takes or None)."""

from __future__ import annotations

KIDNEY = (("A", "Normal"), ("B", "Cyst"), ("C", "Tumor"), ("D", "Stone"))
BRAIN = (("A", "Glioma"), ("B", "Meningioma"), ("C", "No tumor"), ("D", "Pituitary"))
OCT = (("A", "CNV"), ("B", "DME"), ("C", "Drusen"), ("D", "Normal"))
CHEST = (("A", "Pneumothorax"), ("B", "Pleural effusion"), ("C", "Cardiomegaly"), ("D", "No finding"))
YESNO = (("A", "Yes"), ("B", "No"))
SKIN = (("A", "Melanoma"), ("B", "Nevus"), ("C", "Basal cell carcinoma"), ("D", "Seborrheic keratosis"))
GRADE = (("A", "Grade I"), ("B", "Grade II"), ("C", "Grade III"), ("D", "Grade IV"))
COVID = (("A", "COVID-19"), ("B", "Normal"), ("C", "Viral pneumonia"))

CASES = [
    ("**Option analysis**\n\n| | Option | Match |\n|---|---|---|\n| A | Normal | ✗ |\n| B | Cyst | ✗ |\n"
     "| C | Tumor | ✓ |\n| D | Stone | ✗ |\n\nThe enhancing solid component points to a neoplasm.", KIDNEY, "C"),
    ("Evaluating the choices:\nA) Glioma: The mass is intra-axial with surrounding edema - likely.\n"
     "B) Meningioma: no dural tail - unlikely.\nC) No tumor: incorrect.\nD) Pituitary: unlikely.", BRAIN, "A"),
    ("A - No\nB - No\nC - Possibly\nD - No", KIDNEY, None),
    ("Drusen: present (yes)\nCNV: no\nDME: no\nNormal: no", OCT, "C"),
    ("There is a large left pneumothorax with mediastinal shift; no pleural effusion.", CHEST, "A"),
    ("No pneumothorax. No effusion. Heart size normal.", CHEST, None),
    ("Heart size is enlarged (cardiothoracic ratio > 0.5) consistent with cardiomegaly.", CHEST, "C"),
    ("The cardiac silhouette is normal in size. Small right pleural effusion cannot be excluded.", CHEST, None),
    ("Wait, let me look again. The lesion has a dural tail. Meningioma. Final answer: B", BRAIN, "B"),
    ("I first thought glioma, but actually the extra-axial location and dural tail make it a meningioma.", BRAIN, "B"),
    ("The answer is D.\n\nHmm, no. The sella is normal; the mass is in the frontal lobe. The answer is A.", BRAIN,
     "A"),
    ("First, let me describe the image. It is an OCT scan through the fovea. The retinal layers show", OCT, None),
    ("Let me analyze: subretinal hyperreflective material and fluid, typical of choroidal neovascularization. "
     "So the answer is A.", OCT, "A"),
    ("Intraretinal cystoid spaces and retinal thickening in a diabetic patient: diabetic macular oedema.", OCT, "B"),
    ("No evidence of CNV, DME or drusen. Normal foveal contour.", OCT, "D"),
    ("Findings are compatible with grade 3 astrocytoma.", GRADE, "C"),
    ("WHO Grade II.", GRADE, "B"),
    ("This lesion would be graded as II or III depending on mitotic activity.", GRADE, None),
    ("是的", YESNO, "A"),
    ("没有。", YESNO, "B"),
    ("Nope, no fracture is visible.", YESNO, "B"),
    ("Yes — there is a clear consolidation in the right lower lobe.", YESNO, "A"),
    ("Definitely yes.", YESNO, "A"),
    ("根据图像分析，答案为 B。", KIDNEY, "B"),
    ("该图像最可能的诊断是脑膜瘤，选B。", BRAIN, "B"),
    ("应选D，可见高密度结石影。", KIDNEY, "D"),
    ("Irregular, asymmetric pigmented lesion with multiple colors: melanoma is most likely, although an atypical "
     "nevus cannot be excluded.", SKIN, "A"),
    ("Pearly papule with arborizing telangiectasias, typical of BCC.", SKIN, "C"),
    ("Stuck-on appearance with milia-like cysts; seborrheic keratosis. Not melanoma.", SKIN, "D"),
    ("The differential includes nevus and melanoma; dermoscopy is needed.", SKIN, None),
    ("Bilateral peripheral GGOs: typical COVID pattern.", COVID, "A"),
    ("Lungs are clear, no abnormality.", COVID, "B"),
    ("This could be COVID-19 or another viral pneumonia; the pattern is not specific.", COVID, None),
    ("<think>The lesion is anechoic... cyst? But there is a septation. Still benign.</think>\n\nB", KIDNEY, "B"),
    ("Step-by-step:\n1. Modality: CT.\n2. Finding: hyperdense focus in the renal pelvis.\n3. Diagnosis: calculus, "
     "i.e. a stone.\n\nAnswer: D", KIDNEY, "D"),
    ("The kidney is normal in size. A simple cyst is seen at the upper pole. No stone, no solid mass.", KIDNEY, "B"),
    ("A. Normal\nB. Cyst\nC. Tumor\nD. Stone\n\nThe correct option is B.", KIDNEY, "B"),
    ("Option C seems right at first, but on second thought the margins are smooth: B.", KIDNEY, "B"),
    ("It is either a glioma or a meningioma, probably the latter.", BRAIN, "B"),
    ("Among the options, tumor is excluded, stone is excluded, and the kidney is not normal, leaving cyst.", KIDNEY,
     "B"),
]

# A second batch, written after the fixes the first one prompted and measured once before any change.
FUNDUS = (("A", "Diabetic retinopathy"), ("B", "Glaucoma"), ("C", "Cataract"), ("D", "Normal"))
STAGE = (("A", "Stage 1"), ("B", "Stage 2"), ("C", "Stage 3"), ("D", "Stage 4"))
MODALITY = (("A", "CT"), ("B", "MRI"), ("C", "X-ray"), ("D", "Ultrasound"))
CASES_2 = [
    ("Assessment of each option:\n\n1. Normal — ✗ (focal lesion present)\n2. Cyst — ✗ (internal echoes)\n"
     "3. Tumor — ✓ (solid, vascular)\n4. Stone — ✗", KIDNEY, "C"),
    ("A: No. B: No. C: Yes. D: No.", KIDNEY, "C"),
    ("Option A — incorrect\nOption B — incorrect\nOption C — incorrect\nOption D — correct\n\nThe echogenic focus "
     "with posterior shadowing is a calculus.", KIDNEY, "D"),
    ("| Option | Likelihood |\n|:--|:--|\n| Glioma | Low |\n| Meningioma | High |\n| No tumor | Low |\n"
     "| Pituitary | Low |", BRAIN, "B"),
    ("The optic disc shows an increased cup-to-disc ratio of 0.8 with notching of the rim, suggestive of glaucoma.",
     FUNDUS, "B"),
    ("Microaneurysms, hard exudates and cotton-wool spots: DR. No glaucoma.", FUNDUS, "A"),
    ("The red reflex is dull because of a dense lens opacity; cataract is the most likely answer.", FUNDUS, "C"),
    ("Cataract cannot be excluded, but the image quality is poor.", FUNDUS, None),
    ("Stage III.", STAGE, "C"),
    ("Findings suggest stage 2 or 3 disease.", STAGE, None),
    ("The tumor is at least stage II.", STAGE, "B"),
    ("This is an axial computed tomography image.", MODALITY, "A"),
    ("T2-weighted MR image.", MODALITY, "B"),
    ("Sonographic image of the kidney.", MODALITY, "D"),
    ("No, I don't think so.", YESNO, "B"),
    ("Yes, I believe there is.", YESNO, "A"),
    ("Hard to say; possibly yes.", YESNO, None),
    ("否，未见气胸。", YESNO, "B"),
    ("答案：B（脑膜瘤）", BRAIN, "B"),
    ("该病例应诊断为胶质瘤，即A。", BRAIN, "A"),
    ("选项A和B都不对，正确的是C。", KIDNEY, "C"),
    ("Let me reason. Ground-glass opacities are bilateral and peripheral. This is typical of", COVID, None),
    ("I'd pick C. Hmm, wait. No, A is right: the pattern is classic for COVID-19.", COVID, "A"),
    ("Answer: B\n\nExplanation: a meningioma is extra-axial. Actually the mass here is intra-axial, so the "
     "answer is A.", BRAIN, "A"),
    ("The lesion is consistent with a melanoma or a dysplastic nevus.", SKIN, None),
    ("Melanoma is unlikely; the lesion is symmetric with a regular network, typical of a benign nevus.", SKIN, "B"),
    ("There is no evidence of pneumothorax, pleural effusion, or cardiomegaly. No acute findings.", CHEST, "D"),
    ("Left-sided pleural effusion with adjacent atelectasis.", CHEST, "B"),
    ("Grade IV glioblastoma with necrosis.", GRADE, "D"),
    ("Grade 2 vs grade 3 cannot be determined from imaging alone.", GRADE, None),
]

# A third batch, written after every rule change above and not used to change any rule.
LUNG = (("A", "Adenocarcinoma"), ("B", "Squamous cell carcinoma"), ("C", "Small cell carcinoma"), ("D", "Normal"))
CASES_3 = [
    ("Based on my analysis:\n- Adenocarcinoma: most consistent (peripheral, lepidic growth)\n"
     "- Squamous cell carcinoma: less likely (no cavitation)\n- Small cell carcinoma: unlikely\n- Normal: no",
     LUNG, "A"),
    ("Central mass with cavitation in a smoker, suggestive of squamous cell carcinoma.", LUNG, "B"),
    ("Small cell carcinoma vs squamous cell carcinoma; biopsy required.", LUNG, None),
    ("The lung parenchyma appears healthy without nodules or masses. Normal.", LUNG, "D"),
    ("<think>Central, bulky, with mediastinal nodes... small cell? Or squamous? Nodes favor small cell.</think>\n"
     "C. Small cell carcinoma", LUNG, "C"),
    ("Answer: (B) Squamous cell carcinoma\n\nThe tumor is centrally located and cavitating.", LUNG, "B"),
    ("It's definitely not normal. I'd lean towards adenocarcinoma given the ground-glass component.", LUNG, "A"),
    ("Okay, let me work through this. The nodule is peripheral and part-solid. Adenocarcinoma commonly presents as",
     LUNG, None),
    ("The answer is B. Hmm, wait: the lesion is peripheral, not central. Adenocarcinoma fits better. Final: A",
     LUNG, "A"),
    ("No.", YESNO, "B"),
    ("Not that I can see.", YESNO, "B"),
    ("Yes - a small effusion on the left.", YESNO, "A"),
    ("有的，可见明显的积液。", YESNO, "A"),
    ("There may be a small nodule, but I cannot be certain.", YESNO, None),
    ("正确答案：C", KIDNEY, "C"),
    ("结合图像特征，考虑为肾囊肿，选择 B。", KIDNEY, "B"),
    ("Best answer: D) Stone", KIDNEY, "D"),
    ("The kidney contains a hyperechoic focus with posterior acoustic shadowing, i.e. a renal calculus (stone).",
     KIDNEY, "D"),
    ("Normal-appearing kidney without cysts, masses, or stones.", KIDNEY, "A"),
    ("The image demonstrates a Grade III lesion, not Grade II.", GRADE, "C"),
    ("grade 2-3", GRADE, None),
    ("Findings consistent with diabetic retinopathy (moderate NPDR).", FUNDUS, "A"),
    ("Fundus within normal limits; no signs of glaucoma or diabetic retinopathy.", FUNDUS, "D"),
    ("| Option | Assessment |\n|---|---|\n| A. COVID-19 | Unlikely |\n| B. Normal | Unlikely |\n"
     "| C. Viral pneumonia | Likely |", COVID, "C"),
    ("Option A is correct. On reflection, the distribution is lobar rather than peripheral, so C is wrong too. "
     "I'll stay with A.", COVID, "A"),
]
