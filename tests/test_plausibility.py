"""The plausibility stage's masks and per-case scores, and the tables and scorecard built from the statistics."""
import io
import math

import numpy as np
import pandas as pd
import pytest

from clinxai import ClinxaiError
from clinxai.config import dilation_size
from clinxai.analysis.scorecard import all_methods, scorecard
from clinxai.data.cases import clinical_masks, dilate_axial
from clinxai.evaluation.plausibility import run_plausibility
from clinxai.report.tables import latex, markdown, scorecard_wide, table2, table3, table4
from clinxai.tasks import KINDS

TASKS = [{"task": "glioma", "kind": "glioma", "title": "Glioma", "truthfulness": "removal"},
         {"task": "knee", "kind": "knee", "title": "Knee", "truthfulness": "removal"},
         {"task": "synthetic", "kind": "synthetic", "title": "Synthetic glioma", "truthfulness": "groundtruth"}]


def test_dilation_is_the_reference_square_scaled_to_the_grid():
    assert dilation_size(20, 128, 128) == 20 and dilation_size(20, 128, 32) == 5 and dilation_size(0, 128, 32) == 0
    seg = np.zeros((11, 11, 3), bool)
    seg[5, 5, 1] = True
    out = dilate_axial(seg, 5)
    assert out[:, :, 1].sum() == 25 and out[3:8, 3:8, 1].all()
    assert not out[:, :, 0].any() and not out[:, :, 2].any()  # per axial slice: no growth across slices


def _write_case(tmp_path, case, **arrays):
    (tmp_path / "arrays").mkdir(exist_ok=True)
    np.savez(tmp_path / "arrays" / f"{case}.npz", **arrays)


def test_case_masks_per_task(tmp_path):
    seg = np.zeros((8, 8, 4), np.uint8)
    seg[2:4, 2:4, 1] = 4
    _write_case(tmp_path, "g1", seg=seg)
    masks = clinical_masks(KINDS["glioma"], tmp_path, "g1", ["T1", "T1C", "T2", "FLAIR"])
    assert len(masks) == 4 and all(m.sum() == 4 for m in masks)
    _write_case(tmp_path, "s1", seg=seg[:, :, 1])
    masks = clinical_masks(KINDS["synthetic"], tmp_path, "s1", ["FLAIR", "T1", "T1C", "T2"])
    assert [m is None for m in masks] == [True, True, False, True]


def test_knee_without_boxes_names_the_key(tmp_path):
    _write_case(tmp_path, "k1", axial=np.zeros((2, 4, 4)))
    with pytest.raises(ClinxaiError, match="boxes_dir"):
        clinical_masks(KINDS["knee"], tmp_path, "k1", ["axial", "coronal", "sagittal"])


def test_empty_mask_names_the_case(tmp_path):
    _write_case(tmp_path, "g2", seg=np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ClinxaiError, match="case g2: empty plausibility mask"):
        clinical_masks(KINDS["glioma"], tmp_path, "g2", ["T1", "T1C", "T2", "FLAIR"])


def test_run_plausibility_map_fully_inside_the_mask(tmp_path):
    """Glioma case whose map lies inside the tumour on every channel: FP = MSFI = 1; the prediction is joined."""
    from clinxai.attribution.maps import save_maps

    seg = np.zeros((6, 6, 3), np.uint8)
    seg[1:4, 1:4, :] = 1
    _write_case(tmp_path, "c1", seg=seg)
    inside = np.where(seg > 0, 1.0, 0.0).astype(np.float32)
    save_maps(tmp_path / "maps.npz", {"c1": [inside * (i + 1) for i in range(4)]})
    pd.DataFrame({"case": ["c1"], "label": [1], "pred": [1], "prob_0": [0.2], "prob_1": [0.8]}).to_csv(
        tmp_path / "pred.csv", index=False)
    names = ["T1", "T1C", "T2", "FLAIR"]
    pd.DataFrame({"seed": 10, "modality": names, "phi": [0.1, 0.4, 0.2, 0.3]}).to_csv(tmp_path / "phi.csv",
                                                                                       index=False)
    post = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99, "positive_only": True}
    t = run_plausibility("glioma", KINDS["glioma"], "Gradient", [10], [tmp_path / "maps.npz"], [tmp_path / "pred.csv"],
                         tmp_path / "phi.csv", tmp_path, names, post, "minmax", 0, tmp_path / "out.csv")
    r = t.iloc[0]
    assert r["fp"] == pytest.approx(1) and r["msfi"] == pytest.approx(1) and r["correct"] and r["prob_pred"] == 0.8
    # a map on the wrong grid is named with its case
    save_maps(tmp_path / "bad.npz", {"c1": [np.ones((5, 5, 3), np.float32)] * 4})
    with pytest.raises(ClinxaiError, match="case c1"):
        run_plausibility("glioma", KINDS["glioma"], "Gradient", [10], [tmp_path / "bad.npz"], [tmp_path / "pred.csv"],
                         tmp_path / "phi.csv", tmp_path, names, post, "minmax", 0, tmp_path / "out2.csv")


def _metrics():
    rows = []
    for task, metric, values in (("glioma", "delta_aupc", {"Gradient": 0.3, "Lime": 0.1}),
                                 ("glioma", "mi_correlation", {"Gradient": 0.6, "Lime": 0.2}),
                                 ("synthetic", "msfi_global", {"Gradient": 0.55})):
        for m, v in values.items():
            rows.append({"task": task, "metric": metric, "guideline": "G3", "method": m, "mean": v, "std": 0.01,
                         "n": 5, "mean_rank": 1.0, "top3": True, "better_than_others": m == "Gradient",
                         "friedman_chi2": 4.0, "friedman_df": 1, "friedman_p": 0.04})
    return pd.DataFrame(rows)


def _info(task, p=0.001, effect=0.9):
    return pd.DataFrame([{"method": "Gradient", "task": task, "score": "msfi", "n": 50, "spearman_rho": 0.4,
                          "spearman_p": 0.01, "spearman_note": "", "mw_u": 10.0, "mw_p": p, "mw_effect": effect,
                          "mw_marker": "**", "n_right": 40, "n_wrong": 10, "mw_note": "", "median_right": 0.5,
                          "ci_low_right": 0.4, "ci_high_right": 0.6, "median_wrong": 0.2, "ci_low_wrong": 0.1,
                          "ci_high_wrong": 0.3}])


def test_tables_show_nan_for_missing_methods_and_tasks():
    long, wide = table2(_metrics(), TASKS, "msfi_global")
    assert list(wide.index) == all_methods() and len(wide) == 16
    assert wide.loc["Gradient", "ΔAUPC Glioma"] == "∗**0.30 ± 0.01**"
    assert wide.loc["Lime", "MSFI (whole map) Synthetic glioma"] == "NaN"
    assert (wide["ΔAUPC Knee"] == "NaN").all()  # knee did not run
    assert len(long) == 5
    _, w3 = table3({"glioma": _info("glioma")}, TASKS)
    assert w3.loc["Gradient", "Stat. sig. Glioma"] == "**" and w3.loc["Lime", "Right pred. Glioma"] == "NaN"
    assert (w3["Spearman ρ Knee"] == "NaN").all()
    long4, w4 = table4({"knee": pd.DataFrame({"method": ["Lime"], "seconds_per_case_mean": [123.4],
                                              "seconds_per_case_std": [5.0], "n_models": [5]})}, TASKS)
    assert w4.loc["Lime", "Knee"] == "123 ± 5" and w4.loc["Gradient", "Knee"] == "NaN" and len(long4) == 1
    md, tex = markdown(wide, "cap"), latex(wide, "cap", "tab:x")
    assert md.count("\n| ") == 16 and r"\pm" in tex and r"\textbf{" in tex and "NaN" in tex


def test_scorecard_rules():
    rules = {"G3": {"delta_aupc_min": 0.2, "mi_correlation_min": 0.5, "msfi_min": 0.5,
                    "synthetic_metric": "msfi_global"},
             "G4": {"alpha": 0.025, "min_effect": 0.71, "requires_g3": True}, "G5": {"max_seconds": 10}}
    timing = {"glioma": pd.DataFrame({"method": ["Gradient", "Lime"], "seconds_per_case_mean": [0.5, 60.0]})}
    card = scorecard(_metrics(), {"glioma": _info("glioma")}, timing, rules, TASKS)
    get = card.set_index(["method", "task", "guideline"])["result"]
    assert get[("Gradient", "glioma", "G3")] == "pass"      # 0.3 >= 0.2 and 0.6 >= 0.5
    assert get[("Lime", "glioma", "G3")] == "fail"
    assert get[("Gradient", "glioma", "G4")] == "pass"      # p 0.001, effect 0.9, G3 passed
    assert get[("Lime", "glioma", "G4")] == "not evaluated"  # not tested
    assert get[("Gradient", "glioma", "G5")] == "pass" and get[("Lime", "glioma", "G5")] == "fail"
    assert get[("Gradient", "synthetic", "G3")] == "pass"   # 0.55 >= 0.5
    assert get[("Gradient", "all", "G3")] == "pass" and get[("Lime", "all", "G5")] == "fail"
    buf = io.StringIO()  # every result survives the CSV round trip (pandas reads "n/a" as missing)
    card.to_csv(buf, index=False)
    assert pd.read_csv(io.StringIO(buf.getvalue()))["result"].equals(card["result"])
    weak = scorecard(_metrics(), {"glioma": _info("glioma", effect=0.6)}, timing, rules, TASKS)
    assert weak.set_index(["method", "task", "guideline"]).loc[("Gradient", "glioma", "G4"), "result"] == "fail"
    wide = scorecard_wide(card, TASKS)
    assert wide.loc["Gradient", "G3 Glioma"] == "✓" and wide.loc["Lime", "G4 Glioma"] == "–"
    assert not math.isnan(card.loc[card["guideline"] == "G5", "value"].dropna().iloc[0])
