"""The MAT registry: every Med-MAT subset (01-53) and source dataset (1-109) with its composition.

Sources: the Med-MAT README (dataset and subset tables) and the paper's Table 17 (subset -> datasets).
Each subset also carries a coarse *task family* (``task``), because the paper groups tasks more coarsely
than the subset names ("COVID", "Cancer", "Diseases", "Level" ...), and compositional relations are defined
on those families: CT-Lung-COVID (03) and X-ray-Lung-COVID (28) share the task element "COVID".
The full subset task name is kept as ``task_name``.
"""

from __future__ import annotations

from dataclasses import dataclass

MODALITIES: dict[str, str] = {
    "Co": "Colposcopy",
    "CT": "Computed tomography",
    "Der": "Dermoscopy",
    "DP": "Dental photography",
    "End": "Endoscopy",
    "FP": "Fundus photography",
    "Mic": "Microscopy",
    "MRI": "Magnetic resonance imaging",
    "OCT": "Optical coherence tomography",
    "US": "Ultrasound",
    "X-ray": "X-ray",
}

# Spellings seen in the seed tables and in users' configs, mapped onto the canonical names above.
MODALITY_ALIASES: dict[str, str] = {
    "x-ray": "X-ray",
    "xray": "X-ray",
    "x ray": "X-ray",
    "ultrasound": "US",
    "ct": "CT",
    "mri": "MRI",
    "oct": "OCT",
    "us": "US",
    "der": "Der",
    "dermoscopy": "Der",
    "dp": "DP",
    "end": "End",
    "endoscopy": "End",
    "fp": "FP",
    "fundus photography": "FP",
    "mic": "Mic",
    "microscopy": "Mic",
    "co": "Co",
}


@dataclass(frozen=True)
class Composition:
    """A Modality-Area-Task combination."""

    modality: str
    area: str
    task: str

    def shared_elements(self, other: "Composition") -> int:
        return (
            (self.modality == other.modality)
            + (self.area == other.area)
            + (self.task == other.task)
        )

    def __str__(self) -> str:
        return f"{self.modality}-{self.area}-{self.task}"


@dataclass(frozen=True)
class Subset:
    number: int
    modality: str
    area: str
    task: str  # coarse task family used for compositional relations
    task_name: str  # the subset's own task name from the Med-MAT README
    datasets: tuple[int, ...]
    released: bool  # subsets 38-53 (detection/segmentation) were never released as QA files

    @property
    def composition(self) -> Composition:
        return Composition(self.modality, self.area, self.task)

    @property
    def label(self) -> str:
        return f"{self.number:02d} {self.composition}"


@dataclass(frozen=True)
class Dataset:
    number: int
    name: str
    modality: str
    area: str
    task_description: str
    subset: int | None  # None for datasets 64 and 83, which belong to no subset


def _r(a: int, b: int) -> tuple[int, ...]:
    return tuple(range(a, b + 1))


# number: (modality, area, task family, subset task name, source datasets)
_SUBSETS: dict[int, tuple[str, str, str, str, tuple[int, ...]]] = {
    1: ("Co", "Cervix", "Quality", "Cervical Picture Quality Evaluation", (1,)),
    2: ("CT", "Kidney", "Diseases", "Kidney Diseases Classification", (2,)),
    3: ("CT", "Lung", "COVID", "COVID-19 Classification", (3, 4, 6)),
    4: ("CT", "Lung", "Cancer", "Lung Cancer Classification", (5,)),
    5: ("CT", "Brain", "Hemorrhage", "Brain Hemorrhage Classification", (7,)),
    6: ("CT", "Brain", "Cancer", "Brain Cancer Classification", (8,)),
    7: ("Der", "Skin", "Cancer", "Melanoma Type Classification", (10,)),
    8: ("Der", "Skin", "Diseases", "Skin Diseases Classification", (9, *_r(11, 15), 71, 72, 74)),
    9: ("DP", "Mouth", "Diseases", "Teeth Condition Classification", (16,)),
    10: ("DP", "Mouth", "Cancer", "Oral Cancer Classification", (17,)),
    11: ("End", "Intestine", "Level", "Intestine Cleanliness Level", (18,)),
    12: ("End", "Bladder", "Cancer", "Cancer Degree Classification", (19,)),
    13: ("End", "Intestine", "Diseases", "Intestine Diseases Classification", (20,)),
    14: ("FP", "Fundus", "Diseases", "Eye Diseases Classification", (21, 22, 23, 26, 27, 28, 31, 32, 75)),
    15: ("FP", "Fundus", "Diseases", "Multiple-labels Eye Diseases Classification", (24, 25, 68)),
    16: ("FP", "Fundus", "Level", "Blindness Level", (29,)),
    17: ("FP", "Fundus", "Quality", "Retinal Images Quality Evaluation", (30,)),
    # The paper lists dataset 44 under both 18 and 22; under 18 it is probably 43 (LC25000, microscopy).
    18: ("Mic", "Cell", "Cell Type", "Cell Type Classification", (33, *_r(36, 41), 43, 65, 70)),
    19: ("Mic", "Cell", "Level", "Prostate Cancer Degree Classification", (34,)),
    20: ("Mic", "Cell", "Cell Type", "Multiple-labels Blood Cell Classification", (35,)),
    21: ("Mic", "Cell", "Cancer", "Cancer Classification", (42, 67)),
    22: ("MRI", "Brain", "Diseases", "Head Diseases Classification", (44, 45)),
    23: ("OCT", "Retina", "Diseases", "Retina Diseases Classification", (46, 47)),
    24: ("US", "Breast", "Cancer", "Breast Cancer Classification", (48,)),
    25: ("X-ray", "Bones", "Level", "Degree Classification of Knee", (49, 53)),
    26: ("X-ray", "Bones", "Fracture", "Fractured Classification", (50, 51)),
    27: ("X-ray", "Bones", "Diseases", "Vertebrae Diseases Classification", (52,)),
    28: ("X-ray", "Lung", "COVID", "COVID-19 and Pneumonia Classification", (54, 55, 56, 57, 60, 62, 81)),
    29: ("X-ray", "Breast", "Diseases", "Breast Diseases Classification", (58, 78)),
    30: ("X-ray", "Lung", "Tuberculosis", "Tuberculosis Classification", (59, 79)),
    31: ("X-ray", "Chest", "Diseases", "Multiple-labels Chest Classification", (61, 73, 76, 77, 80, 85, 87)),
    32: ("X-ray", "Brain", "Cancer", "Tumor Classification", (63,)),
    33: ("Mic", "Cell", "Diseases", "Multi-labels Diseases", (84,)),
    34: ("FP", "Fundus", "Level", "Level Identification", (66,)),
    35: ("X-ray", "Bones", "Level", "Level Identification", (69,)),
    36: ("X-ray", "Bones", "Diseases", "Spinal lesion Classification", (86,)),
    37: ("X-ray", "Breast", "Diseases", "Multi-labels Diseases", (82,)),
    38: ("Der", "Skin", "Det/Seg", "Lesion Det/Seg", (88, 89, 90, 91)),
    39: ("End", "Intestine", "Det/Seg", "PolyP Det/Seg", (92, 93)),
    40: ("End", "Intestine", "Det/Seg", "Surgical Procedures Det/Seg", (94,)),
    41: ("End", "Intestine", "Det/Seg", "Multi-labels Det/Seg", (95,)),
    42: ("Mic", "Cell", "Det/Seg", "Cancer Cell Det/Seg", (96,)),
    43: ("US", "Chest", "Det/Seg", "Cancer Det/Seg", (97,)),
    44: ("US", "Thyroid", "Det/Seg", "Thyroid Nodule Region Det/Seg", (98,)),
    45: ("MRI", "Intestine", "Det/Seg", "Multi-labels Det/Seg", (103,)),
    46: ("MRI", "Liver", "Det/Seg", "Liver Det/Seg", (104, 105)),
    47: ("X-ray", "Lung", "Det/Seg", "Lung Det/Seg", (99,)),
    48: ("X-ray", "Lung", "Det/Seg", "Pneumothorax Det/Seg", (106,)),
    49: ("X-ray", "Bones", "Det/Seg", "Spinal Anomaly Det", (100,)),
    50: ("X-ray", "Chest", "Det/Seg", "Multi-labels Det", (101, 102)),
    51: ("FP", "Fundus", "Det/Seg", "Vessel Seg", (107,)),
    52: ("FP", "Fundus", "Det/Seg", "Optic Disc and Cup Seg", (108,)),
    53: ("FP", "Fundus", "Det/Seg", "Optic Disc Seg", (109,)),
}

# number: (name, modality, area, task description) from the Med-MAT README's dataset table.
# Dataset 57 (COVIDGR) is unnumbered in the README table; it sits between 56 and 58.
_DATASETS: dict[int, tuple[str, str, str, str]] = {
    1: ("Intel and MobileODT Cervical Screening", "Co", "Cervix", "Cervix Type in Screening"),
    2: ("CT Kindney Dataset", "CT", "Kidney", "Normal or Cyst or Tumor"),
    3: ("SARS-COV-2 Ct-Scan", "CT", "Lung", "COVID19, Classification Dataset"),
    4: ("COVID CT COVID-CT", "CT", "Lung", "COVID19, Classification Dataset"),
    5: ("Chest CT-Scan", "CT", "Lung", "Cancer, 3 Cancer Categories, Multiple Classification Dataset"),
    6: ("COVID-19-CT SCAN IMAGES", "CT", "Lung", "COVID19, Classification"),
    7: ("Head CT", "CT", "Brain", "Head Hemorrhage"),
    8: ("CT of Brain", "CT", "Brain", "Head Cancer"),
    9: ("MED-NODE", "Der", "Skin", "Melanoma or Naevus"),
    10: ("ISIC 2020", "Der", "Skin", "Melanoma, Benign or Malignant"),
    11: ("PED-UFES-20", "Der", "Skin", "Skin Multi Classification"),
    12: ("Web-scraped Skin Image", "Der", "Skin", "Skin Desease Multi Classification"),
    13: ("ISBI 2016", "Der", "Skin", "Skin Lesion Classification"),
    14: ("ISIC 2019", "Der", "Skin", "Skin Desease Multi Classification"),
    15: ("Skin Cancer ISIC", "Der", "Skin", "Skin Cancer Multi Classification"),
    16: ("Dental Condition Dataset", "DP", "Mouth", "Teeth condition classification"),
    17: ("Oral Cancer Dataset", "DP", "Mouth", "Oral cancer Classification"),
    18: ("The Nerthus Dataset", "End", "Intestine", "Cleanliness level"),
    19: ("Endoscopic Bladder Tissue", "End", "Bladder", "Canser Degree Classification"),
    20: ("Kvasir", "End", "Intestine", "Multi Disease Classification"),
    21: ("ACRIMA", "FP", "Fundus", "Glaucoma"),
    22: ("Augemnted ocular diseases AOD", "FP", "Fundus", "Multi Classification of eye diseases"),
    23: ("JSIEC", "FP", "Fundus", "Multi Classification of eye diseases"),
    24: ("Multi-Label Retinal Diseases", "FP", "Fundus", "Multi Classification of eye diseases"),
    25: ("RFMiD 2.0", "FP", "Fundus", "Multi Classification of eye diseases"),
    26: ("ToxoFundus(Data Processed Paper)", "FP", "Fundus", "Ocular toxoplasmosis"),
    27: ("ToxoFundus(Data Raw 6class All)", "FP", "Fundus", "Ocular toxoplasmosis"),
    28: ("Adam dataset", "FP", "Fundus", "Age-related Macular Degeneration"),
    29: ("APTOS 2019 Blindness", "FP", "Fundus", "Blindness Level Identification 0~4"),
    30: ("DRIMBD", "FP", "Fundus", "Quality Testing of Retinal Images"),
    31: ("Glaucoma Detection", "FP", "Fundus", "Glaucoma Classification"),
    32: ("AIROGS", "FP", "Fundus", "Glaucoma Classification"),
    33: ("ICPR-HEp-2", "Mic", "Cell", "Multi Classification"),
    34: ("SICAPv2", "Mic", "Cell", "Cancer Degree Classification"),
    35: ("Blood Cell Images", "Mic", "Cell", "Blood Cell Classificaion (Multi)"),
    36: ("BreakHis", "Mic", "Cell", "Cell type and beginormag"),
    37: ("Chaoyang", "Mic", "Cell", "Multi Classification of pathologists"),
    38: ("HuSHeM", "Mic", "Cell", "Sperm Head Morphology Classificaion"),
    39: ("Bone Marrow Cell Classification", "Mic", "Cell", "Bone Marrow Cell Classification"),
    40: ("NCT-CRC-HE-100K", "Mic", "Cell", "Multi Classification"),
    41: ("Malignant Lymphoma Classification", "Mic", "Cell", "Multi Classification"),
    42: ("Histopathologic Cancer Detection", "Mic", "Cell", "Cancer Classification"),
    43: ("LC25000", "Mic", "Cell", "Multi Classification of Lung and Colon"),
    44: ("Brain Tumor 17 Classes", "MRI", "Brain", "Multi Classification"),
    45: ("Tumor Classification", "MRI", "Brain", "Pituitary or Glioma or Meningioma or Notumor"),
    46: ("Malignant Lymphoma Classification", "OCT", "Retina", "Multi Classification of eye diseases"),
    47: ("Retinal OCT-C8", "OCT", "Retina", "Multi Classification of eye diseases"),
    48: ("BUSI", "US", "Breast", "Breast Cancer"),
    49: ("Digital Knee X-Ray Images", "X-ray", "Bones", "Degree Classification of Knee"),
    50: ("Bone Fracture Multi-Region X-ray Data", "X-ray", "Bones", "Fractured Classification"),
    51: ("Fracture detection", "X-ray", "Bones", "Fractured Classification"),
    52: ("The vertebrae X-ray image", "X-ray", "Bones", "Vertebrae"),
    53: ("Knee Osteoarthritis Dataset", "X-ray", "Bones", "Knee Osteoarthritis with severity grading"),
    54: ("Shenzhen Chest X-Ray Set", "X-ray", "Lung", "COVID19, Classification Dataset"),
    55: ("Chest X-ray PD", "X-ray", "Lung", "COVID and Pneumonia"),
    56: ("COVID-19 CHEST X-RAY DATABASE", "X-ray", "Lung", "COVID and Pneumonia"),
    57: ("COVIDGR", "X-ray", "Lung", "COVID19, Classification"),
    58: ("MIAS", "X-ray", "Breast", "Multi Classification of Breast"),
    59: ("Tuberculosis Chest X-Ray Database", "X-ray", "Lung", "Tuberculosis"),
    60: ("Pediatric Pneumonia Chest X-Ray", "X-ray", "Lung", "Pneumonia Classification"),
    61: ("Random Sample of NIH Chest X-Ray Dataset", "X-ray", "Chest", "Multi Classificaiton of Chest"),
    62: ("CoronaHack-Chest X-Ray", "X-ray", "Lung", "Pnemonia Classifcition with Virus type"),
    63: ("Brain Tumor Dataset", "X-ray", "Brain", "Tumor Classification"),
    64: ("Fitzpatrick 17k (Nine Labels)", "Der", "Skin", "Multi Classification"),
    65: ("BioMediTech", "Mic", "Cell", "Multi Classification"),
    66: ("Diabetic retinopathy", "FP", "Fundus", "Diabetic Retinopathy Level"),
    67: ("Leukemia", "Mic", "Cell", "Cancer Classification"),
    68: ("ODIR-5K", "FP", "Fundus", "Multiple Labels Classification"),
    69: ("Arthrosis", "X-ray", "Bones", "Bone Age Classification"),
    70: ("HSA-NRL", "Mic", "Cell", "Multi Classification of pathologists"),
    71: ("ISIC 2018 (Task 3)", "Der", "Skin", "Multi Classification"),
    72: ("ISIC 2017 (Task 3)", "Der", "Skin", "Multi Classification"),
    73: ("ChestX-Det", "X-ray", "Chest", "Multi Classification"),
    74: ("Monkeypox Skin Lesion Dataset", "Der", "Skin", "Only Monkeypox"),
    75: ("Cataract Dataset", "FP", "Fundus", "Multi Classification"),
    76: ("ChestX-rays IndianaUniversity", "X-ray", "Chest", "Multi-label Classification"),
    77: ("CheXpert v1.0 small", "X-ray", "Chest", "Multi-label Classification"),
    78: ("CBIS-DDSM", "X-ray", "Breast", "Multi Classification"),
    79: ("NLM-TB", "X-ray", "Lung", "Tuberculosis"),
    80: ("ChestXray-NIHCC", "X-ray", "Chest", "Multi-label Classification"),
    81: ("COVIDx CXR-4", "X-ray", "Lung", "COVID19, Classification"),
    82: ("VinDr-Mammo", "X-ray", "Breast", "Multi-label Classification"),
    83: ("PBC dataset normal DIB", "Mic", "Cell", "Multi Classification"),
    84: ("Human Protein Atlas", "Mic", "Cell", "Multi-label Classification (Only green)"),
    85: ("RSNA Pneumonia Detection Challenge 2018", "X-ray", "Chest", "Multi-label Classification"),
    86: ("VinDr-SpineXR", "X-ray", "Bones", "Multi Classification of Bones Diseases"),
    87: ("VinDr-PCXR", "X-ray", "Chest", "Multi-label Classification"),
    88: ("PH2", "Der", "Skin", "Melanoma Segmentation"),
    89: ("ISBI 2016 (Task3B)", "Der", "Skin", "Melanoma Segmentation"),
    90: ("ISIC 2016 (Task 1)", "Der", "Skin", "Melanoma Segmentation"),
    91: ("ISIC 2017", "Der", "Skin", "Melanoma Segmentation"),
    92: ("CVC-ClinicDB", "End", "Intestine", "Polyp Segmentation"),
    93: ("Kvasir-SEG", "End", "Intestine", "Polyp segmentation"),
    94: ("m2caiseg", "End", "Intestine", "Surgical Instrument Segmentation"),
    95: ("EDD 2020", "End", "Intestine", "Multiple Diseases Segmentation in Intestine"),
    96: ("SICAPv2", "Mic", "Cell", "Cancer Cells Segmentation"),
    97: ("BUSI", "US", "Breast", "Cancer Segmentation"),
    98: ("TN3K", "US", "Thyroid", "Thyroid Nodule Segmentation"),
    99: ("NLM-TB", "X-ray", "Lung", "Lung Segmentation (With left or right)"),
    100: ("VinDr-SpineXR", "X-ray", "Bones", "Spinal X-ray Anaomaly Detection"),
    101: ("VinDr-PCXR", "X-ray", "Chest", "Multiple Diseases Segmentation in Chest"),
    102: ("ChestX-Det", "X-ray", "Chest", "Multiple Diseases Segmentation in Chest"),
    103: ("UW-Madison Gl Tract Image Segmentation", "MRI", "Intestine", "Surgical Instrument Segmentation"),
    104: ("Duke Liver Dataset MRI v1", "MRI", "Liver", "Liver Segmentation"),
    105: ("Duke Liver Dataset MRI v2", "MRI", "Liver", "Liver Segmentation"),
    106: ("SIIM-ACR Pneumothorax Segmentation", "X-ray", "Lung", "Pneumothorax Segmentation"),
    107: ("FIVES", "FP", "Fundus", "Fundus Vascular Segmentation"),
    108: ("RIM-ONE DL", "FP", "Fundus", "Optic Disc and Cup Segmentation"),
    109: ("PALM19", "FP", "Fundus", "Optic Disc Segmentation"),
}

LAST_RELEASED_SUBSET = 37
LAST_RELEASED_DATASET = 87

SUBSETS: dict[int, Subset] = {
    n: Subset(n, m, a, t, name, ds, released=n <= LAST_RELEASED_SUBSET)
    for n, (m, a, t, name, ds) in _SUBSETS.items()
}

_DATASET_TO_SUBSET: dict[int, int] = {d: s.number for s in SUBSETS.values() for d in s.datasets}

DATASETS: dict[int, Dataset] = {
    n: Dataset(n, name, m, a, desc, _DATASET_TO_SUBSET.get(n))
    for n, (name, m, a, desc) in _DATASETS.items()
}


def subset_of_dataset(dataset_no: int) -> Subset | None:
    """The subset a source dataset was aggregated into, or None (datasets 64, 83, unknown numbers)."""
    ds = DATASETS.get(dataset_no)
    if ds is None or ds.subset is None:
        return None
    return SUBSETS[ds.subset]


def axis_values(axis: str) -> list[str]:
    """All valid values of one MAT axis ("modality", "area" or "task"), sorted."""
    if axis not in ("modality", "area", "task"):
        raise ValueError(f"unknown MAT axis {axis!r}; valid axes: modality, area, task")
    return sorted({getattr(s, axis) for s in SUBSETS.values()})


def canonical_modality(name: str) -> str | None:
    if name in MODALITIES:
        return name
    return MODALITY_ALIASES.get(name.strip().lower())
