"""Benchmark: report.html for a synthetic 10,000-item run: how large the file is, how fast it opens.

Builds a run folder the way cgeval.run writes one (30 released subsets, 4 held out, 2-4 options, replies from a
bare letter to a paragraph of reasoning, about 45% wrong and 5% unanswered) over 10,000 distinct 512 x 512 grey
PNG images, writes report.html through the same call a run makes at its end (``write_report``), then opens it in
headless Chromium and reports:

* the file size (target: <= 25 MB) and how many thumbnails it embeds;
* the time to open it, from navigation start: until the page's script has built the tables and drawn the first
  page of the item browser (``window.cgevalReport.readyMs``), and until the load event; also the wall time of
  ``driver.get``, which adds the WebDriver round trip. Medians of ``--repeat`` fresh browsers (target: < 2 s).

    python experiments/bench_html_report.py [--items 10000] [--repeat 3] [--keep DIR] [--screenshot PNG]

Needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package (``pip install -e '.[test]'``).
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cgeval.analysis.report import write_report
from cgeval.data.registry import SUBSETS

LABELS = ["Normal", "Pneumonia", "COVID-19", "Tuberculosis", "Benign", "Malignant", "Glioma", "Meningioma",
          "Pituitary tumor", "Fracture", "No fracture", "Cataract", "Glaucoma", "Diabetic retinopathy"]
REASONING = ("Looking at the image, the opacity pattern in the lower zones and the preserved margins suggest "
             "an inflammatory process rather than a mass. Considering the options, the most consistent finding "
             "is the one described in option {letter}. ")


class ScanMaker:
    """Grey 'scans' that compress like medical images: a smooth body, a few bright blobs, mild noise. Built from
    precomputed pieces (shifted and summed), so ten thousand distinct images take seconds, not minutes."""

    def __init__(self, seed: int, size: int = 512):
        y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
        rng = np.random.default_rng(seed)
        self.seed, self.size = seed, size
        self.body = 60 + 80 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) * 4)
        self.blobs = [90 * np.exp(-((x - 0.5) ** 2 + (y - 0.5) ** 2) / (2 * r * r)) for r in (0.03, 0.06, 0.1)]
        self.noise = rng.normal(0, 6, (2 * size, 2 * size)).astype(np.float32)

    def save(self, path: Path, index: int) -> None:
        rng, n = np.random.default_rng([self.seed, index]), self.size  # image i is the same whatever else is built
        img = self.body.copy()
        for _ in range(int(rng.integers(2, 5))):
            img += np.roll(self.blobs[int(rng.integers(0, 3))], tuple(rng.integers(-n // 3, n // 3, 2)), axis=(0, 1))
        oy, ox = rng.integers(0, n, 2)
        img += self.noise[oy:oy + n, ox:ox + n]
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8), mode="L").save(path, compress_level=1)


def make_run(folder: Path, images: Path, n_items: int, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    subsets = [s for s in sorted(SUBSETS) if SUBSETS[s].released][:30]
    heldout = set(subsets[:4])
    images.mkdir(parents=True, exist_ok=True)
    scans = ScanMaker(seed)
    rows = []
    for i in range(n_items):
        s = subsets[i % len(subsets)]
        sub = SUBSETS[s]
        k = int(rng.integers(2, 5))
        labels = list(rng.choice(LABELS, size=k, replace=False))
        letters = "ABCD"[:k]
        gold = letters[int(rng.integers(0, k))]
        u = rng.random()
        if u < 0.05:
            reply, pred, rule = "I cannot determine this from the image alone.", None, "refusal"
        else:
            pred = gold if u < 0.55 else letters[int(rng.integers(0, k))]
            form = rng.random()
            if form < 0.4:
                reply, rule = pred, "bare_letter"
            elif form < 0.8:
                reply, rule = f"The answer is {pred}.", "answer_is"
            else:
                reply, rule = REASONING.format(letter=pred) * int(rng.integers(1, 4)) + f"Answer: {pred}", "answer_colon"
        rel = f"med-mat/{sub.datasets[0]}/img{i:05d}.png"
        (images / rel).parent.mkdir(parents=True, exist_ok=True)
        if not (images / rel).is_file():  # a --keep folder from an earlier build keeps its images
            scans.save(images / rel, i)
        rows.append({
            "item_id": f"S{s:02d}-{i}", "subset": s, "dataset": sub.datasets[0], "modality": sub.modality,
            "area": sub.area, "task": sub.task, "split": "unseen" if s in heldout else "seen",
            "shared_elements": 3 if s in heldout else int(rng.integers(0, 3)), "n_options": k, "gold": gold,
            "response": reply, "pred": pred, "correct": pred == gold, "parse_rule": rule, "option_scores": None,
            "unscored_options": None, "answer_text": labels[letters.index(gold)],
            "question": f"What does this {sub.modality} image of the {sub.area.lower()} show?",
            "options": dict(zip(letters, labels)), "image": rel, "prompt": None, "cache_key": f"{i:024x}",
        })
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    manifest = {"status": "complete", "data": {"root": str(images), "n_items": n_items}, "n_predictions": n_items,
                "heldout_subsets": sorted(heldout), "experiment": {"name": "bench"}, "model": {"name": "synthetic"},
                "scoring": {"mode": "generate", "circular": False, "extract": "strict"}, "seed": seed}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return folder


def open_times(html: Path, repeat: int) -> tuple[list[float], list[float], list[float], list[str]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    ready, load, wall, errors = [], [], [], []
    for _ in range(repeat):  # a fresh browser each time: no cache, no warm renderer
        profile = tempfile.mkdtemp(prefix="cgeval-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
        for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  f"--user-data-dir={profile}", "--window-size=1400,1000"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
        try:
            t0 = time.perf_counter()
            driver.get(html.resolve().as_uri())
            wall.append(time.perf_counter() - t0)
            ready.append(driver.execute_script("return window.cgevalReport.readyMs") / 1000)
            load.append(driver.execute_script(
                "return performance.getEntriesByType('navigation')[0].loadEventEnd") / 1000)
            errors += [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        finally:
            driver.quit()
            shutil.rmtree(profile, ignore_errors=True)
    return ready, load, wall, errors


def screenshot(html: Path, out: Path, width: int = 1280) -> None:
    """The headline, the composition table and the item browser, stacked in one small palette PNG (the README's
    picture)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cgeval-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              f"--user-data-dir={profile}", f"--window-size={width},1000", "--hide-scrollbars"):
        opts.add_argument(a)
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    parts = []
    try:
        driver.get(html.resolve().as_uri())
        nav = driver.execute_script("return document.querySelector('nav.toc').getBoundingClientRect().height")
        for anchor, height in (("", 340), ("compositions", 300), ("browser", 560)):
            top = 0
            if anchor:  # scrolled: the sticky contents bar is at the top, leave it out
                driver.execute_script(f"document.getElementById('{anchor}').scrollIntoView()")
                top = int(nav)
            png = Image.open(io.BytesIO(driver.get_screenshot_as_png()))
            parts.append(png.crop((0, top, png.width, min(top + height, png.height))))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    sheet = Image.new("RGB", (parts[0].width, sum(p.height for p in parts) + 6), "#888888")
    y = 0
    for part in parts:
        sheet.paste(part.convert("RGB"), (0, y))
        y += part.height + 6
    sheet = sheet.resize((1000, round(sheet.height * 1000 / sheet.width)), Image.Resampling.LANCZOS)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"screenshot: {out} ({out.stat().st_size / 1e3:.0f} kB)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--items", type=int, default=10_000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--keep", type=Path, help="build the run here and keep it (default: a temporary folder)")
    p.add_argument("--screenshot", type=Path, metavar="PNG", help="also save a picture of the page (docs/report.png)")
    args = p.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="cgeval-bench-html-"))
    try:
        t0 = time.perf_counter()
        run = make_run(base / "run", base / "data", args.items)
        print(f"synthetic run: {args.items} items, {args.items} images of 512 x 512 ({time.perf_counter() - t0:.1f} s)")
        t0 = time.perf_counter()
        write_report(run, title="bench")
        print(f"write_report (metrics, tables, figures, report.html): {time.perf_counter() - t0:.1f} s")
        html = run / "report.html"
        size = html.stat().st_size
        text = html.read_text(encoding="utf-8")
        print(f"report.html: {size / 1e6:.1f} MB ({size:,} bytes; target <= 25 MB), "
              f"{text.count('data:image/jpeg;base64,')} thumbnails embedded")
        ready, load, wall, errors = open_times(html, args.repeat)

        def show(xs):
            return f"median {statistics.median(xs):.2f} s [{', '.join(f'{x:.2f}' for x in xs)}]"

        print(f"open in headless Chromium, {args.repeat} fresh loads (target < 2 s), from navigation start:\n"
              f"  page ready (script done, first page of items drawn): {show(ready)}\n"
              f"  load event (thumbnails of that page decoded):        {show(load)}\n"
              f"  driver.get wall time (adds the WebDriver round trip): {show(wall)}")
        if errors:
            print("console errors:", *errors, sep="\n  ")
        if args.screenshot:
            screenshot(html, args.screenshot)
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
