"""Models and training on tiny prepared data: determinism, outputs, checkpoint errors."""
import pandas as pd
import pytest
import torch

from clinxai import ClinxaiError
from clinxai.data.prepare import prepare
from clinxai.models import GeneNet3D, KneeNet, load_checkpoint
from clinxai.tasks import KINDS
from clinxai.training import train_model

TRAIN = dict(lr=5e-4, weight_decay=5e-4, amsgrad=True, batch_size=4, step_size=50, gamma=0.1, max_epochs=2,
             patience=5, amp=False)
CFG = {"model": {"widths": [4, 8], "fc": 16, "pretrained": None}, "train": TRAIN}
SPLIT = {"fractions": {"train": 0.5, "val": 0.25, "test": 0.25}, "seed": 0}


@pytest.fixture(scope="module")
def glioma_data(brats_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("prep")
    out = {k: root / v for k, v in dict(split="split.csv", excluded="excluded.csv", meta="meta.json",
                                        arrays="arrays").items()}
    prepare("glioma", "brats", {"root": str(brats_master), "grid": [16, 16, 8], "on_bad_case": "stop"}, SPLIT, out)
    return root


def run(data, tmp_path, seed, name):
    out = {k: tmp_path / name / k for k in ("checkpoint", "history", "predictions", "metrics")}
    train_model("glioma", KINDS["glioma"], seed, data, CFG, out)
    return out


def test_same_seed_is_bit_identical_and_seeds_differ(glioma_data, tmp_path):
    a, b, c = run(glioma_data, tmp_path, 10, "a"), run(glioma_data, tmp_path, 10, "b"), run(glioma_data, tmp_path, 20, "c")
    sa, sb, sc = (torch.load(o["checkpoint"], weights_only=True)["state_dict"] for o in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert any(not torch.equal(sa[k], sc[k]) for k in sa if sa[k].is_floating_point())
    assert pd.read_csv(a["predictions"]).equals(pd.read_csv(b["predictions"]))


def test_channels_last_training_matches_the_default_layout_and_saves_contiguous_weights(glioma_data, tmp_path):
    a = run(glioma_data, tmp_path, 10, "cl")
    b = tmp_path / "plain"
    out = {k: b / k for k in ("checkpoint", "history", "predictions", "metrics")}
    train_model("glioma", KINDS["glioma"], 10, glioma_data, {**CFG, "train": {**TRAIN, "channels_last": False}}, out)
    sa, sb = (torch.load(o["checkpoint"], weights_only=True)["state_dict"] for o in (a, out))
    assert all(v.is_contiguous() for v in sa.values())
    # the same training up to float rounding, except where Adam amplifies the rounding: a convolution's bias before a
    # BatchNorm has a gradient of exactly zero (the norm subtracts it), so its float gradient is noise whose sign Adam
    # turns into a step of about lr either way (CI saw 1.7e-3 after two steps); it and the running mean after it are
    # left out, every other weight stays within 1e-4 (measured: 3e-6)
    modules = list(load_checkpoint(a["checkpoint"], task="glioma").named_modules())
    noise = {k for (conv, m), (norm, n) in zip(modules, modules[1:])
             if isinstance(m, torch.nn.Conv3d) and isinstance(n, torch.nn.BatchNorm3d)
             for k in (f"{conv}.bias", f"{norm}.running_mean")}
    assert len(noise) == 6 and noise <= set(sa)
    assert max(float((sa[k].float() - sb[k].float()).abs().max()) for k in sa if k not in noise) < 1e-4
    pa, pb = pd.read_csv(a["predictions"]), pd.read_csv(out["predictions"])
    assert (pa["prob_1"] - pb["prob_1"]).abs().max() < 1e-3


def test_prediction_table_has_one_row_per_test_case(glioma_data, tmp_path):
    out = run(glioma_data, tmp_path, 10, "p")
    pred = pd.read_csv(out["predictions"])
    test_cases = pd.read_csv(glioma_data / "split.csv").query("split == 'test'")["case"]
    assert sorted(pred["case"]) == sorted(test_cases)
    assert ((pred["prob_0"] + pred["prob_1"] - 1).abs() < 1e-5).all()
    assert len(pd.read_csv(out["history"])) >= 1


def test_checkpoint_errors(glioma_data, tmp_path):
    out = run(glioma_data, tmp_path, 10, "ck")
    model = load_checkpoint(out["checkpoint"], task="glioma")
    assert isinstance(model, GeneNet3D)
    with pytest.raises(ClinxaiError, match="is a glioma model, expected knee"):
        load_checkpoint(out["checkpoint"], task="knee")
    with pytest.raises(ClinxaiError, match="has architecture .* the config asks for"):
        load_checkpoint(out["checkpoint"], arch={"in_channels": 4, "grid": [16, 16, 8], "widths": [8, 8], "fc": 16})
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(out["checkpoint"].read_bytes()[:200])
    with pytest.raises(ClinxaiError, match="cannot be read.*rerun the train rule"):
        load_checkpoint(corrupt)


def test_knee_net_two_class_logits_match_one_logit():
    net = KneeNet(widths=(4, 8)).eval()
    views = [torch.randn(2, 3, 16, 16) for _ in range(3)]
    logits = net(*views)
    assert logits.shape == (2, 2) and torch.allclose(logits[:, 0], -logits[:, 1])
    assert torch.allclose(torch.softmax(logits, 1)[:, 1], torch.sigmoid(2 * logits[:, 1]))


def test_grid_too_small_for_blocks():
    with pytest.raises(ClinxaiError, match="too small for 6 pooling blocks"):
        GeneNet3D(4, (32, 32, 32))


@pytest.fixture(scope="module")
def knee_data(mrnet_master, tmp_path_factory):
    root = tmp_path_factory.mktemp("prep_knee")
    out = {k: root / v for k, v in dict(split="split.csv", excluded="excluded.csv", meta="meta.json",
                                        arrays="arrays").items()}
    prepare("knee", "mrnet", {"root": str(mrnet_master), "boxes_dir": str(mrnet_master / "boxes"), "grid": [4, 16, 16],
                     "on_bad_case": "stop"}, SPLIT, out)
    return root


def test_knee_training_is_reproducible(knee_data, tmp_path):
    cfg = {"model": {"widths": [4, 8], "pretrained": None}, "train": TRAIN}
    outs = []
    for name in ("a", "b"):
        out = {k: tmp_path / name / k for k in ("checkpoint", "history", "predictions", "metrics")}
        metrics = train_model("knee", KINDS["knee"], 10, knee_data, cfg, out)
        outs.append(out)
    assert metrics["test"]["n"] == len(pd.read_csv(outs[0]["predictions"]))
    assert pd.read_csv(outs[0]["predictions"]).equals(pd.read_csv(outs[1]["predictions"]))
    assert isinstance(load_checkpoint(outs[0]["checkpoint"], task="knee"), KneeNet)


def test_pretrained_weights_are_loaded_and_foreign_ones_refused(glioma_data, tmp_path):
    first = run(glioma_data, tmp_path, 10, "first")
    cfg = {"model": {**CFG["model"], "pretrained": str(first["checkpoint"])}, "train": {**TRAIN, "max_epochs": 1}}
    out = {k: tmp_path / "second" / k for k in ("checkpoint", "history", "predictions", "metrics")}
    train_model("glioma", KINDS["glioma"], 20, glioma_data, cfg, out)
    foreign = tmp_path / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(3)}, foreign)
    cfg["model"]["pretrained"] = str(foreign)
    with pytest.raises(ClinxaiError, match="pretrained .* no tensor matches"):
        train_model("glioma", KINDS["glioma"], 20, glioma_data, cfg, out)


def test_summary_has_mean_and_std_over_seeds(tmp_path):
    import json

    from clinxai.analysis.summaries import summarise_models

    paths = []
    for seed, acc in ((10, 0.8), (20, 0.9)):
        m = {"seed": seed, "best_epoch": 3, "epochs_run": 5, "seconds": 1.0,
             "val": {"accuracy": 1.0, "auc": 1.0}, "test": {"accuracy": acc, "auc": 0.5, "n": 10}}
        paths.append(tmp_path / f"{seed}.json")
        paths[-1].write_text(json.dumps(m))
    table = summarise_models(paths).set_index("seed")
    assert table.loc["mean", "test_accuracy"] == pytest.approx(0.85)
    assert table.loc["std", "test_accuracy"] == pytest.approx(0.0707107, rel=1e-5)
    assert table.loc["10", "test_wrong"] == 2


def test_deterministic_switch_takes_the_fast_path_in_a_fresh_process():
    """In a training job (a fresh process) the switch sets both flags without importing torch's inductor; in this test
    process inductor may already be loaded, so the fast path is checked in a subprocess."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    code = ("import sys, torch; from clinxai.training import deterministic_algorithms; deterministic_algorithms(); "
            "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(), "
            "'torch._inductor.config' in sys.modules)")
    workflow = Path(__file__).resolve().parents[1] / "workflow"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(workflow)})
    assert out.stdout.split() == ["True", "True", "False"], out.stdout + out.stderr


def test_deterministic_switch_is_the_public_ones_op_level_setting():
    from clinxai.training import deterministic_algorithms

    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
    try:
        torch.use_deterministic_algorithms(False)
        deterministic_algorithms()
        ours = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        torch.use_deterministic_algorithms(False)
        torch.use_deterministic_algorithms(True, warn_only=True)
        public = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled())
        assert ours == public == (True, True)
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])


@pytest.mark.parametrize("augmentation, shapes", [("image", [(3, 4, 8, 8, 6)]), ("views", [(3, 5, 8, 8)] * 3)])
def test_augmentation_without_metadata_gives_monais_values_and_draws(augmentation, shapes):
    """The augmenter runs MONAI's transforms on plain tensors: the same values as with MONAI's default metadata
    tracking (the same transforms, seeded alike, applied sample by sample), and the tracking setting is restored."""
    from monai.data import get_track_meta
    from monai.transforms import Compose, RandFlip, RandGaussianNoise, RandScaleIntensity, RandShiftIntensity

    from clinxai.training import _augmenter

    g = torch.Generator().manual_seed(0)
    batches = [tuple(torch.randn(s, generator=g) for s in shapes) for _ in range(4)]
    ours = _augmenter(augmentation, 7)
    if augmentation == "views":
        ref = Compose([RandGaussianNoise(prob=0.5, std=0.05), RandScaleIntensity(factors=0.1, prob=0.5)])
    else:
        ref = Compose([RandFlip(prob=0.5, spatial_axis=0), RandGaussianNoise(prob=0.5, std=0.05),
                       RandShiftIntensity(offsets=0.1, prob=0.5)])
    ref.set_random_state(7)
    assert get_track_meta()
    for batch in batches:
        got = ours(batch)
        assert get_track_meta()
        want = [torch.stack([torch.as_tensor(ref(s)).as_tensor() for s in x]).float() for x in batch]
        assert all(type(a) is torch.Tensor and torch.equal(a, b) for a, b in zip(got, want))
        assert any(not torch.equal(a, x) for a, x in zip(got, batch))  # something was augmented


def test_augmentation_restores_metadata_tracking_after_an_error():
    from monai.data import get_track_meta

    from clinxai.training import _augmenter

    with pytest.raises(TypeError):
        _augmenter("image", 0)((torch.zeros(2, 4, 8, 8, 6), torch.tensor(1.0)))  # a 0-d "batch" cannot be iterated
    assert get_track_meta()
