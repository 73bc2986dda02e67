"""The sensitivity stage (issue 19) on models whose answers are known: a map that ignores the model survives
randomisation while Gradient does not; a linear model's Gradient does not change under any intensity shift; a
deterministic captum method repeated is bit-identical and a sampled one is not; the knee network's other-class
Gradient is the exact negative; a rigid move is undone; the hyperparameter grid; the per-case scores, their
directions and the model's findings; Table 6."""
import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from clinxai.analysis.ranking import SENSITIVITY, compare_methods, metric_units
from clinxai.analysis.sensitivity import HEADLINE, better, case_scores, model_findings
from clinxai.attribution.explain import explain
from clinxai.attribution.grid import REFERENCE, grid_settings
from clinxai.evaluation.sensitivity import (SHIFTS, CaseMaps, RigidMove, cascade, determinism, input_sensitivity,
                                            label_sensitivity, max_sensitivity, model_sensitivity, predictions,
                                            randomisation_depths, shifted, uniform_noise)
from clinxai.models import GeneNet3D, KneeNet
from clinxai.report.tables import table6
from clinxai.tasks import KINDS, SLICE, VOLUME

POST = {"upsample_gradcam": True, "smooth_sigma": None, "normalise": False, "mass": 0.99, "positive_only": False}


class FnMaps:
    """A `maps` callable of the stage from a function of (model, one case's inputs)."""

    def __init__(self, fn):
        self.fn = fn

    def raw(self, model, xs, idx, **kw):
        return [self.fn(model, x) for x in xs]

    def process(self, raw, idx):
        return raw

    def __call__(self, model, xs, idx, **kw):
        return self.raw(model, xs, idx)


def gradient_map(model, x):
    inputs = tuple(t.clone().requires_grad_(True) for t in x)
    out = model(*inputs)
    out[0, int(out.argmax(1))].backward()
    return [np.abs(g[0, c].numpy()) for g in (inputs[0].grad,) for c in range(g.shape[1])]


def input_map(model, x):  # "a map" that does not depend on the model at all
    return [np.abs(x[0][0, c].numpy()) for c in range(x[0].shape[1])]


def trained_cnn():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))
    x = torch.randn(64, 2, 16, 16)
    y = (x[:, 0, 4:8, 4:8].mean((1, 2)) > 0).long()  # the class lives in one patch of one channel
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), [(x[i:i + 1],) for i in range(2)]


def by(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def test_randomisation_keeps_a_model_free_map_and_breaks_gradient():
    model, xs = trained_cnn()
    cases = ["a", "b"]
    free = model_sensitivity(model, FnMaps(input_map), cases, xs, [input_map(model, x) for x in xs], None, 1)
    assert sorted({r["setting"] for r in free}) == ["1:6", "2:2", "3:0"]  # the output layer first
    assert all(r["value"] == pytest.approx(1) for r in by(free, metric="spearman"))
    assert all(r["value"] == 0 for r in by(free, metric="relative_change"))
    grad = model_sensitivity(model, FnMaps(gradient_map), cases, xs, [gradient_map(model, x) for x in xs], None, 1)
    assert all(r["value"] < 0.5 for r in by(grad, setting="3:0", metric="spearman"))  # fully randomised
    assert all(np.isfinite(r["value"]) for r in grad)


def test_a_linear_models_gradient_ignores_every_intensity_shift():
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(2 * 12 * 12, 2)).eval()
    xs = [(torch.rand(1, 2, 12, 12) + 0.5,) for _ in range(2)]
    preds = predictions(linear, xs).argmax(1)
    original = [gradient_map(linear, x) for x in xs]
    cfg = {"draws": 3, "shifts": {s: 0.1 for s in SHIFTS}}
    rows = input_sensitivity(linear, FnMaps(gradient_map), ["a", "b"], xs, original, preds, cfg, seed=2)
    assert len(by(rows, metric="flipped")) == 2 * 3 * len(SHIFTS)
    kept = by(rows, metric="relative_change")
    assert kept and all(r["value"] == 0 for r in kept)
    assert all(r["value"] == pytest.approx(1) for r in by(rows, metric="spearman"))
    ms = max_sensitivity(linear, FnMaps(gradient_map), ["a", "b"], xs, original, 0.2, 3, seed=2)
    assert [r["value"] for r in ms] == [0.0, 0.0]


def test_draws_are_seeded_and_change_the_input():
    x = (torch.rand(1, 2, 12, 12) + 0.5,)
    for name in SHIFTS:
        a, b = shifted(x, name, 0.2, 5), shifted(x, name, 0.2, 5)
        assert torch.equal(a[0], b[0]) and a[0].shape == x[0].shape
        assert not torch.equal(a[0], x[0]), name
    z = torch.full((1, 2, 12, 12), -2.0)  # a z-scored image: mostly negative
    z[0, :, 4:8, 4:8] = 1.0
    for name in ("rician_noise", "bias_field"):  # magnitude shifts keep the sign (sqrt((-2 + n)² + n²) would not)
        assert float((shifted((z,), name, 0.01, 1)[0] - z).abs().max()) < 0.2, name
    a, b = uniform_noise(x, 0.1, 3), uniform_noise(x, 0.1, 3)
    assert torch.equal(a[0], b[0]) and 0 < (a[0] - x[0]).abs().max() <= 0.1


@pytest.mark.parametrize("shape", [(1, 2, 24, 24), (1, 2, 20, 20, 16)])
def test_a_rigid_move_is_undone_where_the_map_exists(shape):
    grid = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape[2:]], indexing="ij")
    blob = np.exp(-sum(g ** 2 for g in grid) * 3).astype(np.float32)
    x = (torch.from_numpy(np.stack([blob, blob ** 2]))[None],)
    move = RigidMove(x, translate=2, rotate_deg=3, seed=4)
    assert move.inputs[0].shape == x[0].shape and not torch.equal(move.inputs[0], x[0])
    back = move.back(input_map(None, move.inputs))  # a map that moves with the input, moved back
    valid = move.valid_parts()
    assert all(v.mean() > 0.7 for v in valid)
    original = input_map(None, x)
    err = max(float(np.abs(b - o)[v].max()) for b, o, v in zip(back, original, valid))
    unmoved = max(float(np.abs(b - o)[v].max()) for b, o, v in zip(input_map(None, move.inputs), original, valid))
    assert err < 0.08 and err < unmoved / 3  # what is left: two bilinear resamplings of a smooth blob


def test_the_cascade_randomises_parallel_branches_together_and_a_layer_with_its_norm():
    torch.manual_seed(0)
    knee = KneeNet(widths=(4, 8)).eval()
    depths = randomisation_depths(knee)
    assert [(name, len(modules)) for name, modules in depths] == [("head", 1), ("encoders.*.net.4", 6),
                                                                  ("encoders.*.net.0", 6)]
    before = [e.net[4].weight.clone() for e in knee.encoders]
    models = list(cascade(knee, seed=1, depths=2))
    assert [d for d, _, _ in models] == [1, 2]
    after = models[-1][2]
    assert all(not torch.equal(b, e.net[4].weight) for b, e in zip(before, after.encoders))  # every view's branch
    assert all(torch.equal(e.net[0].weight, k.net[0].weight) for e, k in zip(after.encoders, knee.encoders))
    assert all(torch.equal(e.net[5].weight, torch.ones(8)) for e in after.encoders)  # its BatchNorm re-initialised


def test_supervoxel_masks_move_with_the_input():
    rng = np.random.default_rng(0)
    labels = np.kron(rng.permutation(18).reshape(2, 3, 3), np.ones((1, 8, 8))).astype(np.int32)  # blocks of 8 x 8
    x = (torch.from_numpy(labels.astype(np.float32))[None],)
    move = RigidMove(x, translate=2, rotate_deg=3, seed=3)
    moved = move.move_masks(labels)
    assert moved.dtype == labels.dtype and moved.shape == labels.shape and not np.array_equal(moved, labels)
    image = np.rint(move.inputs[0][0].numpy())  # the input moved (bilinear): off the labels only along block edges
    assert set(np.unique(moved)) <= set(np.unique(labels))
    assert (moved == image).mean() > 0.85 and (moved == image).mean() > (labels == image).mean() + 0.1


def _slice_maps(model, method, xs, overrides=None, seed=10):
    preds = predictions(model, xs).argmax(1)
    return CaseMaps(KINDS["synthetic"], method, [f"c{i}" for i in range(len(xs))], xs, preds, None, seed, overrides,
                    {"batch_size": 4, "nt_samples_batch_size": 4}, POST)


def test_a_deterministic_method_repeats_bit_identically_and_a_sampled_one_does_not():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()
    xs = [(torch.randn(1, 2, 8, 8),) for _ in range(3)]
    idx, cases = [0, 1, 2], ["c0", "c1", "c2"]
    maps = _slice_maps(model, "Gradient", xs)
    raw = maps.raw(model, xs, idx)
    rows = determinism(model, maps, cases, xs, maps.process(raw, idx), raw, repeats=3, sampled=False, seed=10)
    assert [r["value"] for r in by(rows, metric="bit_identical")] == [1.0, 1.0, 1.0]
    assert all(r["value"] == 0 for r in by(rows, metric="voxel_cv"))
    noisy = _slice_maps(model, "SmoothGrad", xs, {"nt_samples": 4})
    raw = noisy.raw(model, xs, idx)
    rows = determinism(model, noisy, cases, xs, noisy.process(raw, idx), raw, repeats=3, sampled=True, seed=10)
    assert {r["setting"] for r in rows} == {"repeats=3"} and not by(rows, metric="bit_identical")
    assert all(r["value"] < 1 for r in by(rows, metric="spearman"))
    assert all(r["value"] > 0 for r in by(rows, metric="voxel_cv"))


def test_a_permuted_case_keeps_its_partners():
    """FeaturePermutation permutes features across a batch: a case's map recomputed alone equals its map among the
    job's cases (same partners, same seed), so a perturbed input is compared with its partners unchanged."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2)).eval()
    xs = [(torch.randn(1, 2, 8, 8),) for _ in range(5)]
    masks = [np.kron(np.arange(4).reshape(2, 2), np.ones((4, 4), np.int64))[None].repeat(2, 0) for _ in xs]
    maps = CaseMaps(KINDS["synthetic"], "FeaturePermutation", [f"c{i}" for i in range(5)], xs,
                    predictions(model, xs).argmax(1), lambda idx, sv: [masks[i] for i in idx], 10, None,
                    {"permutation_batch": 3}, POST)
    together = maps.raw(model, xs, list(range(5)))
    alone = maps.raw(model, [xs[3]], [3])
    assert all(np.array_equal(a, b) for a, b in zip(alone[0], together[3]))


def test_the_knee_networks_other_class_gradient_is_the_exact_negative():
    torch.manual_seed(0)
    knee = KneeNet(widths=(4, 8)).eval()
    xs = [tuple(torch.randn(1, 4, 16, 16) for _ in range(3)) for _ in range(2)]
    logits = predictions(knee, xs)
    maps = CaseMaps(KINDS["knee"], "Gradient", ["a", "b"], xs, logits.argmax(1), None, 10, None, {}, POST)
    raw = maps.raw(knee, xs, [0, 1])
    rows = label_sensitivity(knee, maps, ["a", "b"], xs, maps.process(raw, [0, 1]), raw, logits, 10)
    assert [r["value"] for r in by(rows, metric="negated")] == [1.0, 1.0]
    assert [r["value"] for r in by(rows, metric="antisymmetric_logits")] == [1.0, 1.0]
    model, xs = trained_cnn()  # two logits of their own: the other class's map is another map
    logits = predictions(model, xs)
    maps = _slice_maps(model, "Gradient", xs)
    raw = maps.raw(model, xs, [0, 1])
    rows = label_sensitivity(model, maps, ["c0", "c1"], xs, maps.process(raw, [0, 1]), raw, logits, 10)
    assert [r["value"] for r in by(rows, metric="negated")] == [0.0, 0.0]
    assert all(r["value"] < 1 for r in by(rows, metric="spearman"))


def test_the_grid_varies_one_hyperparameter_at_a_time():
    sv = {"n_segments": 8, "compactness": 0.1, "sigma": 1, "unified_channel": 0}
    ig = grid_settings("IntegratedGradients", VOLUME, {"n_steps": 16}, sv)
    assert [s.name for s in ig] == [REFERENCE, "n_steps=8", "n_steps=32", "baselines=mean", "baselines=blurred"]
    assert ig[1].overrides == {"n_steps": 8} and ig[3].overrides == {"n_steps": 16, "baselines": "mean"}
    svs = grid_settings("ShapleyValueSampling", VOLUME, {"n_samples": 1}, sv)  # 0.5 x 1 rounds back to 1: left out
    assert [s.name for s in svs] == [REFERENCE, "n_samples=2", "n_segments=4", "n_segments=16"]
    assert svs[2].supervoxels["n_segments"] == 4 and svs[2].overrides == {"n_samples": 1}
    occ = grid_settings("Occlusion", SLICE, {"sliding_window_shapes": [1, 16, 16], "strides": [1, 16, 16]}, sv,
                        input_shape=(4, 20, 20))
    assert [s.name for s in occ] == [REFERENCE, "window=8x8", "window=20x20"]  # 24 clipped to the input
    assert occ[1].overrides["strides"] == [1, 8, 8]
    assert [s.name for s in grid_settings("Gradient", VOLUME, None, sv)] == [REFERENCE]


def test_grid_baselines_and_layers_run_through_captum():
    torch.manual_seed(0)
    model = GeneNet3D(2, (8, 8, 8), widths=(4, 8), fc=8).eval()
    xs = [(torch.randn(1, 2, 8, 8, 8),)]
    for method, over in (("IntegratedGradients", {"n_steps": 4, "baselines": "mean"}),
                         ("IntegratedGradients", {"n_steps": 4, "baselines": "blurred"}),
                         ("GradCAM", {"layer": "previous"})):
        maps, _ = explain(model, KINDS["glioma"], method, ["a"], xs, [1], None, 10, over)
        assert all(np.isfinite(p).all() for p in maps[0])
    last, _ = explain(model, KINDS["glioma"], "GradCAM", ["a"], xs, [1], None, 10)
    prev, _ = explain(model, KINDS["glioma"], "GradCAM", ["a"], xs, [1], None, 10, {"layer": "previous"})
    assert last[0][0].shape == (4, 4, 4) and prev[0][0].shape == (8, 8, 8)  # the block before: before its pooling


def _raw(rows):
    base = {"task": "t", "seed": 10, "label": 1, "pred": 1, "draw": 0}
    table = pd.DataFrame([{**base, **r} for r in rows])
    table["better"] = [better(a, m) for a, m in zip(table["attribute"], table["metric"])]
    return table


def test_scores_average_draws_then_settings_and_leave_out_negated_label_maps():
    rows = []
    for method in ("A", "B"):
        rows += [{"method": method, "case": "c", "attribute": "input", "setting": "gibbs", "draw": 0,
                  "metric": "spearman", "value": 0.2},
                 {"method": method, "case": "c", "attribute": "input", "setting": "gibbs", "draw": 1,
                  "metric": "spearman", "value": 0.4},
                 {"method": method, "case": "c", "attribute": "input", "setting": "contrast", "draw": 0,
                  "metric": "spearman", "value": 0.9},
                 {"method": method, "case": "c", "attribute": "input", "setting": "gibbs", "draw": 2,
                  "metric": "flipped", "value": 1.0},
                 {"method": method, "case": "c", "attribute": "label", "setting": "other_class",
                  "metric": "spearman", "value": 0.5},
                 {"method": method, "case": "c", "attribute": "label", "setting": "other_class",
                  "metric": "negated", "value": float(method == "A")}]
    scores = case_scores(_raw(rows)).set_index(["method", "metric"])
    assert scores.loc[("A", "input_spearman"), "value"] == pytest.approx((0.3 + 0.9) / 2)  # not (0.2+0.4+0.9)/3
    assert scores.loc[("A", "input_spearman"), "better"] == "higher"
    assert np.isnan(scores.loc[("A", "label_spearman"), "value"]) and scores.loc[("B", "label_spearman"), "value"] == 0.5
    assert scores.loc[("B", "label_spearman"), "better"] == "lower"
    assert ("A", "input_flipped") not in scores.index  # a finding, not a score
    findings = model_findings(_raw(rows))
    flips = findings[findings["finding"] == "flipped"]
    assert flips["share"].tolist() == [1.0] and flips["method"].tolist() == [""]
    assert findings[findings["finding"] == "negated"].set_index("method")["share"].to_dict() == {"A": 1.0, "B": 0.0}
    rows[3]["value"] = 0.0  # method A's draw did not flip but B's did: the draws were not shared
    with pytest.raises(ValueError, match="draws differ between methods"):
        model_findings(_raw(rows))


def test_directions():
    assert better("input", "spearman") == "higher" and better("input", "relative_change") == "lower"
    assert better("model", "spearman") == "lower" and better("model", "relative_change") == "higher"
    assert better("max_sensitivity", "max_sensitivity") == "lower" and better("minimality", "gini") == "higher"
    assert better("determinism", "voxel_cv") == "lower" and better("determinism", "bit_identical") == "higher"
    assert better("input", "flipped") == "" and better("hyperparameters", "delta_aupc") == ""


def test_statistics_and_table6_follow_each_scores_direction():
    rng = np.random.default_rng(0)
    rows = []
    for case in range(12):
        for method, shift in (("Gradient", 0.0), ("Occlusion", 0.3), ("Lime", 0.6)):
            rows.append({"task": "glioma", "seed": 10, "method": method, "case": f"c{case}", "attribute": "model",
                         "metric": "model_spearman", "value": shift + rng.uniform(0, 0.1), "better": "lower"})
    units = metric_units({}, {}, {}, "msfi", "msfi", sensitivity={"glioma": pd.DataFrame(rows)})
    assert [(u[1], u[2], u[5]) for u in units] == [("model_spearman", SENSITIVITY, "lower")]
    metrics, friedman, _, _ = compare_methods(units, alpha=0.05)
    m = metrics.set_index("method")
    assert m.loc["Gradient", "mean_rank"] < m.loc["Lime", "mean_rank"] and m.loc["Gradient", "better_than_others"]
    long, wide = table6(metrics, [{"task": "glioma", "kind": "glioma", "title": "Glioma"}])
    assert list(wide.columns) == ["Model randomisation: ρ Glioma"]
    assert wide.loc["Gradient"].iloc[0].startswith("∗**") and wide.loc["DeepLift"].iloc[0] == "NaN"
    assert wide.loc["Lime"].iloc[0] == f"**{m.loc['Lime', 'mean']:.2f} ± {m.loc['Lime', 'std']:.2f}**"  # top three
    assert set(HEADLINE.values()) >= set(long["metric"])


def test_the_attributes_figure_draws_a_score_no_method_has(tmp_path):
    """The knee's label scores are all left out when every method's other-class map is −map (the SLURM test's
    method set): the panel says so instead of failing."""
    from clinxai.report.figures import sensitivity_attributes_figure

    rows = [{"method": m, "case": c, "metric": metric, "value": v, "better": b}
            for m in ("Gradient", "FeatureAblation") for c in ("a", "b")
            for metric, v, b in (("label_spearman", np.nan, "lower"), ("minimality_gini", 0.5 + 0.1 * len(m), "higher"))]
    sensitivity_attributes_figure(pd.DataFrame(rows), "knee", tmp_path / "f.png")
    assert (tmp_path / "f.png").stat().st_size > 5000
