"""The task registry: everything that differs between kinds of task, in one place (torch-free).

A task in config is a *name* the user chooses (a key of `data`, listed in `tasks`) plus a *kind* from this registry
(`data.<task>.kind`; when it is left out, a task named like a kind is of that kind, so the demo's `glioma`, `knee` and
`synthetic` need no kind key). Per-task settings stay keyed by the task's name in config (`truthfulness.metric.<task>`,
`training.<task>`, ...); where a task has none, the default comes from its kind (`TaskKind.defaults`).

Code outside this module asks the kind (`kind_of(config, task).layout`, `.mask`, ...) and never compares a task name
with a literal (tests/test_task_registry.py greps for that). Adding a kind of task means adding one `TaskKind` here,
its dataset reader in `clinxai.data.prepare` (and phantom writer in `clinxai.data.phantoms`), its model family in
`clinxai.models`, and its `data_<kind>` / `training_<kind>` schemas in workflow/schemas/config.schema.yaml. Modality
names are declared here (for checks before any data exist) and written by the readers into `meta.json`, which the
stages read; the GradCAM layer comes from the model family.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from . import ClinxaiError

# Input layouts: how one case's model inputs are stored (arrays/<case>.npz) and fed to the model.
VOLUME = "volume"  # one tensor C x D x H x W under key "image" (channels = modalities)
SLICE = "slice"    # one tensor C x H x W under key "image"
VIEWS = "views"    # one tensor per view (S x H x W), keyed by view name, fed as separate model arguments


@dataclass(frozen=True)
class ClinicalMask:
    """The region a plausible map highlights (SPEC §5), as stored in the prepared arrays."""

    key: str | None                           # npz key ("seg"), or a prefix joined with each view ("box" -> box_axial);
                                              # None: the task has no clinical masks (no plausibility)
    per_view: bool = False                    # one mask per view (VIEWS layout)
    modalities: tuple[str, ...] | None = None  # only these modalities carry the mask (None: every modality)
    dilation: str | None = None               # "axial": per axial slice by a square (plausibility.mask_dilation)
    folder_key: str | None = None             # masks from their own folder, `data.<task>.<folder_key>` for real data
    phantom_folder: str | None = None         # ... and this subfolder of the phantom (no folder: no plausibility)


@dataclass(frozen=True)
class TaskKind:
    name: str
    title: str                     # table column title when the task keeps the kind's name
    layout: str                    # VOLUME | SLICE | VIEWS
    modalities: tuple              # channel or view names, in the prepared data's order (as its reader writes them)
    classes: tuple                 # class names by label (0, 1, ...): what a prediction means in words
    dataset: str                   # reader of the task's data: "brats", "mrnet", "csv_manifest" (prepare_data),
                                   # "synthetic" (generated)
    model: str                     # model family in clinxai.models.MODEL_FAMILIES
    truthfulness: str              # "removal": feature removal + modality Shapley; "groundtruth": known importance
    mask: ClinicalMask
    augmentation: str              # clinxai.training: "image" (flip + noise + shift) or "views" (noise + scale)
    export_axis: int | None        # axis of the montage slice: -1 BraTS axial, 0 slices of a view, None 2-D whole
    sources: dict = field(default_factory=dict)  # real-data source -> (config key of its folder, file inside it)
    phantom: str | None = None     # phantom dataset built for `source: phantom` (results/phantoms/<phantom>)
    reads_kind: str | None = None  # the kind of task whose data this kind reads (the synthetic GAN: BraTS seg)
    defaults: dict = field(default_factory=dict)  # dotted config path -> value, for per-task keys left out
    default_source: str | None = None  # `data.<task>.source` when the config leaves it out (the manifest kind)
    configured: bool = False       # modalities, classes, layout and model come from data.<task> (user_kind)

    @property
    def removal(self) -> bool:
        return self.truthfulness == "removal"

    @property
    def has_affine(self) -> bool:  # MRNet views carry no geometry
        return self.layout != VIEWS

    @property
    def generated(self) -> bool:
        """Data made by the workflow (rule synthetic_data) rather than read and prepared (rule prepare_data)."""
        return self.dataset == "synthetic"


def _training(model: dict) -> dict:
    """The reference training settings (SPEC §2) with a kind's model."""
    return {"model": {**model, "pretrained": None},
            "train": {"lr": 5.0e-4, "weight_decay": 5.0e-4, "amsgrad": True, "batch_size": 4, "step_size": 50,
                      "gamma": 0.1, "max_epochs": 150, "patience": 50, "amp": True}}


KINDS: dict[str, TaskKind] = {k.name: k for k in (
    TaskKind("glioma", "Glioma", VOLUME, ("T1", "T1C", "T2", "FLAIR"), ("LGG", "HGG"), "brats", "genenet3d", "removal",
             ClinicalMask("seg", dilation="axial"), "image", -1,
             sources={"brats": ("brats_dir", "name_mapping.csv")}, phantom="brats",
             defaults={"truthfulness.metric": "accuracy", "truthfulness.removal.replacement": "zero",
                       "heatmaps.postprocess.smooth_sigma": [1, 1, 0], "plausibility.phi_normalisation": "minmax",
                       "plausibility.mask_dilation": {"square": 20, "reference_size": 128},
                       "heatmaps.exclude": [], "heatmaps.params": {},
                       "heatmaps.supervoxels": {"n_segments": 50, "compactness": 0.1, "sigma": 2,
                                                "unified_channel": 3},
                       "training": _training({"widths": [16, 32, 64, 128, 128, 128], "fc": 4096})}),
    TaskKind("knee", "Knee", VIEWS, ("axial", "coronal", "sagittal"), ("no tear", "tear"), "mrnet", "kneenet", "removal",
             ClinicalMask("box", per_view=True, folder_key="boxes_dir", phantom_folder="boxes"), "views", 0,
             sources={"mrnet": ("mrnet_dir", "train-meniscus.csv")}, phantom="mrnet",
             defaults={"truthfulness.metric": "auc", "truthfulness.removal.replacement": "mean",
                       "heatmaps.postprocess.smooth_sigma": [0, 1, 1], "plausibility.phi_normalisation": "max",
                       "plausibility.mask_dilation": None,
                       "heatmaps.exclude": ["GradCAM", "GuidedGradCAM", "DeepLift", "FeaturePermutation"],
                       "heatmaps.params": {},
                       "heatmaps.supervoxels": {"n_segments": 30, "compactness": 0.1, "sigma": 2,
                                                "unified_channel": 0},
                       "training": _training({"widths": [64, 192, 384, 256, 256]})}),
    TaskKind("synthetic", "Synthetic glioma", SLICE, ("FLAIR", "T1", "T1C", "T2"), ("round", "irregular"),
             "synthetic", "densenet2d", "groundtruth",
             ClinicalMask("seg", modalities=("T1C",)), "image", None, reads_kind="glioma",
             defaults={"truthfulness.metric": "accuracy", "truthfulness.removal.replacement": "zero",
                       "heatmaps.postprocess.smooth_sigma": [1, 1], "plausibility.phi_normalisation": "max",
                       "plausibility.mask_dilation": None, "heatmaps.exclude": [], "heatmaps.params": {},
                       "heatmaps.supervoxels": {"n_segments": 50, "compactness": 0.1, "sigma": 2,
                                                "unified_channel": 0},
                       "training": _training({"init_features": 64, "growth_rate": 32,
                                              "block_config": [6, 12, 24, 16]})}),
    # The user's own data (issue 23): a CSV manifest of NIfTI / .npy files, with the user's model or one the pipeline
    # trains. Modalities, classes, layout, masks and model are the task's config (user_kind fills them in).
    TaskKind("manifest", "Manifest", VOLUME, (), (), "csv_manifest", "genenet3d", "removal", ClinicalMask("seg"),
             "image", -1, sources={"manifest": ("manifest", None)}, default_source="manifest", configured=True),
)}

# The comparisons of method rankings the paper reports (SPEC §6), by kind: flagged in the Kendall table.
PAPER_PAIRS = {(("glioma", "delta_aupc"), ("knee", "delta_aupc")),
               (("glioma", "mi_correlation"), ("knee", "mi_correlation")),
               (("synthetic", "msfi_global"), ("glioma", "mi_correlation")),
               (("synthetic", "msfi_global"), ("glioma", "delta_aupc"))}


def kind_name(config: dict, task: str) -> str:
    """The kind of a task: `data.<task>.kind`, or the task's own name when that is a kind."""
    data = config.get("data", {}).get(task)
    if data is None:
        raise ClinxaiError(f"task {task!r} has no entry under `data`: add data.{task} with its kind "
                           f"({', '.join(KINDS)}) and settings.")
    kind = data.get("kind", task)
    if kind not in KINDS:
        raise ClinxaiError(f"config key data.{task}.kind = {kind!r}: unknown kind of task; known: "
                           f"{', '.join(KINDS)} (a task not named after a kind must set data.{task}.kind).")
    return kind


def kind_of(config: dict, task: str) -> TaskKind:
    kind = KINDS[kind_name(config, task)]
    return user_kind(kind, config["data"][task]) if kind.configured else kind


# The pipeline's own model for a user's data of each layout, when the task supplies none (data.<task>.model)
OWN_FAMILY = {VOLUME: ("genenet3d", "glioma"), SLICE: ("densenet2d", "synthetic")}
MANIFEST_DEFAULTS = {"truthfulness.removal.replacement": "zero", "plausibility.phi_normalisation": "max",
                     "plausibility.mask_dilation": None, "heatmaps.params": {},
                     "heatmaps.supervoxels": {"n_segments": 50, "compactness": 0.1, "sigma": 2, "unified_channel": 0}}


def user_kind(kind: TaskKind, cfg: dict) -> TaskKind:
    """A configured kind (the manifest) completed by its task's data entry: the user's modalities, classes, layout,
    clinical mask and model (a plug-in model, or the pipeline's own family for the layout)."""
    layout = cfg.get("layout", VOLUME)
    family, like = OWN_FAMILY.get(layout, OWN_FAMILY[VOLUME])
    model = cfg.get("model")
    no_cam = model is not None and not model.get("gradcam_layer")
    n_dims = 3 if layout == VOLUME else 2
    defaults = {**MANIFEST_DEFAULTS, "truthfulness.metric": cfg.get("metric", "auc"),
                "heatmaps.postprocess.smooth_sigma": [1] * n_dims,
                "heatmaps.exclude": ["GradCAM", "GuidedGradCAM"] if no_cam else [],
                "training": KINDS[like].defaults["training"]}
    classes = tuple(str(c) for c in cfg.get("classes") or ("0", "1"))
    return replace(kind, layout=layout, modalities=tuple(cfg.get("modalities") or ()), classes=classes,
                   model="plugin" if model is not None else family,
                   mask=ClinicalMask("seg" if cfg.get("mask") else None),
                   export_axis=-1 if layout == VOLUME else None, defaults=defaults)


def data_source(config: dict, task: str) -> str | None:
    """Where a task's data come from (`data.<task>.source`: phantom, brats, mrnet, manifest; None: generated)."""
    return config["data"][task].get("source", kind_of(config, task).default_source)


def supplied_model(config: dict, task: str) -> dict | None:
    """The user's model of a task (`data.<task>.model`), which stands in for the trained seeds; None: train one."""
    return config["data"][task].get("model") if kind_of(config, task).configured else None


def task_seeds(config: dict, task: str) -> list[int]:
    """The models of a task: the configured seeds, or one per checkpoint of a supplied model (1, 2, ...)."""
    model = supplied_model(config, task)
    if model is None:
        return list(config["seeds"])
    return list(range(1, len(checkpoints(model)) + 1))


def checkpoints(model: dict) -> list[str]:
    """`model.checkpoint`: one path or a list of them."""
    ckpt = model["checkpoint"]
    return [ckpt] if isinstance(ckpt, str) else list(ckpt)


def task_setting(config: dict, dotted: str, task: str):
    """A per-task config value (`<dotted>.<task>`), or the task kind's default where the config has none."""
    node = config
    for part in dotted.split("."):
        node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            break
    if isinstance(node, dict) and task in node:
        return node[task]
    defaults = kind_of(config, task).defaults
    if dotted not in defaults:
        raise ClinxaiError(f"config key {dotted}.{task} is missing and the {kind_name(config, task)} kind has no "
                           "default for it: add it to the config.")
    return defaults[dotted]


def mask_folder(config: dict, task: str, results: str = "results") -> str | None:
    """The folder a task's clinical masks are read from, when its kind keeps them in one (knee: menisci boxes)."""
    mask, cfg = kind_of(config, task).mask, config["data"][task]
    if mask.folder_key is None:
        return None
    if data_source(config, task) == "phantom":
        return f"{data_root(config, task, results)}/{mask.phantom_folder}"
    return cfg.get(mask.folder_key)


def has_clinical_mask(config: dict, task: str) -> bool:
    """False where a kind's masks come from an optional folder the config leaves out (real MRNet without boxes)."""
    mask = kind_of(config, task).mask
    return mask.key is not None and (mask.folder_key is None or bool(mask_folder(config, task)))


def data_root(config: dict, task: str, results: str = "results") -> str:
    """The dataset a task reads: the user's real data folder (the manifest kind: its CSV file), or the phantom the
    workflow builds."""
    kind, cfg = kind_of(config, task), config["data"][task]
    source = data_source(config, task)
    if source in kind.sources:
        return cfg[kind.sources[source][0]]
    if kind.phantom is None:
        raise ClinxaiError(f"task {task!r} ({kind.name}) reads no dataset folder: its data are generated")
    return f"{results}/phantoms/{kind.phantom}"


def task_title(config: dict, task: str) -> str:
    """A task's name in tables: the kind's title for a task named after its kind, else the user's name."""
    kind = kind_of(config, task)
    return kind.title if task == kind.name else task


def tasks_where(config: dict, predicate) -> list[str]:
    """The configured tasks (in config order) whose kind satisfies `predicate`."""
    return [t for t in config["tasks"] if predicate(kind_of(config, t))]


def source_task(config: dict, task: str) -> str:
    """The task whose data a reading kind uses (`data.<task>.source_task`, else the first configured task of the kind
    it reads, else the first such `data` entry: the synthetic GAN trains on a glioma task's BraTS folder)."""
    kind = kind_of(config, task)
    if kind.reads_kind is None:
        raise ClinxaiError(f"task {task!r} of kind {kind.name} reads no other task's data")
    chosen = config["data"][task].get("source_task")
    candidates = [t for t in config["data"] if kind_name(config, t) == kind.reads_kind]
    # a configured task first: an overlay cannot delete the shipped config's entries (data.glioma stays)
    candidates.sort(key=lambda t: (t not in config.get("tasks", []), config.get("tasks", []).index(t)
                                   if t in config.get("tasks", []) else 0))
    if chosen is None:
        if not candidates:
            raise ClinxaiError(f"task {task!r} ({kind.name}) reads the data of a {kind.reads_kind} task: add one "
                               f"under `data` or name it in data.{task}.source_task.")
        return candidates[0]
    if chosen not in candidates:
        raise ClinxaiError(f"config key data.{task}.source_task = {chosen!r}: not a {kind.reads_kind} task under "
                           f"`data` (those are: {', '.join(candidates) or 'none'}).")
    return chosen


def task_records(config: dict) -> list[dict]:
    """The configured tasks as plain rows (name, kind, title, truthfulness), in config order: what the torch-free
    analysis and rendering rules need to know of each task, passed to them as a rule parameter."""
    return [{"task": t, "kind": kind_name(config, t), "title": task_title(config, t),
             "truthfulness": kind_of(config, t).truthfulness} for t in config["tasks"]]


# Names a task cannot take: keys that sit beside task names in config, or rows the tables add.
RESERVED_NAMES = ("device", "all")

# Config keys renamed since earlier versions: old dotted key -> new one (accepted under the old name).
RENAMED_KEYS = {"truthfulness.synthetic": "truthfulness.groundtruth"}
