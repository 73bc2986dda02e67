"""Make the "own model and data" example: a manifest of NIfTI files and two trained checkpoints of a model that is
not clinxai's (tumour_net.small_cnn), as a clinical-AI engineer would bring them.

    python examples/own_model/make_example.py            # writes examples/own_model/data/ (about a minute)
    snakemake --cores all --configfile config/config.yaml config/examples/own_model.yaml

The images come from clinxai's brain-MR phantom (two modalities, T2 and FLAIR, with the tumour as the clinical
mask; label HGG or LGG), normalised here as "your" preprocessing would (z-score over the brain), so the workflow
feeds them to the model as they are (data.<task>.preprocessing: none). Pairs of scans share a patient id (group)
and a split; the two checkpoints are the same network trained with two seeds on the train split.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parents[1] / "workflow")]

from clinxai.data.phantom_brats import generate_subject  # noqa: E402
from tumour_net import small_cnn  # noqa: E402

MODALITIES = {"T2": "t2", "FLAIR": "flair"}


def write_cases(out: Path, n_patients: int, shape, seed: int) -> pd.DataFrame:
    """Two scans per patient (one grade each), z-scored over the brain, with the tumour mask."""
    rng = np.random.default_rng(seed)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(exist_ok=True)
    grades = ["HGG", "LGG"] * (n_patients // 2) + ["HGG"] * (n_patients % 2)
    splits = np.array(["train"] * n_patients, dtype=object)
    order = rng.permutation(n_patients)
    n_test = n_val = max(2, n_patients // 5)
    splits[order[:n_test]], splits[order[n_test:n_test + n_val]] = "test", "val"
    rows = []
    for p, grade in enumerate(grades):
        for visit in range(2):
            case = f"pat{p:02d}v{visit}"
            images, labels, affine = generate_subject(shape, grade, int(rng.integers(2**31 - 1)))
            row = {"case": case, "label": grade, "split": splits[p], "group": f"patient{p:02d}"}
            brain = images["t1"] > 0
            for name, key in MODALITIES.items():
                img = images[key].astype(np.float32)
                img = np.where(brain, (img - img[brain].mean()) / img[brain].std(), 0).astype(np.float32)
                path = f"images/{case}_{name}.nii.gz"
                nib.save(nib.Nifti1Image(img, affine), out / path)
                row[name] = path
            row["tumour"] = f"masks/{case}_tumour.nii.gz"
            nib.save(nib.Nifti1Image((labels > 0).astype(np.uint8), affine), out / row["tumour"])
            rows.append(row)
    table = pd.DataFrame(rows)
    table.to_csv(out / "manifest.csv", index=False)
    return table


def train(out: Path, table: pd.DataFrame, seed: int, epochs: int) -> float:
    """The network of tumour_net trained on the train split (plain PyTorch: nothing of clinxai's)."""
    torch.manual_seed(seed)
    x = torch.stack([torch.from_numpy(np.stack([nib.load(out / r[m]).get_fdata(dtype=np.float32)
                                                for m in MODALITIES])) for _, r in table.iterrows()])
    y = torch.tensor((table["label"] == "HGG").to_numpy(), dtype=torch.float32)
    train_idx = np.flatnonzero(table["split"].to_numpy() == "train")
    model = small_cnn(in_channels=len(MODALITIES), width=8, n_outputs=1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(train_idx), generator=gen).split(4):
            if len(batch) < 2:
                continue
            sel = train_idx[batch.numpy()]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x[sel])[:, 0], y[sel])
            opt.zero_grad()
            loss.backward()
            opt.step()
    torch.save(model.state_dict(), out / f"model_{seed}.pt")
    model.eval()
    test = np.flatnonzero(table["split"].to_numpy() == "test")
    with torch.no_grad():
        return float(((model(x[test])[:, 0] > 0).float() == y[test]).float().mean())


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=HERE / "data")
    ap.add_argument("--patients", type=int, default=16)
    ap.add_argument("--shape", type=int, nargs=3, default=[32, 32, 24])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    table = write_cases(args.out, args.patients, args.shape, args.seed)
    for seed in (1, 2):
        acc = train(args.out, table, seed, args.epochs)
        print(f"model_{seed}.pt: test accuracy {acc:.2f}")
    print(f"{len(table)} cases of {table['group'].nunique()} patients in {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
