"""The case viewer (issue 24): its data decode to what the metrics saw, it stays small, and a real headless Chromium
loads it, lists every case and method, moves the slice, switches method and plane without a JavaScript error, and
saves a screenshot under results/viewer_screenshots/."""
import base64
import gzip
import json
import os
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from clinxai.attribution.maps import save_maps
from clinxai.report.viewer import build_viewer, encode, quantise_map, window
from clinxai.tasks import KINDS

from helpers import ROOT

POST = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99, "positive_only": True}
METHODS = ["Gradient", "Occlusion"]
SEEDS = [10, 20]


def _decode(b64: str) -> np.ndarray:
    return np.frombuffer(gzip.decompress(base64.b64decode(b64)), np.uint8)


def make_viewer(tmp_path, kind_name: str) -> tuple:
    """A viewer of two cases and two models for a task of `kind_name`, from prepared arrays made here."""
    kind = KINDS[kind_name]
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    (data / "arrays").mkdir(parents=True)
    names = list(kind.modalities)
    cases = ["c1", "c2", "c3"]
    maps = {}
    for case in cases:
        if kind.layout == "views":
            arrays = {n: rng.normal(size=(5, 12, 12)).astype(np.float32) for n in names}
            box = np.zeros((5, 12, 12), np.uint8)
            box[2, 3:7, 4:9] = 1
            arrays.update({f"{kind.mask.key}_{n}": box for n in names})
            shapes = [(5, 12, 12)] * 3
        else:
            shape = (10, 12, 8) if kind.layout == "volume" else (16, 16)
            arrays = {"image": rng.normal(size=(4, *shape)).astype(np.float32)}
            seg = np.zeros(shape, np.uint8)
            seg[tuple(slice(2, 6) for _ in shape)] = 1
            arrays[kind.mask.key] = seg
            if kind.has_affine:
                arrays["affine"] = np.eye(4)
            shapes = [shape] * 4
        np.savez(data / "arrays" / f"{case}.npz", **arrays)
        maps[case] = [rng.random(s).astype(np.float32) for s in shapes]
    meta = {"channels": names, "grid": list(shapes[0])}
    (data / "meta.json").write_text(json.dumps(meta))
    paths, preds = {}, {}
    for seed in SEEDS:
        preds[seed] = tmp_path / f"pred{seed}.csv"
        pd.DataFrame({"case": cases, "label": [0, 1, 1], "pred": [1, 1, 0], "prob_0": [0.3, 0.2, 0.6],
                      "prob_1": [0.7, 0.8, 0.4]}).to_csv(preds[seed], index=False)
        for m in METHODS:
            paths[(seed, m)] = tmp_path / f"{seed}_{m}.npz"
            save_maps(paths[(seed, m)], maps)
    scores = pd.DataFrame({"seed": 10, "method": "Gradient", "case": "c1", "metric": ["rma", "ds"],
                           "value": [0.25, -0.5]})
    out = tmp_path / "viewer"
    manifest = build_viewer("t", kind, kind.title, SEEDS, METHODS, paths, preds, data, meta, 2, POST, 0, True,
                            [scores], True, out)
    return out, manifest, maps


@pytest.mark.parametrize("kind_name", ["glioma", "knee", "synthetic"])
def test_viewer_data_decode_to_the_arrays_and_scores(tmp_path, kind_name):
    out, manifest, maps = make_viewer(tmp_path, kind_name)
    assert [c["id"] for c in manifest["cases"]] == ["c1", "c2"]  # heatmaps.export.cases: the first two
    assert manifest["cases"][0]["models"]["10"] == {"label": 0, "pred": 1, "prob": 0.7}
    assert manifest["cases"][0]["status"]["20"]["Occlusion"] == "ok"
    assert manifest["scores"]["10"]["Gradient"]["c1"] == {"rma": 0.25, "ds": -0.5}
    def payload(name):
        text = (out / "cases" / "0" / name).read_text()
        return json.loads(text[len("clinxaiData("):-3])

    data = {**payload("images.js"), "maps": {"20": {"Occlusion": payload("20_Occlusion.js")["maps"]}}}
    arrays = np.load(tmp_path / "data" / "arrays" / "c1.npz")
    first = arrays[kind.modalities[0]] if (kind := KINDS[kind_name]).layout == "views" else arrays["image"][0]
    np.testing.assert_array_equal(_decode(data["images"][0]), window(first).ravel())
    # the map as post-processed for the metrics (normalised by the 99 % mass value, clipped to [0, 1])
    from clinxai.attribution.postprocess import postprocess

    parts, _ = postprocess(maps["c1"], [m.shape for m in maps["c1"]], POST)
    np.testing.assert_array_equal(_decode(data["maps"]["20"]["Occlusion"][1]), quantise_map(parts[1]).ravel())
    assert _decode(next(m for m in data["masks"] if m is not None)).sum() > 0
    page = (out / "index.html").read_text()
    assert "/*MANIFEST*/" not in page and "/*SCRIPT*/" not in page and "clinxaiData" in page
    assert len(list(out.glob("cases/*/*.js"))) == 2 * (1 + len(SEEDS) * len(METHODS))
    assert encode(np.zeros(10, np.uint8)) == encode(np.zeros(10, np.uint8))  # the same bytes every run


def browser_available() -> bool:
    import importlib.util

    return bool(importlib.util.find_spec("selenium") and shutil.which("chromium") and shutil.which("chromedriver"))


def _browser():
    """A headless Chromium driven by Selenium through Debian's chromedriver; skip with the reason when missing --
    fail instead under CLINXAI_REQUIRE_BROWSER=1 (.ci/run, which installs them)."""
    if not browser_available():
        why = ("no selenium, or no chromium / chromedriver on PATH: pip install selenium; apt-get install chromium "
               "chromium-driver (.ci/run does both)")
        if os.environ.get("CLINXAI_REQUIRE_BROWSER") == "1":
            pytest.fail(why)
        pytest.skip(why)
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not try to download a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(driver), options=opts)


def check_in_browser(index, screenshot, case_ids, methods, layout) -> None:
    """Load a viewer, check its DOM and interactions, fail on any console error, save a screenshot."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select, WebDriverWait

    browser = _browser()
    try:
        browser.get(index.resolve().as_uri())
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        listed = [b.get_attribute("data-case") for b in browser.find_elements(By.CSS_SELECTOR, "#case-list button")]
        assert listed == case_ids
        assert [o.get_attribute("value") for o in Select(browser.find_element(By.ID, "method")).options] == methods
        assert "not for diagnosis" in browser.find_element(By.ID, "banner").text
        words = browser.find_element(By.ID, "case-list").text  # truth and prediction in words
        assert re.search(r"model: \S.* \d\.\d\d — truth: \S.* — (right|wrong)", words), words

        def renders():
            return int(browser.find_element(By.TAG_NAME, "body").get_attribute("data-renders"))

        def state(key):
            return browser.execute_script(f"return window.viewerState.{key};")

        if layout != "slice":  # move the slice with the arrow keys
            before, n = state("slices")[0], renders()
            browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_UP)
            wait.until(lambda b: renders() > n)
            top = int(browser.find_element(By.ID, "slice-0").get_attribute("max"))
            assert state("slices")[0] == min(before + 1, top)
        n = renders()
        Select(browser.find_element(By.ID, "method")).select_by_value(methods[-1])
        wait.until(lambda b: renders() > n)
        assert state("method") == methods[-1]
        if layout == "volume":
            n = renders()
            Select(browser.find_element(By.ID, "plane")).select_by_value("coronal")
            wait.until(lambda b: renders() > n)
            assert state("plane") == "coronal"
        browser.find_elements(By.CSS_SELECTOR, "#case-list button")[-1].click()
        wait.until(lambda b: state("caseIndex") == len(case_ids) - 1 and renders() > n + 1)
        pixels = browser.execute_script(
            "const c = document.getElementById('panel-0'); const d = c.getContext('2d')"
            ".getImageData(0, 0, c.width, c.height).data; let s = 0; for (const v of d) s += v; return s;")
        assert pixels > 0
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(screenshot))
        errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not errors, errors
    finally:
        browser.quit()


@pytest.mark.parametrize("kind_name", ["glioma", "knee", "synthetic"])
def test_viewer_in_a_real_browser(tmp_path, kind_name):
    out, manifest, _ = make_viewer(tmp_path, kind_name)
    check_in_browser(out / "index.html", ROOT / "results" / "viewer_screenshots" / f"unit_{kind_name}.png",
                     ["c1", "c2"], METHODS, KINDS[kind_name].layout)



def test_large_axes_are_subsampled_alike(tmp_path):
    from clinxai.report.viewer import strides

    assert strides((128, 128, 128), 160) == (slice(None, None, 1),) * 3
    assert strides((32, 256, 256), 160) == (slice(None, None, 2),) * 3  # one stride: proportions kept
    assert strides((240, 240, 155), 64)[2] == slice(None, None, 4) and strides((9, 9), None)[0].step == 1
