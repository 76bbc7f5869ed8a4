"""Other sources: each fixture is written in the source's published schema; items, mapping and skip counts."""

import json
from pathlib import Path

import pytest
from PIL import Image

from cgeval.data.loader import MedMatFormatError
from cgeval.data.sources import (
    load_m3llm_pmc,
    load_medical_cxr_vqa,
    load_omnimedvqa,
    load_pathvqa,
    load_slake,
    load_vqa_rad,
    omnimedvqa_modality,
)


def png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", (8, 8), 128).save(path)


def check_items(items) -> None:
    for it in items:
        assert it.subset is None and it.dataset == 0 and it.meta["source"]
        assert it.gold in it.letters and it.option_text(it.gold) == it.answer_text
        assert Path(it.image_path).is_file()
        for letter, text in it.options:
            assert f"{letter}. {text}" in it.prompt


def test_m3llm_pmc(tmp_path: Path):
    for name in ("a.jpg", "b.jpg"):
        png(tmp_path / "images" / name)
    q = "Which structure is marked by the arrow?\nA. Aorta\nB. Trachea\nC. Esophagus\nD. Spine"
    lines = [
        {"image": "images/a.jpg", "caption": "CT of chest", "qa_pairs": [
            {"question": q, "answer": "B", "context": "c", "improved context": "ic"},
            {"question": q, "answer": "(C) Esophagus", "context": "c"},
            {"question": q, "answer": "Spine", "context": "c"},
            {"question": q, "answer": "E", "context": "c"},
            {"question": "What is shown? It is an aorta.", "answer": "A"},
        ]},
        {"image": "images/b.jpg", "caption": "x", "qa_pairs": [{"question": q.replace("\n", " "), "answer": "A"}]},
        {"image": "images/missing.jpg", "caption": "x", "qa_pairs": [{"question": q, "answer": "Answer: A"}]},
        {"image": "images/a.jpg", "caption": "no pairs"},
    ]
    path = tmp_path / "subimage_option.jsonl"
    path.write_text("\n".join(json.dumps(l) for l in lines) + "\nnot json\n")
    items, report = load_m3llm_pmc(path)
    check_items(items)
    assert [it.gold for it in items] == ["B", "C", "D"]
    assert items[0].question == "Which structure is marked by the arrow?" and items[0].meta["context"] == "ic"
    assert items[0].modality == items[0].area == items[0].task == "unknown"
    assert report.skipped == {"answer_not_an_option": 1, "unparseable_options": 2, "image_missing": 1, "malformed_record": 2}
    assert report.n_records == 9 and report.n_items == 3


def test_medical_cxr_vqa(tmp_path: Path):
    png(tmp_path / "files/p10/p10000032/s50414267/d1.jpg")
    png(tmp_path / "own.png")
    rows = [
        "subject_id,study_id,dicom_id,question_type,question,answer,split",
        "10000032,50414267,d1,presence,is there evidence of pneumonia in this image?,yes,train",
        "10000032,50414267,d1,view,which view is this image taken?,PA view,train",
        "10000032,50414267,d1,location,is the effusion located on the left side or right side?,right side,test",
        "10000032,50414267,d1,abnormality,what abnormalities are seen in this image?,\"effusion, atelectasis\",train",
        "10000032,50414267,d1,level,what level is the effusion?,small,train",
        "10000032,50414267,,presence,is there edema?,no,train",
        "10000032,50414267,d1,abnormality,is there evidence of any abnormalities in this image?,no,train",
    ]
    path = tmp_path / "medical-cxr-vqa-questions.csv"
    path.write_text("\n".join(rows) + "\n")
    items, report = load_medical_cxr_vqa(path)
    check_items(items)
    assert [(it.answer_text, [o for _, o in it.options]) for it in items] == [
        ("Yes", ["Yes", "No"]), ("PA view", ["PA view", "AP view"]), ("right side", ["left side", "right side"]),
        ("No", ["Yes", "No"]),
    ]
    assert {it.modality for it in items} == {"X-ray"} and {it.area for it in items} == {"Chest"}
    assert report.skipped == {"open_ended": 2, "no_image": 1}
    with pytest.raises(MedMatFormatError, match="missing columns"):
        (tmp_path / "bad.csv").write_text("q,a\nx,y\n")
        load_medical_cxr_vqa(tmp_path / "bad.csv")


def test_vqa_rad(tmp_path: Path):
    png(tmp_path / "VQA_RAD Image Folder" / "synpic1.jpg")
    recs = [
        {"qid": 1, "image_name": "synpic1.jpg", "image_organ": "CHEST", "answer": "Yes", "answer_type": "CLOSED",
         "question_type": "PRES", "question": "Is there a pneumothorax?", "phrase_type": "freeform"},
        {"qid": 2, "image_name": "synpic1.jpg", "image_organ": "ABD", "answer": "no", "answer_type": "CLOSED ",
         "question_type": "PRES", "question": "Is the liver enlarged?", "phrase_type": "para"},
        {"qid": 3, "image_name": "synpic1.jpg", "image_organ": "HEAD", "answer": "left", "answer_type": "CLOSED",
         "question_type": "POS", "question": "Left or right?", "phrase_type": "freeform"},
        {"qid": 4, "image_name": "synpic1.jpg", "image_organ": "HEAD", "answer": "MRI", "answer_type": "OPEN",
         "question_type": "MODALITY", "question": "What modality?", "phrase_type": "freeform"},
        {"qid": 1, "image_name": "synpic1.jpg", "image_organ": "CHEST", "answer": "yes", "answer_type": "CLOSED",
         "question_type": "PRES", "question": "Duplicate id", "phrase_type": "freeform"},
        {"qid": 5, "image_organ": "CHEST", "answer": "yes", "answer_type": "CLOSED", "question": "No image?"},
    ]
    path = tmp_path / "VQA_RAD Dataset Public.json"
    path.write_text(json.dumps(recs))
    items, report = load_vqa_rad(path)
    check_items(items)
    assert [(it.answer_text, it.area, it.modality) for it in items] == [("Yes", "Chest", "unknown"), ("No", "Abdomen", "unknown")]
    assert report.skipped == {"not_yes_no": 1, "open_ended": 1, "duplicate_id": 1, "no_image": 1}
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())  # saved with a UTF-8 byte-order mark: read the same
    assert [it.item_id for it in load_vqa_rad(path)[0]] == [it.item_id for it in items]


def test_slake(tmp_path: Path):
    png(tmp_path / "imgs" / "xmlab1" / "source.jpg")
    base = {"img_id": 1, "img_name": "xmlab1/source.jpg", "location": "Lung", "modality": "X-Ray",
            "base_type": "vqa", "content_type": "Abnormality", "triple": ["vhead", "_", "_"]}
    recs = [
        {**base, "qid": 1, "question": "Is the lung healthy?", "answer": "No", "q_lang": "en", "answer_type": "CLOSED"},
        {**base, "qid": 2, "question": "Does the picture contain liver?", "answer": "Yes", "q_lang": "en",
         "answer_type": "CLOSED", "modality": "CT", "location": "Abdomen"},
        {**base, "qid": 3, "question": "肺部健康吗?", "answer": "否", "q_lang": "zh", "answer_type": "CLOSED"},
        {**base, "qid": 4, "question": "Which is bigger, liver or spleen?", "answer": "Liver", "q_lang": "en", "answer_type": "CLOSED"},
        {**base, "qid": 5, "question": "What modality?", "answer": "X-Ray", "q_lang": "en", "answer_type": "OPEN"},
    ]
    (tmp_path / "train.json").write_text(json.dumps(recs[:3]))
    (tmp_path / "test.json").write_text(json.dumps(recs[3:]))
    items, report = load_slake([tmp_path / "train.json", tmp_path / "test.json"])
    check_items(items)
    assert [(it.modality, it.area, it.answer_text) for it in items] == [("X-ray", "Lung", "No"), ("CT", "Abdomen", "Yes")]
    assert report.skipped == {"non_english": 1, "not_yes_no": 1, "open_ended": 1}


def test_pathvqa(tmp_path: Path):
    png(tmp_path / "images" / "train" / "train_0001.jpg")
    recs = [
        {"image": "train_0001", "question": "Is this lesion malignant?", "answer": "yes"},
        {"image": "train_0001", "question": "What have lost their nuclei?", "answer": "neutrophils"},
        {"image": "train_0002", "question": "Is there necrosis?", "answer": "no"},
    ]
    path = tmp_path / "train_qa.json"
    path.write_text(json.dumps(recs))
    items, report = load_pathvqa(path)
    check_items(items)
    assert len(items) == 1 and items[0].image == "images/train/train_0001.jpg" and items[0].meta["domain"] == "pathology"
    assert report.skipped == {"open_ended": 1, "image_missing": 1}
    (tmp_path / "images" / "train" / "train_0001.jpg").write_bytes(b"not an image")
    assert load_pathvqa(path)[1].skipped["image_unreadable"] == 1
    # Without verification the header is still read (for the pixel cap): a file that is no image is still found.
    assert load_pathvqa(path, verify_images=False)[1].skipped["image_unreadable"] == 1
    image = tmp_path / "images" / "train" / "train_0001.jpg"
    Image.new("1", (9_000, 9_000)).save(image, format="PNG")  # 81 Mpx: above the default pixel cap
    assert load_pathvqa(path, verify_images=False)[1].skipped == {"open_ended": 1, "image_missing": 1,
                                                                  "image_too_large": 1}
    (tmp_path / "bad.json").write_text('{"image": "x"}')
    with pytest.raises(MedMatFormatError, match="list"):
        load_pathvqa(tmp_path / "bad.json")


def test_omnimedvqa(tmp_path: Path):
    qa = tmp_path / "QA_information" / "Open-access"
    qa.mkdir(parents=True)
    png(tmp_path / "Images" / "Chest CT Scan" / "a.png")
    png(tmp_path / "Images" / "Retinal OCT-C8" / "b.png")
    ct = [
        {"dataset": "Chest CT Scan", "question_id": "ct_1", "question_type": "Disease Diagnosis",
         "question": "What is the finding?", "gt_answer": "Adenocarcinoma", "image_path": "Images/Chest CT Scan/a.png",
         "option_A": "Normal", "option_B": "Adenocarcinoma", "option_C": "Squamous cell carcinoma",
         "modality_type": "CT(Computed Tomography)"},
        {"dataset": "Chest CT Scan", "question_id": "ct_2", "question_type": "Modality Recognition",
         "question": "Which modality?", "gt_answer": "CT", "image_path": "Images/Chest CT Scan/a.png",
         "option_A": "MRI", "option_B": "CT", "modality": "CT(Computed Tomography)"},
        {"dataset": "Chest CT Scan", "question_id": "ct_3", "question": "Bad gold?", "gt_answer": "Glioma",
         "image_path": "Images/Chest CT Scan/a.png", "option_A": "Normal", "option_B": "Cancer",
         "modality_type": "CT(Computed Tomography)"},
        {"dataset": "Chest CT Scan", "question_id": "ct_4", "question": "Gap in options?", "gt_answer": "Normal",
         "image_path": "Images/Chest CT Scan/a.png", "option_A": "Normal", "option_C": "Cancer",
         "modality_type": "CT(Computed Tomography)"},
    ]
    oct_ = [
        {"dataset": "Retinal OCT-C8", "question_id": "oct_1", "question_type": "Disease Diagnosis",
         "question": "Which disease?", "gt_answer": "Drusen.", "image_path": "Images/Retinal OCT-C8/b.png",
         "option_A": "Drusen", "option_B": "CNV", "option_C": "DME", "option_D": "Normal",
         "modality_type": "OCT (Optical Coherence Tomography"},
        {"dataset": "Retinal OCT-C8", "question_id": "oct_2", "question_type": "Disease Diagnosis",
         "question": "Which disease?", "gt_answer": "CNV", "image_path": "Images/Retinal OCT-C8/b.png",
         "option_A": "Drusen", "option_B": "CNV", "modality_type": "Thermal imaging"},
    ]
    (qa / "Chest CT Scan.json").write_text(json.dumps(ct))
    (qa / "Retinal OCT-C8.json").write_text(json.dumps(oct_))
    items, report = load_omnimedvqa(qa)
    check_items(items)
    assert [(it.item_id, it.modality, it.gold) for it in items] == [
        ("omnimedvqa-ct_1", "CT", "B"), ("omnimedvqa-ct_2", "CT", "B"), ("omnimedvqa-oct_1", "OCT", "A"),
        ("omnimedvqa-oct_2", "unknown", "B"),
    ]
    assert items[0].meta["question_type"] == "Disease Diagnosis" and items[0].area == "unknown"
    assert report.skipped == {"answer_not_an_option": 1, "unparseable_options": 1}
    assert report.warnings == {"modality_key_instead_of_modality_type": 1, "unmapped_modality": 1}


@pytest.mark.parametrize(
    "raw, ours",
    [("CT(Computed Tomography)", "CT"), ("MR (Mag-netic Resonance Imaging)", "MRI"), ("X-Ray", "X-ray"),
     ("ultrasound", "US"), ("Dermoscopy", "Der"), ("Fundus Photography", "FP"), ("Microscopy Images", "Mic"),
     ("OCT (Optical Coherence Tomography", "OCT"), ("Endoscopy", "End"), ("", "unknown"), ("Infrared Reflectance Imaging", "unknown")],
)
def test_omnimedvqa_modality_map(raw, ours):
    assert omnimedvqa_modality(raw) == ours


def test_pathvqa_answer_type_decides_open_or_not_yes_no(tmp_path: Path):
    # With an answer_type, a non-yes/no closed answer is not_yes_no and an open type is open_ended whatever the
    # answer; without one, a yes/no answer is what makes the question closed.
    png(tmp_path / "images" / "test" / "test_0001.jpg")
    recs = [
        {"image": "test_0001", "question": "Left or right?", "answer": "left", "answer_type": "closed"},
        {"image": "test_0001", "question": "Is it benign?", "answer": "yes", "answer_type": "open"},
        {"image": "test_0001", "question": "Is it benign?", "answer": "No.", "answer_type": "yes/no"},
        {"image": "test_0001", "question": "Is it benign?", "answer": "yes"},
        {"question": "Is it benign?", "answer": "yes"},
        {"image": "test_0001", "answer": "yes"},
    ]
    path = tmp_path / "test_qa.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    items, report = load_pathvqa(path)
    check_items(items)
    assert [(it.item_id, it.answer_text) for it in items] == [("pathvqa-test_qa-2", "No"), ("pathvqa-test_qa-3", "Yes")]
    assert report.skipped == {"not_yes_no": 1, "open_ended": 1, "no_image": 1, "malformed_record": 1}
    assert report.n_records == 6 and report.files == ["test_qa.jsonl"]
