"""report.html in a real browser: headless Chromium driven by Selenium.

Marked ``browser``: skipped (with the reason) where Chromium, chromedriver or selenium is missing, unless
CGEVAL_REQUIRE_BROWSER=1 (as `.ci/run` sets after installing Debian's chromium and chromium-driver), where a
missing browser fails the test instead.
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cgeval.analysis.report import write_report

from .conftest import make_predictions, with_items_text, write_html_run, write_images

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
XSS_REPLY = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2"> I pick B'
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,1000")


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no Chromium on PATH (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver on PATH (Debian: apt-get install chromium-driver)"
    return None


@pytest.fixture(scope="module")
def browser():
    why = _missing()
    if why:
        if os.environ.get("CGEVAL_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CGEVAL_REQUIRE_BROWSER=1 but {why}")
        pytest.skip(why)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="cgeval-chromium-")  # a fresh profile: no state from another run
    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in CHROMIUM_FLAGS + (f"--user-data-dir={profile}",):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, path: Path) -> list[dict]:
    """Load a report and wait for its script; return the console messages of the load."""
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser")  # drop what an earlier page logged
    driver.get(path.resolve().as_uri())
    WebDriverWait(driver, 20).until(lambda d: d.execute_script(
        "return document.documentElement.getAttribute('data-ready') === '1'"))
    return driver.get_log("browser")


def errors(log: list[dict]) -> list[str]:
    return [e["message"] for e in log if e["level"] in ("SEVERE", "ERROR")]


def select(driver, css: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.CSS_SELECTOR, css)).select_by_value(value)


def visible_rows(driver, table_id: str) -> list:
    from selenium.webdriver.common.by import By

    return [r for r in driver.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr") if r.is_displayed()]


def click(driver, element) -> None:
    """Click as a user does: with the element in the middle of the window (not under the sticky header)."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def cards(driver) -> list:
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, "#items article.item")


def status(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, "browser-status").text


@pytest.fixture(scope="module")
def crafted(tmp_path_factory):
    """A run over four compositions with images, unanswered items and one reply that is an HTML injection."""
    tmp = tmp_path_factory.mktemp("crafted")
    df = with_items_text(make_predictions(n_per_subset=30, items_per_image=1))
    df.loc[df.index[::6], ["pred", "correct", "parse_rule", "response"]] = [None, False, "refusal", "I cannot tell."]
    df["pred"] = df["pred"].astype(object).where(df["pred"].notna(), None)
    wrong = df.index[(~df["correct"]) & df["pred"].notna()][0]
    df.loc[wrong, "response"] = XSS_REPLY
    write_images(tmp / "data", df)
    folder = write_html_run(tmp / "run", df, tmp / "data")
    write_report(folder)
    return df, folder, df.loc[wrong, "item_id"]


def test_report_opens_without_console_errors_and_tables_filter(browser, crafted):
    from selenium.webdriver.common.by import By

    df, folder, _ = crafted
    assert errors(open_page(browser, folder / "report.html")) == []
    n_comp = df["subset"].nunique()
    assert len(visible_rows(browser, "comp-table")) == n_comp
    select(browser, "[data-for=comp-table] select[data-key=split]", "unseen")
    shown = visible_rows(browser, "comp-table")
    assert len(shown) == df.loc[df["split"] == "unseen", "subset"].nunique() == 1
    assert "unseen" in shown[0].text
    select(browser, "[data-for=comp-table] select[data-key=split]", "")
    select(browser, "[data-for=comp-table] select[data-key=area]", "Lung")
    assert len(visible_rows(browser, "comp-table")) == df.loc[df["area"] == "Lung", "subset"].nunique() == 3

    # sorting by accuracy puts the rows in accuracy order
    select(browser, "[data-for=comp-table] select[data-key=area]", "")
    header = browser.find_elements(By.CSS_SELECTOR, "#comp-table thead th")[7]
    click(browser, header)
    values = [float(r.find_elements(By.TAG_NAME, "td")[7].get_attribute("data-v"))
              for r in visible_rows(browser, "comp-table")]
    assert values == sorted(values) and len(set(values)) > 1
    click(browser, header)
    values = [float(r.find_elements(By.TAG_NAME, "td")[7].get_attribute("data-v"))
              for r in visible_rows(browser, "comp-table")]
    assert values == sorted(values, reverse=True)


def test_item_browser_filters_change_the_visible_items(browser, crafted):
    df, folder, _ = crafted
    open_page(browser, folder / "report.html")
    n_not_right = int((~df["correct"]).sum())
    assert f"of {n_not_right} matching" in status(browser)  # opens on the wrong and unanswered items
    assert len(cards(browser)) == min(25, n_not_right)
    assert all("correct" not in c.get_attribute("class").split() for c in cards(browser))

    select(browser, "#f-outcome", "0")
    assert f"of {int(df['correct'].sum())} matching" in status(browser)
    assert all("correct" in c.get_attribute("class").split() for c in cards(browser))
    select(browser, "#f-outcome", "2")
    assert f"of {int(df['pred'].isna().sum())} matching" in status(browser)
    select(browser, "#f-outcome", "")
    assert f"of {len(df)} matching" in status(browser)

    select(browser, "#f-comp", "0")  # the first composition in sorted order: 02, a seen one
    label = sorted({f"{s:02d}" for s in df["subset"]})[0]
    n = int((df["subset"] == int(label)).sum())
    assert f"of {n} matching" in status(browser)
    assert all(label + " " in c.text for c in cards(browser))
    select(browser, "#f-split", "1")  # "unseen" (after "seen")
    assert status(browser) == "no items match these filters" and cards(browser) == []

    # a confusion-matrix cell lists exactly its items
    select(browser, "#f-comp", "")
    select(browser, "#f-split", "")
    from selenium.webdriver.common.by import By

    cell = next(td for td in browser.find_elements(By.CSS_SELECTOR, "table.cm tbody td:not(.num)")
                if td.is_displayed() and int(td.text.split()[0]) >= 2)
    k = int(cell.text.split()[0])
    click(browser, cell)
    assert f"of {k} matching" in status(browser)
    assert browser.find_element(By.ID, "cell-chip").is_displayed()
    click(browser, browser.find_element(By.ID, "cell-clear"))
    assert f"of {n_not_right} matching" not in status(browser)  # outcome "all" stays, the cell filter is gone


def test_a_script_in_a_reply_is_shown_as_text_and_never_runs(browser, crafted, tmp_path):
    from selenium.webdriver.common.by import By

    df, folder, wrong_id = crafted
    log = open_page(browser, folder / "report.html")
    search = browser.find_element(By.ID, "f-q")
    search.send_keys("window.__xss")
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 5).until(lambda d: "of 1 matching" in status(d))
    card = cards(browser)[0]
    assert card.get_attribute("data-item") == wrong_id
    assert card.find_element(By.CSS_SELECTOR, ".reply pre").text == XSS_REPLY
    assert browser.execute_script("return typeof window.__xss") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"], #items script').length") == 0
    assert errors(log + browser.get_log("browser")) == []
    # the thumbnail is there and small
    img = card.find_element(By.CSS_SELECTOR, ".thumb img")
    w, h = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", img)
    assert 0 < max(w, h) <= 160

    shot = tmp_path / "report.png"
    browser.execute_script("document.getElementById('headline').scrollIntoView({behavior: 'instant'})")
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 20_000 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_run_of_the_cli_on_the_embedded_sample_opens_in_the_browser(browser, tmp_path):
    """The user's path: `python -m cgeval` writes report.html; it opens, shows the items with their images."""
    from selenium.webdriver.common.by import By

    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-m", "cgeval", "experiment=holdout_ct_lung", "model=random",
                           f"hydra.run.dir={out}", "progress=false"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert errors(open_page(browser, out / "report.html")) == []
    assert len(visible_rows(browser, "comp-table")) == 12
    first = cards(browser)[0]
    assert first.find_element(By.CSS_SELECTOR, ".question").text.strip()
    assert len(first.find_elements(By.CSS_SELECTOR, "ul.options li")) >= 2
    loaded = browser.execute_script(
        "return Array.from(document.querySelectorAll('#items img')).every(i => i.complete && i.naturalWidth > 0)")
    assert loaded and len(browser.find_elements(By.CSS_SELECTOR, "#items img")) == len(cards(browser))


def test_comparison_page_opens_filters_and_links_each_run(browser, tmp_path):
    from selenium.webdriver.common.by import By

    runs = []
    for seed, name in ((0, "base"), (1, "trained")):
        df = with_items_text(make_predictions(n_per_subset=15, seed=seed))
        runs.append(str(write_html_run(tmp_path / name, df, None)))
    from cgeval.analysis.cli import main

    assert main([*runs, "--out", str(tmp_path / "rep"), "--bootstrap", "50", "--thumbnails", "0"]) == 0
    assert errors(open_page(browser, tmp_path / "rep" / "report.html")) == []
    assert len(visible_rows(browser, "sbs-table")) == 4
    select(browser, "[data-for=sbs-table] select[data-key=split]", "unseen")
    assert len(visible_rows(browser, "sbs-table")) == 1
    click(browser, browser.find_element(By.LINK_TEXT, "trained"))
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, 20).until(lambda d: d.execute_script(
        "return document.documentElement.getAttribute('data-ready') === '1' && location.href.endsWith('trained/report.html')"))
    assert errors(browser.get_log("browser")) == []
