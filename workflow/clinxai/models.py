"""The three classifiers of SPEC §2, from torch and MONAI (no torchvision).

Every model returns class logits (two for the demo's tasks; a manifest task may have more), so later stages treat all
tasks alike (softmax, target = predicted class).
The knee network has one logit z internally and returns (-z/2, z/2): softmax of that is (1 - sigmoid z, sigmoid z),
cross-entropy on it equals binary cross-entropy on z, and both class logits depend on the input, so a heatmap for
the predicted class "no tear" is not identically zero (as it would be with (0, z)).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from . import ClinxaiError
from .data.mrnet import VIEWS

DENSENET121_BLOCKS = (6, 12, 24, 16)  # DenseNet121: init_features 64, growth_rate 32


def _conv_block(conv, norm, c_in, c_out, n_convs):
    layers = []
    for i in range(n_convs):
        layers += [conv(c_in if i == 0 else c_out, c_out, kernel_size=3, padding=1), norm(c_out), nn.ReLU(inplace=True)]
    return layers


class GeneNet3D(nn.Module):
    """VGG-like 3-D CNN ("GeneNet" in the reference code).

    Block 1 has one conv, the others two; conv k3 p1 -> BatchNorm -> ReLU, MaxPool(2) after each block;
    flatten -> FC -> ReLU -> FC(2). Reference: widths (16, 32, 64, 128, 128, 128), fc 4096, input 128^3.
    """

    def __init__(self, in_channels: int, grid, widths=(16, 32, 64, 128, 128, 128), fc: int = 4096, n_classes: int = 2):
        super().__init__()
        size = list(grid)
        if any(s // 2 ** len(widths) < 1 for s in size):
            raise ClinxaiError(f"grid {list(grid)} is too small for {len(widths)} pooling blocks: use fewer "
                               f"model widths or a grid of at least {2 ** len(widths)} per side.")
        layers, c_in = [], in_channels
        for i, width in enumerate(widths):
            layers += _conv_block(nn.Conv3d, nn.BatchNorm3d, c_in, width, 1 if i == 0 else 2)
            layers.append(nn.MaxPool3d(2))
            c_in = width
        self.features = nn.Sequential(*layers)
        n_flat = c_in * math.prod(s // 2 ** len(widths) for s in size)
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(n_flat, fc), nn.ReLU(inplace=True), nn.Linear(fc, n_classes))
        for m in self.modules():
            if isinstance(m, (nn.Conv3d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)

    def forward(self, x):
        return self.classifier(self.features(x))


def two_logits(z: torch.Tensor) -> torch.Tensor:
    """One binary logit z (batch x 1) as two class logits (-z/2, z/2): softmax gives (1 - sigmoid z, sigmoid z)."""
    return torch.cat([-z / 2, z / 2], dim=1)


class SliceEncoder(nn.Module):
    """AlexNet-style 2-D feature extractor applied to every slice of a view."""

    def __init__(self, widths=(32, 64, 128)):
        super().__init__()
        layers, c_in = [], 1
        for i, width in enumerate(widths):
            k, s = (5, 2) if i == 0 else (3, 1)
            layers += [nn.Conv2d(c_in, width, kernel_size=k, stride=s, padding=k // 2), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = width
        self.net = nn.Sequential(*layers)
        self.out_features = c_in

    def forward(self, x):  # x: B x S x H x W -> B x C (average pool per slice, max over slices)
        b, s, h, w = x.shape
        f = self.net(x.reshape(b * s, 1, h, w)).mean(dim=(2, 3))
        return f.reshape(b, s, -1).amax(dim=1)


class KneeNet(nn.Module):
    """Feature-level fusion of three MRNet views: one encoder per view, concatenation, one logit."""

    views = VIEWS  # the MRNet layout's views, in the order of the forward arguments

    def __init__(self, widths=(32, 64, 128)):
        super().__init__()
        self.encoders = nn.ModuleList(SliceEncoder(widths) for _ in self.views)
        self.head = nn.Linear(sum(e.out_features for e in self.encoders), 1)

    def forward(self, axial, coronal, sagittal):
        return self.fuse([enc(v) for enc, v in zip(self.encoders, (axial, coronal, sagittal))])

    def fuse(self, features: list[torch.Tensor]) -> torch.Tensor:
        """The views' features (B x C each) -> class logits."""
        return two_logits(self.head(torch.cat(features, dim=1)))


def _classes(meta: dict) -> dict:
    """`n_classes` in an architecture only beyond two classes: the checkpoints of binary tasks keep their arch."""
    n = int(meta.get("n_classes", 2))
    return {"n_classes": n} if n != 2 else {}


def _genenet_arch(model_cfg: dict, meta: dict) -> dict:
    return {"in_channels": len(meta["channels"]), "grid": list(meta["grid"]), "widths": list(model_cfg["widths"]),
            "fc": int(model_cfg["fc"]), **_classes(meta)}


def _densenet(arch: dict) -> nn.Module:
    from monai.networks.nets import DenseNet  # MONAI's DenseNet; defaults DenseNet121 (the paper's)

    return DenseNet(spatial_dims=2, in_channels=arch["in_channels"], out_channels=arch.get("n_classes", 2),
                    init_features=arch.get("init_features", 64), growth_rate=arch.get("growth_rate", 32),
                    block_config=tuple(arch.get("block_config", DENSENET121_BLOCKS)))


def _densenet_arch(model_cfg: dict, meta: dict) -> dict:
    return {"in_channels": len(meta["channels"]), "init_features": int(model_cfg.get("init_features", 64)),
            "growth_rate": int(model_cfg.get("growth_rate", 32)),
            "block_config": [int(b) for b in model_cfg.get("block_config", DENSENET121_BLOCKS)], **_classes(meta)}


class ModelFamily:
    """How a task kind's model is built from config, rebuilt from a checkpoint, and where GradCAM looks."""

    def __init__(self, build, arch, gradcam_layer=None, previous_layer=None, chain=None, slices=None):
        self.build, self.arch = build, arch
        self._layers = {"last": gradcam_layer, "previous": previous_layer}
        self._chain, self._slices = chain, slices

    def chain(self, model: nn.Module):
        """(layers, head): the model as a chain of convolution, pooling and element-wise layers followed by a head,
        for incremental Occlusion (clinxai.attribution.occlusion); None if the family names none."""
        return None if self._chain is None else self._chain(model)

    def slices(self, model: nn.Module):
        """(chains, fuse) of a multi-view model that encodes every slice of a view with a 2-D chain, takes the
        spatial mean and the maximum over slices (SliceEncoder), then fuses the views' features: for incremental
        Occlusion of views (clinxai.attribution.occlusion_slices); None if the family names none."""
        return None if self._slices is None else self._slices(model)

    def gradcam_layer(self, model: nn.Module, which: str = "last") -> nn.Module:
        """`which`: "last" (the default) or "previous", the block before it (the hyperparameter grid)."""
        find = self._layers.get(which)
        layer = None if find is None else find(model)
        if layer is None and which == "last":
            raise ClinxaiError("GradCAM/GuidedGradCAM need one convolutional layer; this model names none (the knee "
                               "network has one per view; a supplied model: data.<task>.model.gradcam_layer). Exclude "
                               "them for this task in heatmaps.exclude.")
        if layer is None:
            raise ClinxaiError(f"GradCAM layer {which!r}: this model names none (a supplied model: "
                               "data.<task>.model.gradcam_previous_layer).")
        return layer

    def has_layer(self, model: nn.Module, which: str) -> bool:
        find = self._layers.get(which)
        return find is not None and find(model) is not None


# The last conv layer's activation before the final pooling (SPEC §3 default; the reference used the block after
# pooling, a 2x2x2 map). Task kinds name their family in clinxai.tasks.
MODEL_FAMILIES = {
    "genenet3d": ModelFamily(lambda a: GeneNet3D(a["in_channels"], a["grid"], tuple(a["widths"]), a["fc"],
                                                 a.get("n_classes", 2)),
                             _genenet_arch, lambda m: m.features[-2],  # ReLU of the last block, before its MaxPool
                             lambda m: m.features[-9],  # the block before: its ReLU (two convs + pool = 7 modules)
                             lambda m: (list(m.features), m.classifier)),
    "kneenet": ModelFamily(lambda a: KneeNet(tuple(a["widths"])), lambda cfg, meta: {"widths": list(cfg["widths"])},
                           slices=lambda m: ([list(e.net) for e in m.encoders], m.fuse)),
    "densenet2d": ModelFamily(_densenet, _densenet_arch, lambda m: m.features.denseblock4,
                              lambda m: m.features.denseblock3),
    # the user's model (clinxai.plugin): its arch is written by rule import_model, its layers named in config
    "plugin": ModelFamily(lambda a: _plugin().build(a), None, lambda m: m.layer("last"), lambda m: m.layer("previous")),
}


def _plugin():
    from . import plugin

    return plugin


def build_model(family: str, arch: dict) -> nn.Module:
    """Model of a family (clinxai.tasks.TaskKind.model) from its architecture dict (stored in every checkpoint)."""
    if family not in MODEL_FAMILIES:
        raise ClinxaiError(f"no model family {family!r}; known: {', '.join(MODEL_FAMILIES)}")
    return MODEL_FAMILIES[family].build(arch)


def save_checkpoint(path, model: nn.Module, task: str, family: str, arch: dict, extra: dict | None = None) -> None:
    from .io import atomic_path

    # through a file object: torch.save(obj, path) names the archive's folder after the (temporary) file name, so the
    # same weights gave different bytes
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save({"task": task, "family": family, "arch": arch, "state_dict": model.state_dict(), **(extra or {})},
                   fh)


def load_checkpoint(path, task: str | None = None, arch: dict | None = None, map_location="cpu",
                    family: str | None = None) -> nn.Module:
    """Rebuild the model from a checkpoint (weights_only=True); clear errors for corrupt or foreign files."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # truncated zip, not a torch file, pickled code
        raise ClinxaiError(f"checkpoint {path} cannot be read ({type(err).__name__}: {str(err)[:200]}). "
                           "Delete it and rerun the train rule for that seed.") from err
    if not isinstance(ckpt, dict) or not {"task", "arch", "state_dict"} <= set(ckpt):
        raise ClinxaiError(f"checkpoint {path} is not a clinxai checkpoint (no task/arch/state_dict).")
    if task is not None and ckpt["task"] != task:
        raise ClinxaiError(f"checkpoint {path} is a {ckpt['task']} model, expected {task}.")
    if arch is not None and dict(ckpt["arch"]) != dict(arch):
        raise ClinxaiError(f"checkpoint {path} has architecture {ckpt['arch']}, the config asks for {arch}. "
                           "Retrain (delete the checkpoint) or restore the model settings in config.")
    stored = ckpt.get("family")
    if stored is None:  # written before the task registry: "task" is the name of its kind
        from .tasks import KINDS

        stored = KINDS[ckpt["task"]].model if ckpt["task"] in KINDS else None
    if family is not None and stored != family:
        raise ClinxaiError(f"checkpoint {path} holds a {stored} model, the task's kind needs {family}: the task's kind "
                           "changed since it was trained. Delete the checkpoint and rerun its train rule.")
    family = stored
    model = build_model(family, ckpt["arch"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as err:
        raise ClinxaiError(f"checkpoint {path} does not fit the {family} architecture: {str(err)[:300]}") from err
    return model
