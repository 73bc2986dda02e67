"""group_methods: one job running several methods on a model writes exactly what one job per method writes."""
import numpy as np
import pandas as pd
import pytest
import torch

from clinxai.attribution.maps import load_maps
from clinxai.attribution.run import run_heatmaps
from clinxai.attribution.supervoxels import image_masks, save_masks
from clinxai.models import GeneNet3D, save_checkpoint
from clinxai.evaluation.truthfulness import run_feature_removal
from clinxai.tasks import KINDS, VOLUME

METHODS = ["Gradient", "SmoothGrad", "KernelShap", "GradCAM"]  # gradient, sampled, perturbation with masks, layer
CFG = {"params": {"glioma": {"SmoothGrad": {"nt_samples": 3}, "KernelShap": {"n_samples": 16}}},
       "batching": {"batch_size": 4, "internal_batch_size": 4, "nt_samples_batch_size": 3,
                    "perturbations_per_eval": 8, "permutation_batch": 4},
       "postprocess": {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99,
                       "positive_only": True}}
REMOVAL = {"n_steps": 4, "baselines": 2, "replacement": "zero", "neighbourhood_size": 3, "low_quantile": 0.5,
           "metric": "accuracy", "batch_size": 8, "fast": True}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny glioma model, its test predictions, prepared arrays and supervoxel masks."""
    root = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    arch = {"in_channels": 4, "grid": [8, 8, 8], "widths": [4, 8], "fc": 8}
    model = GeneNet3D(4, (8, 8, 8), widths=(4, 8), fc=8).eval()
    save_checkpoint(root / "model.pt", model, "glioma", "genenet3d", arch)
    rng = np.random.default_rng(0)
    (root / "data" / "arrays").mkdir(parents=True)
    cases, masks = [f"c{i}" for i in range(5)], {}
    for case in cases:
        image = rng.normal(size=(4, 8, 8, 8)).astype(np.float32)
        np.savez(root / "data" / "arrays" / f"{case}.npz", image=image)
        masks[case] = image_masks(image, np.ones((8, 8, 8), bool), {"n_segments": 4, "compactness": 0.1,
                                                                   "sigma": 1, "unified_channel": 0})
    save_masks(root / "masks.npz", masks, VOLUME)
    (root / "data" / "meta.json").write_text('{"channels": ["T1", "T1C", "T2", "FLAIR"], "grid": [8, 8, 8]}')
    pd.DataFrame({"case": cases, "label": [0, 1, 0, 1, 1], "pred": [0, 1, 1, 1, 0]}).to_csv(root / "pred.csv",
                                                                                             index=False)
    return root


def _heatmaps(root, methods, sub):
    out = root / sub
    out.mkdir()
    paths = [(out / f"{m}.npz", out / f"{m}.csv") for m in methods]
    run_heatmaps("glioma", KINDS["glioma"], 10, methods, root / "model.pt", root / "pred.csv", root / "data",
                 root / "masks.npz", CFG, paths)
    return paths


def test_grouped_heatmaps_and_removal_equal_one_job_per_method(model_dir):
    grouped = _heatmaps(model_dir, METHODS, "grouped")
    single = [_heatmaps(model_dir, [m], f"single_{m}")[0] for m in METHODS]
    for method, (gm, gt), (sm, st) in zip(METHODS, grouped, single):
        a, b = load_maps(gm), load_maps(sm)
        assert a.keys() == b.keys() == {f"c{i}" for i in range(5)}
        for case in a:
            for x, y in zip(a[case], b[case]):
                np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-7, err_msg=f"{method} {case}")
        ta, tb = pd.read_csv(gt), pd.read_csv(st)
        assert list(ta["method"]) == [method] * 5 and (ta["seconds"] > 0).all()
        pd.testing.assert_frame_equal(ta.drop(columns="seconds"), tb.drop(columns="seconds"))
    # feature removal: one job over every method's maps == one job per method
    names = ["T1", "T1C", "T2", "FLAIR"]
    outs = [(model_dir / f"curves_{m}.csv", model_dir / f"sums_{m}.csv") for m in METHODS]
    run_feature_removal("glioma", KINDS["glioma"], 10, METHODS, model_dir / "model.pt", model_dir / "pred.csv",
                        [p for p, _ in grouped], model_dir / "data", REMOVAL, CFG["postprocess"], names, outs)
    for method, (maps, _), (curves, sums) in zip(METHODS, grouped, outs):
        one = (model_dir / f"one_curves_{method}.csv", model_dir / f"one_sums_{method}.csv")
        run_feature_removal("glioma", KINDS["glioma"], 10, [method], model_dir / "model.pt", model_dir / "pred.csv", [maps],
                            model_dir / "data", REMOVAL, CFG["postprocess"], names, [one])
        c = pd.read_csv(curves)
        assert len(c) == (1 + REMOVAL["baselines"]) * (REMOVAL["n_steps"] + 1) and set(c["method"]) == {method}
        pd.testing.assert_frame_equal(c, pd.read_csv(one[0]))
        pd.testing.assert_frame_equal(pd.read_csv(sums), pd.read_csv(one[1]))


def test_grouped_mask_scores_equal_one_job_per_method(tmp_path, monkeypatch):
    """plausibility / localisation with group_methods: one job scoring every method's maps, each case's clinical
    masks built once, writes the tables one job per method writes."""
    import clinxai.evaluation.plausibility as plausibility
    from clinxai.attribution.maps import save_maps
    from clinxai.evaluation.localisation import run_localisation
    from clinxai.evaluation.plausibility import run_plausibility

    rng = np.random.default_rng(1)
    names, cases, seeds = ["T1", "T1C", "T2", "FLAIR"], ["c0", "c1", "c2"], [10, 20]
    (tmp_path / "arrays").mkdir()
    for case in cases:
        seg = np.zeros((8, 8, 4), np.uint8)
        seg[2:5, 1:6, 1:3] = 1
        np.savez(tmp_path / "arrays" / f"{case}.npz", seg=seg)
    preds, maps = [], {}
    for seed in seeds:
        prob = rng.random(3)
        preds.append(tmp_path / f"pred{seed}.csv")
        pd.DataFrame({"case": cases, "label": [0, 1, 1], "pred": (prob > 0.5).astype(int), "prob_0": 1 - prob,
                      "prob_1": prob}).to_csv(preds[-1], index=False)
        for method in ("Gradient", "Occlusion"):
            maps.setdefault(method, []).append(tmp_path / f"{method}{seed}.npz")
            save_maps(maps[method][-1], {c: [rng.random((8, 8, 4)).astype(np.float32) for _ in names]
                                         for c in cases})
    pd.DataFrame({"seed": np.repeat(seeds, 4), "modality": names * 2, "phi": rng.random(8)}).to_csv(
        tmp_path / "phi.csv", index=False)
    post = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": True, "mass": 0.99, "positive_only": True}
    built = []
    real = plausibility.clinical_masks
    monkeypatch.setattr(plausibility, "clinical_masks", lambda *a: built.append(a[2]) or real(*a))
    shared = {}
    for method in maps:
        tables = []
        for masks_of in (shared, None):  # one job for both methods; one job per method
            tables.append(run_plausibility("glioma", KINDS["glioma"], method, seeds, maps[method], preds,
                                           tmp_path / "phi.csv", tmp_path, names, post, "minmax", 1,
                                           tmp_path / "p.csv", masks_of))
            tables.append(run_localisation("glioma", KINDS["glioma"], method, seeds, maps[method], preds, tmp_path,
                                           names, post, 1, tmp_path / "l.csv", masks_of))
        pd.testing.assert_frame_equal(tables[0], tables[2])
        pd.testing.assert_frame_equal(tables[1], tables[3])
        assert len(tables[0]) == 6 and tables[0]["msfi"].notna().all()
    # the shared cache built each case's masks once for both methods and both stages; without it, every call
    assert sorted(built) == sorted(cases + cases * 4)
