"""Your own model and data (issue 23): the manifest dataset kind, the grouped split and the model plug-in's checks."""
import json
import re
import textwrap

import nibabel as nib
import numpy as np
import pandas as pd
import pytest
import torch

from clinxai import ClinxaiError
from clinxai.data.prepare import prepare
from clinxai.data.split import stratified_split
from clinxai.plugin import check_model
from clinxai.tasks import kind_of, task_seeds

SHAPE = (12, 10, 8)


def write_manifest(root, n=12, columns=("T2", "ADC"), split=True, group=True, mask=True, rng_seed=0, n_classes=2):
    """n cases, two per patient, labels cycling per patient; T2 as NIfTI, ADC as .npy, a box mask."""
    rng = np.random.default_rng(rng_seed)
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        patient = i // 2
        label = patient % n_classes
        row = {"case": f"c{i:02d}", "label": label}
        if split:
            row["split"] = ["train", "train", "val", "test"][patient % 4] if patient < 4 else "train"
        if group:
            row["group"] = f"p{patient}"
        for c in columns:
            data = rng.normal(size=SHAPE).astype(np.float32) + 5
            if c == "ADC":
                np.save(root / f"{row['case']}_{c}.npy", data)
                row[c] = f"{row['case']}_{c}.npy"
            else:
                nib.save(nib.Nifti1Image(data, np.eye(4)), root / f"{row['case']}_{c}.nii.gz")
                row[c] = f"{row['case']}_{c}.nii.gz"
        if mask:
            m = np.zeros(SHAPE, np.uint8)
            m[3:7, 3:7, 2:5] = 1
            nib.save(nib.Nifti1Image(m, np.eye(4)), root / f"{row['case']}_mask.nii.gz")
            row["roi"] = f"{row['case']}_mask.nii.gz"
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    return root / "manifest.csv"


def data_cfg(manifest, **extra):
    return {"kind": "manifest", "manifest": str(manifest), "root": str(manifest), "modalities": ["T2", "ADC"],
            "mask": "roi", "grid": [8, 8, 6], "layout": "volume", "preprocessing": "pipeline", **extra}


def run_prepare(tmp_path, cfg):
    out = {k: tmp_path / "out" / v for k, v in (("split", "split.csv"), ("excluded", "excluded.csv"),
                                                   ("meta", "meta.json"), ("arrays", "arrays"))}
    (tmp_path / "out").mkdir(exist_ok=True)
    return prepare("own", "csv_manifest", cfg, {"fractions": {"train": 0.6, "val": 0.2, "test": 0.2}, "seed": 1}, out), out


def test_a_manifest_is_prepared_like_brats_with_its_own_split(tmp_path):
    manifest = write_manifest(tmp_path / "data")
    meta, out = run_prepare(tmp_path, data_cfg(manifest))
    assert meta["channels"] == ["T2", "ADC"] and meta["grid"] == [8, 8, 6] and meta["n_cases"] == 12
    split = pd.read_csv(out["split"], dtype={"case": str})
    given = pd.read_csv(manifest).set_index("case")["split"]
    assert (split.set_index("case")["split"] == given.loc[split["case"]].to_numpy()).all()
    with np.load(out["arrays"] / "c00.npz") as z:
        assert z["image"].shape == (2, 8, 8, 6) and z["seg"].shape == (8, 8, 6) and z["seg"].any()
        brain = z["brain"] > 0
        np.testing.assert_allclose(z["image"][:, brain].mean(1), 0, atol=1e-5)  # z-scored over the foreground


def test_preprocessing_none_keeps_the_arrays_as_stored(tmp_path):
    manifest = write_manifest(tmp_path / "data")
    meta, out = run_prepare(tmp_path, data_cfg(manifest, preprocessing="none"))
    assert meta["grid"] == list(SHAPE)
    stored = np.load(tmp_path / "data" / "c03_ADC.npy")
    with np.load(out["arrays"] / "c03.npz") as z:
        np.testing.assert_array_equal(z["image"][1], stored)


def test_a_group_never_straddles_splits():
    rng = np.random.default_rng(0)
    for seed in range(20):
        n_groups = int(rng.integers(6, 30))
        sizes = rng.integers(1, 4, size=n_groups)
        groups = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
        labels = np.repeat(rng.integers(0, 2, size=n_groups), sizes)
        if len(set(labels)) < 2:
            continue
        cases = pd.DataFrame({"case": [f"c{i:03d}" for i in range(len(groups))], "label": labels})
        try:
            split = stratified_split(cases, {"train": 0.6, "val": 0.2, "test": 0.2}, seed, groups=pd.Series(groups))
        except ClinxaiError:  # too few groups of a class for three parts
            continue
        by_case = dict(zip(cases["case"], groups))
        assert split.assign(group=split["case"].map(by_case)).groupby("group")["split"].nunique().max() == 1
        assert set(split["split"]) == {"train", "val", "test"}


def test_a_manifest_without_split_is_split_by_group(tmp_path):
    manifest = write_manifest(tmp_path / "data", n=20, split=False)
    _, out = run_prepare(tmp_path, data_cfg(manifest))
    split = pd.read_csv(out["split"], dtype={"case": str})
    groups = pd.read_csv(manifest).set_index("case")["group"]
    assert split.assign(g=groups.loc[split["case"]].to_numpy()).groupby("g")["split"].nunique().max() == 1


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.drop(columns="ADC"), "lacks column(s) ['ADC']"),
    (lambda t: t.assign(label=t["label"].where(t.index != 3, 7)), "line 5 (case c03), column label: '7'"),
    (lambda t: t.assign(case=t["case"].where(t.index != 4, "c00")), "case c00 is on lines 2 and 6"),
    (lambda t: t.assign(split=t["split"].where(t.index != 1, "test")), "group p0 straddles splits on lines 2 (train)"),
    (lambda t: t.assign(ADC=t["ADC"].where(t.index != 2, "gone.npy")), "manifest line 4, column ADC: gone.npy not found"),
])
def test_manifest_errors_name_the_row_and_column(tmp_path, edit, message):
    manifest = write_manifest(tmp_path / "data")
    edit(pd.read_csv(manifest)).to_csv(manifest, index=False)
    with pytest.raises(ClinxaiError) as err:
        run_prepare(tmp_path, data_cfg(manifest))
    assert message in str(err.value)


def test_modalities_on_different_grids_are_a_case_error(tmp_path):
    manifest = write_manifest(tmp_path / "data")
    np.save(tmp_path / "data" / "c05_ADC.npy", np.ones((5, 5, 5), np.float32))
    with pytest.raises(ClinxaiError, match=r"case c05: manifest line 7: ADC has shape \(5, 5, 5\), T2 \(12, 10, 8\)"):
        run_prepare(tmp_path, data_cfg(manifest))
    meta, _ = run_prepare(tmp_path, data_cfg(manifest, on_bad_case="exclude"))
    assert meta["n_cases"] == 11 and meta["n_excluded"] == 1


def test_a_supplied_model_needs_the_manifest_split(tmp_path):
    manifest = write_manifest(tmp_path / "data", split=False)
    with pytest.raises(ClinxaiError, match="has no split column: a fresh split would put the model's own training"):
        run_prepare(tmp_path, data_cfg(manifest, supplied_model=True))


# ---- the model plug-in ----
MODEL_CODE = textwrap.dedent("""
    from torch import nn

    def net(in_channels=2, n_outputs=1, flat=False):
        layers = [nn.Conv3d(in_channels, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool3d(1), nn.Flatten(),
                  nn.Linear(4, n_outputs)]
        return nn.Sequential(*layers[:-1]) if flat else nn.Sequential(*layers)
    """)


@pytest.fixture
def plugin(tmp_path):
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mynets.py").write_text(MODEL_CODE)
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path / "code"))
    net = importlib.import_module("mynets").net
    torch.manual_seed(0)
    torch.save(net().state_dict(), tmp_path / "m1.pt")
    torch.save(net(n_outputs=3).state_dict(), tmp_path / "m3.pt")
    yield tmp_path
    sys.path.remove(str(tmp_path / "code"))
    sys.modules.pop("mynets", None)


def cfg_of(tmp_path, **extra):
    return {"factory": "mynets:net", "python_path": str(tmp_path / "code"), "checkpoint": str(tmp_path / "m1.pt"),
            "gradcam_layer": "0", **extra}


def test_a_supplied_model_is_checked_and_a_binary_logit_wrapped(plugin):
    x = torch.randn(1, 2, 8, 8, 6)
    arch, state = check_model("own", cfg_of(plugin), x, 2, plugin / "m1.pt")
    assert arch["binary_logit"] and "net.0.weight" in state
    from clinxai.plugin import build

    model = build(arch)
    model.load_state_dict(state)
    z = model.net(x)
    np.testing.assert_allclose(model(x).detach(), torch.cat([-z / 2, z / 2], 1).detach())
    assert model.layer("last") is model.net[0]


@pytest.mark.parametrize("extra, n_classes, x_channels, message", [
    ({"factory": "nowhere:net"}, 2, 2, "config key data.own.model.factory = 'nowhere:net': module 'nowhere' cannot be"),
    ({"factory": "mynets:absent"}, 2, 2, "module mynets has no function 'absent'"),
    ({"kwargs": {"n_outputs": 3}}, 2, 2, "does not match the model of mynets:net"),
    ({"kwargs": {"flat": True}}, 2, 2, "returns Tensor of shape (1, 4) for one case; expected (batch, 2) class"),
    ({}, 2, 3, "config key data.own.modalities lists 3 modalities, but the model's first convolution takes 2"),
    ({"gradcam_layer": "features.7"}, 2, 2, "config key data.own.model.gradcam_layer = 'features.7': the model has "
                                           "no such module"),
])
def test_a_supplied_model_that_does_not_fit_gets_a_clear_error(plugin, extra, n_classes, x_channels, message):
    cfg = cfg_of(plugin, **extra)
    if extra.get("kwargs", {}).get("flat"):
        torch.save(__import__("mynets").net(flat=True).state_dict(), plugin / "m1.pt")
    with pytest.raises(ClinxaiError) as err:
        check_model("own", cfg, torch.randn(1, x_channels, 8, 8, 6), n_classes, plugin / "m1.pt")
    assert message in str(err.value)


def test_a_supplied_models_checkpoints_are_the_tasks_seeds(tmp_path):
    config = {"seeds": [10, 20, 30], "data": {"own": {"kind": "manifest", "modalities": ["T2"], "model": {
        "factory": "m:f", "checkpoint": ["a.pt", "b.pt"]}}}}
    assert task_seeds(config, "own") == [1, 2]
    kind = kind_of(config, "own")
    assert kind.model == "plugin" and kind.modalities == ("T2",) and kind.mask.key is None
    assert kind.defaults["heatmaps.exclude"] == ["GradCAM", "GuidedGradCAM"]  # no gradcam_layer given
    del config["data"]["own"]["model"]
    assert task_seeds(config, "own") == [10, 20, 30] and kind_of(config, "own").model == "genenet3d"


# ---- the whole pipeline on a model and data that are not clinxai's ----
def signal_manifest(root, n=24, n_classes=2):
    """Two modalities with a region in T2 brighter by 3 x the label; patients of two scans each; given split with
    every class in every part."""
    manifest = write_manifest(root, n=n, n_classes=n_classes)
    table = pd.read_csv(manifest)
    cycle = 2 * n_classes  # the rows of n_classes patients, one of each class
    table["split"] = ["test" if i // cycle % 4 == 3 else "val" if i // cycle % 4 == 2 else "train" for i in range(n)]
    for _, r in table.iterrows():
        img = nib.load(root / r["T2"])
        data = img.get_fdata(dtype=np.float32)
        data[3:7, 3:7, 2:5] += 3.0 * r["label"]
        nib.save(nib.Nifti1Image(data, img.affine), root / r["T2"])
    table.to_csv(manifest, index=False)
    return manifest, table


def train_checkpoints(tmp_path, root, table, seeds=(0, 1), n_outputs=1):
    """The test's own network (mynets.net), fitted briefly on the train rows: two checkpoints -- one binary logit,
    or n_outputs class logits."""
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path / "code"))
    try:
        net_fn = importlib.import_module("mynets").net
        x = torch.stack([torch.from_numpy(np.stack([nib.load(root / r["T2"]).get_fdata(dtype=np.float32),
                                                    np.load(root / r["ADC"])])) for _, r in table.iterrows()])
        y = torch.tensor(table["label"].to_numpy())
        train = np.flatnonzero(table["split"].to_numpy() == "train")
        paths = []
        for seed in seeds:
            torch.manual_seed(seed)
            net = net_fn(n_outputs=n_outputs)
            opt = torch.optim.Adam(net.parameters(), lr=0.05)
            for _ in range(60):
                out = net(x[train])
                loss = torch.nn.functional.binary_cross_entropy_with_logits(out[:, 0], y[train].float()) \
                    if n_outputs == 1 else torch.nn.functional.cross_entropy(out, y[train])
                opt.zero_grad()
                loss.backward()
                opt.step()
            paths.append(str(tmp_path / f"model{n_outputs}_seed{seed}.pt"))
            torch.save(net.state_dict(), paths[-1])
        return paths
    finally:
        sys.path.remove(str(tmp_path / "code"))
        sys.modules.pop("mynets", None)


@pytest.mark.slow
def test_own_model_and_data_through_every_stage(tmp_path):
    """A binary task with a one-logit model and a three-class task with a three-logit model (and no mask column),
    both defined in the test's directory, two checkpoints each, manifests with groups: every stage runs on both."""
    from helpers import overlay, snakemake, workdir

    wd = workdir(tmp_path)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "mynets.py").write_text(MODEL_CODE)
    data, tables = {}, {}
    for task, classes in (("own", ["benign", "malignant"]), ("own3", ["low", "mid", "high"])):
        manifest, tables[task] = signal_manifest(tmp_path / task, n=8 * len(classes), n_classes=len(classes))
        ckpts = train_checkpoints(tmp_path, tmp_path / task, tables[task],
                                  n_outputs=1 if len(classes) == 2 else len(classes))
        # the three-class task without its mask column: no plausibility or localisation, the middle slice exported
        mask = "roi" if len(classes) == 2 else None
        data[task] = {"kind": "manifest", "manifest": str(manifest), "modalities": ["T2", "ADC"], "mask": mask,
                      "classes": classes, "preprocessing": "none", "metric": "auc",
                      "model": {"factory": "mynets:net", "kwargs": {"n_outputs": 1 if len(classes) == 2 else 3},
                                "python_path": str(tmp_path / "code"), "checkpoint": ckpts,
                                "gradcam_layer": "1", "gradcam_previous_layer": "0"}}
    sv = {"n_segments": 4, "compactness": 0.1, "sigma": 1, "unified_channel": 0}
    cfg = overlay(wd, "own.yaml", {
        "tasks": list(data), "data": data,
        "heatmaps": {"params": {t: {"SmoothGrad": {"nt_samples": 2}, "KernelShap": {"n_samples": 16}} for t in data},
                     "supervoxels": {t: sv for t in data}},
    })
    res = snakemake(wd, "--cores", "2", "--configfile", "config/config.yaml", "tests/config/tiny.yaml", cfg)
    assert res.returncode == 0, res.stderr[-3000:]
    results = wd / "results"
    for task, table in tables.items():
        summary = pd.read_csv(results / f"{task}/models/summary.csv", dtype={"seed": str})
        assert list(summary["seed"]) == ["1", "2", "mean", "std"] and (summary["epochs_run"].iloc[:2] == 0).all()
        split = pd.read_csv(results / f"{task}/data/split.csv", dtype={"case": str})
        assert (split.set_index("case")["split"] == table.set_index("case")["split"].loc[split["case"]]).all()
        truth = pd.read_csv(results / f"{task}/truthfulness/summary.csv")
        assert truth["delta_aupc_n"].eq(2).all() and len(truth) == 6  # both models, the six methods of tiny.yaml
        metrics = set(pd.read_csv(results / f"{task}/localisation/scores.csv")["metric"])
        assert {"ds", "morf"} <= metrics and ("rma" in metrics) == (task == "own")  # masks: localisation scores
        assert (results / f"{task}/plausibility").is_dir() == (task == "own")
        assert len(list((results / f"{task}/heatmaps/export").rglob("*.png"))) > 0
        sens = pd.read_csv(results / f"{task}/sensitivity/scores.csv")
        assert set(sens["seed"]) == {1} and "data" not in set(sens["attribute"])  # no training to permute
        grid = pd.read_csv(results / f"{task}/sensitivity/seed1/GradCAM.csv")
        assert "layer=previous" in set(grid["setting"])  # gradcam_previous_layer names the block before
        assert (results / f"{task}/viewer/index.html").is_file() and (results / f"cards/{task}.html").is_file()
    predictions = pd.read_csv(results / "own3/models/seed1/predictions.csv")
    assert {"prob_0", "prob_1", "prob_2"} <= set(predictions.columns)
    np.testing.assert_allclose(predictions[["prob_0", "prob_1", "prob_2"]].sum(axis=1), 1, atol=1e-5)
    metrics = json.loads((results / "own3/models/seed1/metrics.json").read_text())
    assert np.array(metrics["test"]["confusion"]).shape == (3, 3)
    shapley = pd.read_csv(results / "own3/truthfulness/shapley.csv")
    assert np.isfinite(shapley.select_dtypes("number").to_numpy()).all()
    table2 = (results / "tables/table2.md").read_text()
    assert "own" in table2 and "own3" in table2


def test_macro_auc_and_the_multiclass_confusion_against_scikit_learn():
    from sklearn.metrics import roc_auc_score

    from clinxai.metrics.classification import class_auc, classification_metrics
    from clinxai.metrics.removal import performance

    rng = np.random.default_rng(3)
    y = np.array([0, 1, 2, 2, 1, 0, 2, 1, 0, 0, 2, 1])
    prob = rng.dirichlet(np.ones(3), size=len(y))
    assert class_auc(y, prob) == pytest.approx(roc_auc_score(y, prob, multi_class="ovr", average="macro"), abs=1e-12)
    m = classification_metrics(y, prob)
    assert m["confusion"] == (pd.crosstab(y, prob.argmax(1)).reindex(index=range(3), columns=range(3), fill_value=0)
                              .to_numpy().tolist())
    # performance over a stack of test sets (curves x steps x cases x classes)
    stack = np.stack([prob, prob[::-1]])
    np.testing.assert_allclose(performance("auc", y, stack, stack.argmax(-1)),
                               [roc_auc_score(y, p, multi_class="ovr", average="macro") for p in stack], atol=1e-12)
    # two classes: the class-1 score, exactly as before (a perfect ranking = 1)
    assert class_auc(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.8]])) == 1.0


def test_sampled_modality_shapley_beyond_the_exact_limit():
    """Seven modalities: an additive game's φ is exact from any ordering (standard error 0); a game with
    interactions is estimated within a few standard errors of the exact values (128 subsets)."""
    import itertools

    from clinxai.metrics.modality import ordering_subsets, orderings, sampled_shapley_values, shapley_values

    n, w = 7, np.array([0.3, 0.1, 0.0, 0.25, 0.05, 0.2, 0.1])
    every = [c for k in range(n + 1) for c in itertools.combinations(range(n), k)]
    additive = {c: float(w[list(c)].sum()) for c in every}
    perms = orderings(n, 50, seed=1)
    assert len(ordering_subsets(perms)) < len(every)  # the orderings' prefixes only, not all 2^7 subsets
    phi, se = sampled_shapley_values({c: additive[c] for c in ordering_subsets(perms)}, perms)
    np.testing.assert_allclose(phi, w, atol=1e-12)
    np.testing.assert_allclose(se, 0, atol=1e-12)
    game = {c: float(w[list(c)].sum()) ** 2 + 0.2 * (0 in c and 3 in c) for c in every}
    perms = orderings(n, 400, seed=2)
    needed = ordering_subsets(perms)
    assert set(needed) == {tuple(sorted(p[:k])) for p in perms for k in range(n + 1)}  # every prefix, nothing else
    phi, se = sampled_shapley_values({c: game[c] for c in needed}, perms)
    exact = shapley_values(game, n)
    assert (se > 0).any() and (np.abs(phi - exact) <= 4 * se + 1e-12).all()
    assert phi.sum() == pytest.approx(game[tuple(range(n))] - game[()])  # efficiency holds per ordering


def test_without_a_model_the_pipeline_trains_its_own_for_three_classes(tmp_path):
    """A manifest task with no model: GeneNet 3-D for the volume layout, three outputs, a 3 x 3 confusion matrix and
    the checkpoint rebuilt from its architecture (n_classes recorded beyond two)."""
    from clinxai.models import load_checkpoint
    from clinxai.training import train_model

    manifest = write_manifest(tmp_path / "data", n=24, n_classes=3)
    table = pd.read_csv(manifest)
    table["split"] = ["test" if i // 6 % 4 == 3 else "val" if i // 6 % 4 == 2 else "train" for i in range(24)]
    table.to_csv(manifest, index=False)
    cfg = data_cfg(manifest, classes=["a", "b", "c"])
    run_prepare(tmp_path, cfg)
    config = {"seeds": [1], "data": {"own": cfg}}
    kind = kind_of(config, "own")
    assert kind.model == "genenet3d" and kind.classes == ("a", "b", "c")
    train = {"model": {"widths": [4], "fc": 8, "pretrained": None},
             "train": {"lr": 1e-3, "weight_decay": 0.0, "amsgrad": False, "batch_size": 4, "step_size": 5,
                       "gamma": 0.5, "max_epochs": 1, "patience": 5, "amp": False}}
    out = {k: tmp_path / "model" / k for k in ("checkpoint", "history", "predictions", "metrics")}
    metrics = train_model("own", kind, 1, tmp_path / "out", train, out)
    assert np.array(metrics["test"]["confusion"]).shape == (3, 3)
    model = load_checkpoint(out["checkpoint"], task="own", family="genenet3d")
    assert model.classifier[-1].out_features == 3
    assert {"prob_0", "prob_1", "prob_2"} <= set(pd.read_csv(out["predictions"]).columns)


def test_the_shipped_example_builds_and_plans(tmp_path):
    """examples/own_model/make_example.py (small) and config/examples/own_model.yaml: the DAG of every stage; without
    the example's data the config names the missing manifest."""
    import subprocess
    import sys

    from helpers import ROOT, snakemake, workdir

    wd = workdir(tmp_path)
    args = ["-n", "--quiet", "rules", "--configfile", "config/config.yaml", "config/examples/own_model.yaml"]
    missing = snakemake(wd, *args)
    assert missing.returncode != 0
    assert "data.brain.manifest = 'examples/own_model/data/manifest.csv': file not found" in missing.stdout + missing.stderr
    (wd / "examples" / "own_model").mkdir(parents=True)
    (wd / "examples" / "own_model" / "tumour_net.py").symlink_to(ROOT / "examples/own_model/tumour_net.py")
    made = subprocess.run([sys.executable, str(ROOT / "examples/own_model/make_example.py"), "--out",
                           str(wd / "examples/own_model/data"), "--patients", "6", "--shape", "16", "16", "12",
                           "--epochs", "1"], capture_output=True, text=True)
    assert made.returncode == 0, made.stderr[-2000:]
    table = pd.read_csv(wd / "examples/own_model/data/manifest.csv")
    assert len(table) == 12 and table.groupby("group")["split"].nunique().max() == 1
    dry = snakemake(wd, *args)
    assert dry.returncode == 0, dry.stderr[-2000:]
    assert re.search(r"^import_model\s+2$", dry.stdout, re.M) and not re.search(r"^train\s", dry.stdout, re.M)


@pytest.mark.parametrize("bad, message", [
    (np.full(SHAPE, np.nan, np.float32), "case c04: manifest line 6, column ADC: 960 NaN/Inf voxels"),
    (np.zeros(SHAPE, np.float32), "case c04: manifest line 6, column ADC: ADC is blank"),
    (np.zeros(SHAPE, bool), "case c04: manifest line 6, column ADC: voxels of type bool"),
])
def test_a_bad_image_names_the_manifest_line_and_column(tmp_path, bad, message):
    manifest = write_manifest(tmp_path / "data")
    np.save(tmp_path / "data" / "c04_ADC.npy", bad)
    with pytest.raises(ClinxaiError) as err:
        run_prepare(tmp_path, data_cfg(manifest))
    assert message in str(err.value)


def test_a_slice_manifest_is_resized_in_2d_and_trains_densenet(tmp_path):
    """layout slice: 2-D images (a NIfTI slice stored X x Y x 1 is read as X x Y), bilinear resizing to the grid, and
    the pipeline's own network for slices (DenseNet) when no model is supplied."""
    root = tmp_path / "data"
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(12):
        row = {"case": f"s{i:02d}", "label": i % 2, "split": ["train", "train", "val", "test"][i // 2 % 4]}
        nib.save(nib.Nifti1Image(rng.normal(size=(20, 18, 1)).astype(np.float32) + 3, np.eye(4)),
                 root / f"s{i:02d}_T2.nii.gz")
        np.save(root / f"s{i:02d}_ADC.npy", rng.normal(size=(20, 18)).astype(np.float32) + 3)
        row.update({"T2": f"s{i:02d}_T2.nii.gz", "ADC": f"s{i:02d}_ADC.npy"})
        rows.append(row)
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    cfg = {**data_cfg(root / "manifest.csv", layout="slice", grid=[16, 16]), "mask": None}
    meta, out = run_prepare(tmp_path, cfg)
    assert meta["grid"] == [16, 16]
    with np.load(out["arrays"] / "s00.npz") as z:
        assert z["image"].shape == (2, 16, 16) and "seg" not in z.files and z["affine"].shape == (4, 4)
    kind = kind_of({"seeds": [1], "data": {"own": cfg}}, "own")
    assert kind.model == "densenet2d" and kind.layout == "slice" and kind.export_axis is None
    with pytest.raises(ClinxaiError, match="give 2 sizes for the slice layout"):
        run_prepare(tmp_path, {**cfg, "grid": [16, 16, 4]})


def test_a_model_that_folding_would_break_is_evaluated_unfolded(caplog):
    """BatchNorm registered after a convolution but normalising conv(x) + x: folding it into the convolution is
    wrong, and the fast predictor notices on its first batch."""
    from torch import nn

    from clinxai.inference import FlatLayout, Predictor

    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(2, 2, 3, padding=1), nn.BatchNorm2d(2)
            self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 2))

        def forward(self, x):
            return self.head(torch.relu(self.bn(self.conv(x) + x)))

    torch.manual_seed(0)
    model = Residual().eval()
    model.bn.running_mean.uniform_(-1, 1)
    model.bn.running_var.uniform_(0.2, 3)
    x = (torch.randn(1, 2, 8, 8),)
    layout = FlatLayout(x)
    flat = torch.stack([layout.flatten(x) * (1 + i) for i in range(4)])
    fast = Predictor(model, layout, fast=True)
    with caplog.at_level("WARNING"):
        prob, _ = fast(flat)
    with torch.no_grad():
        ref = torch.softmax(model(*layout.unflatten(flat)), 1).numpy()
    np.testing.assert_allclose(prob, ref, atol=1e-6)
    assert "folding BatchNorm changes this model's predictions" in caplog.text
    np.testing.assert_allclose(fast(flat)[0], ref, atol=1e-6)  # and from then on


def test_blank_lines_keep_the_line_numbers_and_numeric_class_names_are_refused(tmp_path):
    manifest = write_manifest(tmp_path / "data")
    lines = manifest.read_text().splitlines()
    lines.insert(2, "")  # a blank line 3: case c01 moves to line 4
    lines[3] = lines[3].replace("c01_ADC.npy", "gone.npy")
    manifest.write_text("\n".join(lines) + "\n")
    with pytest.raises(ClinxaiError, match="case c01: manifest line 4, column ADC: gone.npy not found"):
        run_prepare(tmp_path, data_cfg(manifest))
    with pytest.raises(ClinxaiError, match="class name '2' is a number other than its index"):
        run_prepare(tmp_path, data_cfg(manifest, classes=[2, 3]))


def test_editing_an_image_a_manifest_names_changes_its_input_state(tmp_path):
    """prepare_data reruns when a file the manifest names changes, wherever it lies (results/manifests/<task>.tsv)."""
    import os

    from clinxai.data.input_state import manifest_files, update_manifest

    manifest = write_manifest(tmp_path / "data")
    files = manifest_files(manifest)
    assert len(files) == 1 + 12 * 3 and str(tmp_path / "data" / "c03_ADC.npy") in files
    state = tmp_path / "state.tsv"
    update_manifest(state, files)
    before = state.read_text()
    target = tmp_path / "data" / "c03_ADC.npy"
    os.utime(target, ns=(target.stat().st_mtime_ns + 10**9,) * 2)
    update_manifest(state, manifest_files(manifest))
    assert state.read_text() != before


def test_every_class_keeps_a_training_group():
    """Large groups overshoot the test and val quotas; the last group of a class still trains."""
    groups = ["a"] * 5 + ["b"] * 5 + ["c"] * 1 + ["d"] * 1 + ["e"] * 1
    labels = [0] * 5 + [1] * 5 + [0, 0, 0]
    cases = pd.DataFrame({"case": [f"c{i:02d}" for i in range(len(groups))], "label": labels})
    for seed in range(10):
        split = stratified_split(cases, {"train": 0.6, "val": 0.2, "test": 0.2}, seed, groups=pd.Series(groups))
        assert set(split.loc[split["split"] == "train", "label"]) == {0, 1}  # class 1's one group never leaves
