"""report.html without a browser: what the page holds, escaping, thumbnails, the sections' numbers.

The page's behaviour in a real browser (filters, sorting, an inert <script> reply) is tested in
test_html_browser.py."""

import base64
import io
import json
import re
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from cgeval.analysis.cli import main as report_main
from cgeval.analysis.html_sections import UNANSWERED, confusion_matrices, label_columns
from cgeval.analysis.metrics import load_run, prepare
from cgeval.analysis.html_report import write_run_html
from cgeval.analysis.report import analyse_run, write_report
from cgeval.analysis.thumbnails import THUMB_PX, make_thumbnails, pick_round_robin, thumbnail_data_uri
from cgeval.config import DataConfig, ExperimentConfig, RunConfig
from cgeval.data.sample import SAMPLE_ROOT
from cgeval.models.baselines import RandomBaseline
from cgeval.run import run as run_pipeline

from .conftest import make_predictions, with_items_text, write_html_run, write_images

REPO = Path(__file__).resolve().parents[2]
XSS_REPLY = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> B'
XSS_QUESTION = "</script><script>window.__xss = 3</script> Which finding?"
XSS_OPTION = "<b>Normal</b> & 'fine'"


class Elements(HTMLParser):
    """Every start tag with its attributes, and the text of each <script>."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict]] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def parse(html: str) -> Elements:
    p = Elements()
    p.feed(html)
    return p


def page_data(html: str) -> dict:
    scripts = [(a, t) for (tag, a), t in zip([x for x in parse(html).tags if x[0] == "script"], parse(html).scripts)]
    blob = next(text for attrs, text in scripts if attrs.get("id") == "cgeval-data")
    return json.loads(blob)


def rich_run(tmp_path, n_per_subset=12, seed=0, images=True, **kw):
    df = with_items_text(make_predictions(n_per_subset=n_per_subset, seed=seed, **kw), seed=seed)
    # a few unanswered items: no letter extracted
    unanswered = df.index[::7]
    df.loc[unanswered, "pred"] = None
    df.loc[unanswered, "correct"] = False
    df.loc[unanswered, "parse_rule"] = "refusal"
    df["pred"] = df["pred"].astype(object).where(df["pred"].notna(), None)
    root = tmp_path / "data"
    if images:
        write_images(root, df)
    return df, write_html_run(tmp_path / "run", df, root)


def test_run_report_is_one_self_contained_file(tmp_path):
    df, folder = rich_run(tmp_path)
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    els = parse(html)
    # nothing fetched from anywhere: no external script, stylesheet, image or font
    for tag, attrs in els.tags:
        for name in ("src", "href"):
            v = attrs.get(name)
            if v is not None:
                assert v.startswith(("#", "data:")) or tag == "a" and not re.match(r"[a-z]+://", v), (tag, attrs)
    assert not any(tag == "link" for tag, _ in els.tags)
    assert "@import" not in html and "url(http" not in html
    # two scripts: the data block and the page's own code; the forest plot inline as SVG
    assert [a.get("type") for t, a in els.tags if t == "script"] == ["application/json", None]
    assert "<svg" in html
    data = page_data(html)
    assert len(data["items"]) == len(df)
    assert all(t.startswith("data:image/jpeg;base64,") for t in data["thumbs"])


def test_replies_questions_and_options_are_text_never_markup(tmp_path):
    df, folder = rich_run(tmp_path)
    df.loc[0, "response"] = XSS_REPLY
    df.loc[1, "question"] = XSS_QUESTION
    opts = dict(df.loc[2, "options"])
    opts[df.loc[2, "gold"]] = XSS_OPTION
    df.at[2, "options"] = opts
    df.loc[2, "answer_text"] = XSS_OPTION
    write_html_run(folder, df, tmp_path / "data")
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    els = parse(html)
    assert len(els.scripts) == 2  # no script element came from the data
    assert not any("onerror" in attrs for _, attrs in els.tags)
    assert "window.__xss" not in els.scripts[1]
    assert "<b>Normal</b>" not in html  # the option text as a confusion-matrix label is escaped
    assert "&lt;b&gt;Normal&lt;/b&gt;" in html
    data = page_data(html)  # and the item browser gets the exact text back
    items = {it[0]: it for it in data["items"]}
    assert items[df.loc[0, "item_id"]][9] == XSS_REPLY
    assert items[df.loc[1, "item_id"]][7] == XSS_QUESTION
    assert [df.loc[2, "gold"], XSS_OPTION] in items[df.loc[2, "item_id"]][8]


def test_thumbnail_is_downscaled_and_16_bit_scans_are_windowed(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (900, 1200, 3), dtype=np.uint8)).save(big)
    uri = thumbnail_data_uri(big)
    im = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert im.format == "JPEG" and max(im.size) == THUMB_PX and im.size == (160, 120)

    scan = tmp_path / "scan16.png"
    arr = np.tile(np.linspace(1000, 4000, 200, dtype=np.uint16), (100, 1))  # 12-bit values, a ramp
    Image.fromarray(arr).save(scan)  # uint16: Pillow opens it again as a 16-bit grey image
    im = Image.open(io.BytesIO(base64.b64decode(thumbnail_data_uri(scan).split(",", 1)[1])))
    values = np.asarray(im.convert("L"), dtype=float)
    assert im.mode == "L" and values[:, :10].mean() < 40 and values[:, -10:].mean() > 215  # not clipped white


def test_round_robin_takes_one_of_each_group_in_turn():
    groups = ["a", "a", "a", "b", "c", "c"]
    assert pick_round_robin(groups, range(6)) == [0, 3, 4, 1, 5, 2]
    assert pick_round_robin(groups, [2, 5]) == [2, 5]


def test_thumbnails_go_to_wrong_and_unanswered_items_of_every_composition_first(tmp_path):
    df, folder = rich_run(tmp_path, n_per_subset=20, items_per_image=1)
    write_report(folder)  # every image fits the default budget: every item gets one
    data = page_data((folder / "report.html").read_text(encoding="utf-8"))
    assert all(it[12] >= 0 for it in data["items"])

    from cgeval.analysis.report import write_run_outputs

    out = tmp_path / "capped"
    write_run_outputs(load_run(folder), out, all_figures=False, max_thumbs=6)
    html = (out / "report.html").read_text(encoding="utf-8")
    data = page_data(html)
    with_thumb = [it for it in data["items"] if it[12] >= 0]
    assert len(data["thumbs"]) == 6 and len(with_thumb) == 6
    assert all(it[3] != 0 for it in with_thumb)  # none of them correct
    assert len({it[1] for it in with_thumb}) == 4  # one composition after another: all four have some
    n_not_right = int((~df["correct"]).sum())
    assert f"for 6 of the {n_not_right}" in html


def test_a_byte_budget_caps_the_thumbnails(tmp_path):
    paths = []
    for i in range(10):
        p = tmp_path / f"i{i}.png"
        Image.fromarray(np.random.default_rng(i).integers(0, 255, (300, 300), dtype=np.uint8)).save(p)
        paths.append(p.name)
    one = len(thumbnail_data_uri(tmp_path / "i0.png"))
    t = make_thumbnails(paths, tmp_path, max_count=100, max_bytes=int(3.5 * one))
    assert 2 <= len(t.uris) <= 4 and t.n_bytes <= 3.5 * one
    assert len(t.uris) + t.capped == 10


def test_long_replies_and_many_images_stay_within_the_page_size(tmp_path):
    df, folder = rich_run(tmp_path, n_per_subset=60, items_per_image=1)
    df["response"] = [f"{i} " + "reasoning " * 600 for i in range(len(df))]  # 6,000 characters each
    write_html_run(folder, df, tmp_path / "data")
    rng = np.random.default_rng(0)
    for rel in df["image"].unique():  # noise: thumbnails of several kB each, more than the page has room for
        Image.fromarray(rng.integers(0, 255, (240, 320), dtype=np.uint8)).save(tmp_path / "data" / rel)
    run = load_run(folder)
    limit = 700_000  # 240 replies of 2,000 characters would take 480,000 bytes: more than half of it
    path = write_run_html(run, analyse_run(run, n_boot=50), tmp_path / "small", max_bytes=limit)
    html = path.read_text(encoding="utf-8")
    assert len(html.encode()) <= limit
    data = page_data(html)
    cap = len(data["items"][0][9])
    assert 200 <= cap < 2000 and all(len(it[9]) <= cap for it in data["items"])
    assert all(it[10] == len(df.loc[i, "response"]) - len(it[9]) for i, it in enumerate(data["items"]))
    assert f"Replies longer than {cap} characters are cut here" in html
    assert 0 < len(data["thumbs"]) < df["image"].nunique()  # what the text left, not all of them
    # the same run with room to spare: every reply whole up to 2,000 characters, every image
    roomy = page_data(write_run_html(run, analyse_run(run, n_boot=50), tmp_path / "roomy").read_text(encoding="utf-8"))
    assert len(roomy["items"][0][9]) == 2000 and len(roomy["thumbs"]) == df["image"].nunique()


def test_missing_and_unreadable_images_are_counted_and_named(tmp_path):
    df, folder = rich_run(tmp_path, images=False)
    bad = tmp_path / "data" / df.loc[0, "image"]
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"not a png")
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    n_images = df["image"].nunique()
    assert f"{n_images - 1} images not found under {tmp_path / 'data'}" in html
    assert "1 images could not be decoded" in html and "--image-root" in html
    assert page_data(html)["thumbs"] == []

    # --image-root points the report at where the images are now
    write_images(tmp_path / "moved", df)
    assert report_main([str(folder), "--out", str(tmp_path / "rep"), "--image-root", str(tmp_path / "moved"),
                        "--bootstrap", "50"]) == 0
    assert len(page_data((tmp_path / "rep" / "report.html").read_text(encoding="utf-8"))["thumbs"]) == n_images


def test_confusion_matrix_counts_every_gold_and_predicted_label(tmp_path):
    df, _ = rich_run(tmp_path, images=False)
    d = prepare(df)
    gold, pred, note = label_columns(d)
    assert "Labels are option texts" in note
    matrices = {m["composition"]: m for m in confusion_matrices(d, gold, pred)}
    # an independent count over the rows
    for comp, sub in df.assign(composition=d["composition"].astype(str)).groupby("composition"):
        expected = Counter()
        for r in sub.itertuples(index=False):
            g = r.options[r.gold]
            p = UNANSWERED if r.pred is None else r.options[r.pred]
            expected[(g, p)] += 1
        m = matrices[comp]
        got = Counter({(row["label"], col): c["k"] for row in m["rows"] for col, c in zip(m["cols"], row["cells"])
                       if c["k"]})
        assert got == expected, comp
        for row in m["rows"]:
            assert row["n"] == sum(v for (g, _), v in expected.items() if g == row["label"])


def test_a_composition_answered_with_one_label_is_flagged(tmp_path):
    df, _ = rich_run(tmp_path, images=False)
    d = prepare(df)
    target = d["composition"].astype(str) == d["composition"].astype(str).iloc[0]
    # the model answers "Normal" on every item of the first composition
    for i in d.index[target]:
        opts = dict(d.at[i, "options"])
        letter = next(iter(opts))
        opts[letter] = "Normal"
        opts = {k: (v if k == letter or v != "Normal" else "Other") for k, v in opts.items()}
        d.at[i, "options"] = opts
        d.at[i, "pred"] = letter
    gold, pred, _ = label_columns(d)
    flags = {m["composition"]: m["collapse"] for m in confusion_matrices(d, gold, pred)}
    first = d["composition"].astype(str).iloc[0]
    assert flags[first]["label"] == "Normal" and flags[first]["share"] == "100"
    assert sum(f is not None for f in flags.values()) == 1


def test_predictions_without_options_are_read_by_letter(tmp_path):
    df = make_predictions()
    folder = write_html_run(tmp_path / "old", df, None)
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "Labels are letters" in html
    assert "no image folder recorded" in html
    data = page_data(html)
    assert all(it[8] is None for it in data["items"])


def test_likelihood_and_circular_rows_show_their_scores_and_rotations(tmp_path):
    df = with_items_text(make_predictions(n_options=4))
    df["response"] = None
    df["parse_rule"] = "likelihood"
    df["option_scores"] = [{"A": -0.5, "B": -1.25, "C": -2.0, "D": -3.0}] * len(df)
    folder = write_html_run(tmp_path / "lik", df, None)
    write_report(folder)
    item = page_data((folder / "report.html").read_text(encoding="utf-8"))["items"][0]
    assert item[9] is None and item[15] == "log-probabilities: A -0.50, B -1.25, C -2.00, D -3.00"

    circ = with_items_text(make_predictions(n_options=4)).assign(
        circular=True, n_rotations=4, n_rotations_correct=3, preds_original=[["A", "A", None, "B"]] * 40 * 2,
        n_parse_failures=1, parse_rule="circular")
    folder = write_html_run(tmp_path / "circ", circ, None)
    write_report(folder)
    data = page_data((folder / "report.html").read_text(encoding="utf-8"))
    assert data["items"][0][15] == "circular: 3/4 rotations right; answers per rotation (original letters): A A - B"
    assert all(it[3] == 2 or it[3] == 0 for it in data["items"])  # a rotation unanswered: unanswered unless right


def test_expected_composition_without_items_renders_as_na(tmp_path):
    df, folder = rich_run(tmp_path, images=False)
    write_html_run(folder, df, None, {"heldout_subsets": [3, 5]})  # subset 5 has no rows
    write_report(folder)
    html = (folder / "report.html").read_text(encoding="utf-8")
    assert "05 CT-Brain-Hemorrhage" in html and "n/a: no items in predictions" in html


def test_the_pipeline_writes_report_html_with_the_items_text_and_images(tmp_path):
    cfg = RunConfig(data=DataConfig(root=str(SAMPLE_ROOT)),
                    experiment=ExperimentConfig(name="holdout_ct_lung", heldout=[{"modality": "CT", "area": "Lung"}]),
                    output_dir=str(tmp_path / "run"), progress=False)
    run_pipeline(cfg, RandomBaseline(seed=0))
    preds = pd.read_json(tmp_path / "run" / "predictions.jsonl", lines=True, dtype=False)
    assert preds["question"].str.len().gt(0).all() and preds["options"].map(len).eq(preds["n_options"]).all()
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    facts = re.findall(r"<dt>([^<]+)</dt><dd>([^<]*)</dd>", html)
    assert ("experiment", "holdout_ct_lung") in facts and ("model", "random") in facts
    assert ("started (UTC)", manifest["environment"]["time_utc"]) in facts
    data = page_data(html)
    assert len(data["items"]) == 120 and len(data["thumbs"]) == preds["image"].nunique()
    first = {it[0]: it for it in data["items"]}[preds.loc[0, "item_id"]]
    assert first[7] == preds.loc[0, "question"] and first[8] == [[k, v] for k, v in preds.loc[0, "options"].items()]


def test_report_cli_writes_a_comparison_page_with_paired_tests(tmp_path):
    df, a = rich_run(tmp_path / "a", seed=0)
    other = with_items_text(make_predictions(n_per_subset=12, seed=1), seed=0)
    b = write_html_run(tmp_path / "b" / "run", other, tmp_path / "a" / "data")
    c = write_html_run(tmp_path / "c" / "run", other.iloc[:-3], None)  # not the same items
    out = tmp_path / "rep"
    proc = subprocess.run([sys.executable, "-m", "cgeval.report", str(a), str(b), str(c), "--labels", "base",
                           "trained", "fewer", "--out", str(out), "--bootstrap", "50"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    html = (out / "report.html").read_text(encoding="utf-8")
    links = [attrs["href"] for tag, attrs in parse(html).tags if tag == "a" and "href" in attrs
             and not attrs["href"].startswith("#")]
    assert links == ["base/report.html", "trained/report.html", "fewer/report.html"]
    assert all((out / link).is_file() for link in links)
    assert "trained vs base" in html and "p (Holm)" in html
    assert "No paired test: runs &#39;base&#39; and &#39;fewer&#39; are not over the same items" in html
    # the side-by-side rows: one per composition, every run's accuracy
    assert html.count("<tr data-split=") == 4
