"""Export of chosen cases: post-processed maps as NIfTI per modality on the prepared grid with its affine (opens
over the exported MRI in ITK-SNAP / 3D Slicer), and a PNG montage per method like the paper's Fig. 2."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from .. import ClinxaiError
from ..attribution.maps import load_maps
from ..attribution.postprocess import is_layer_map, postprocess
from ..data.cases import modality_names, montage_arrays
from ..io import atomic_dir
from ..tasks import TaskKind


def _montage(path, names, images, maps, slices, axis, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(3, len(names), figsize=(2.4 * len(names), 7.2), squeeze=False)
    for j, (name, img, hm, k) in enumerate(zip(names, images, maps, slices)):
        sl_img, sl_map = (img, hm) if k is None else (np.take(img, k, axis=axis), np.take(hm, k, axis=axis))
        # BraTS axial slices are x-by-y arrays: transpose and draw from the bottom; knee slices are images already.
        origin = "upper" if axis == 0 else "lower"
        if axis != 0:
            sl_img, sl_map = sl_img.T, sl_map.T
        ax[0, j].imshow(sl_img, cmap="gray", origin=origin)
        ax[1, j].imshow(sl_map, cmap="jet", vmin=0, vmax=1, origin=origin)
        ax[2, j].imshow(sl_img, cmap="gray", origin=origin)
        ax[2, j].imshow(np.ma.masked_less_equal(sl_map, 0.05), cmap="jet", vmin=0, vmax=1, alpha=0.5, origin=origin)
        ax[0, j].set_title(name)
        for i in range(3):
            ax[i, j].axis("off")
    for i, row in enumerate(("MRI", "heatmap", "overlay")):
        ax[i, 0].text(-0.08, 0.5, row, transform=ax[i, 0].transAxes, rotation=90, va="center", ha="right")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def export_heatmaps(task: str, kind: TaskKind, maps_by_method: dict, predictions, data_dir, meta_path, cases, post_cfg: dict,
                    out_dir) -> int:
    """Write NIfTI and PNG files for the chosen test cases; returns the number of files written. Views without
    geometry (MRNet) get an identity affine."""
    import nibabel as nib

    pred = pd.read_csv(predictions, dtype={"case": str}).set_index("case")
    chosen = list(pred.index[:cases]) if isinstance(cases, int) else [str(c) for c in cases]
    missing = [c for c in chosen if c not in pred.index]
    if missing:
        raise ClinxaiError(f"heatmaps.export.cases: {missing} are not test cases of {task}; "
                           f"test cases are {list(pred.index)}")
    meta = json.loads(Path(meta_path).read_text())
    written = 0
    loaded = {m: load_maps(p) for m, p in maps_by_method.items()}
    with atomic_dir(out_dir) as tmp:
        for case in chosen:
            names = modality_names(meta)
            images, affine, slices, axis = montage_arrays(kind, data_dir, case, meta)
            case_dir = Path(tmp) / case
            case_dir.mkdir(parents=True)
            for name, img in zip(names, images):
                nib.save(nib.Nifti1Image(img.astype(np.float32), affine), case_dir / f"image_{name}.nii.gz")
                written += 1
            for method, maps in loaded.items():
                parts, status = postprocess(maps[case], [im.shape for im in images], post_cfg,
                                            gradcam=is_layer_map(method))
                for name, part in zip(names, parts):
                    nib.save(nib.Nifti1Image(part.astype(np.float32), affine), case_dir / f"{method}_{name}.nii.gz")
                    written += 1
                truth, predicted = int(pred.loc[case, "label"]), int(pred.loc[case, "pred"])
                verdict = "right" if truth == predicted else "wrong"
                title = (f"{task} case {case} - {method}: truth {kind.classes[truth]}, predicted "
                         f"{kind.classes[predicted]} ({verdict}); map {status}")
                _montage(case_dir / f"{method}.png", names, images, parts, slices, axis, title)
                written += 1
    return written
