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
