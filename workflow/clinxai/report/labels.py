"""The one table of metric labels every table and figure uses."""

METRIC_LABELS = {"delta_aupc": "ΔAUPC", "mi_correlation": "MI correlation", "msfi_global": "MSFI (whole map)",
                 "msfi": "MSFI", "fp": "FP", "rma": "RMA", "rra": "RRA", "vxap": "VxAP", "max_f1": "MaxF1",
                 "auroc": "AUROC", "pointing_game": "Pointing game", "ds": "DS", "ds_c": "DS_c",
                 "morf": "MoRF mean p", "lerf": "LeRF mean p", "morf_gain": "MoRF gain over random",
                 "lerf_gain": "LeRF gain over random",
                 # sensitivity (issue 19): each attribute's headline score
                 "input_spearman": "Input: ρ under scanner shifts", "max_sensitivity": "Max-sensitivity",
                 "model_spearman": "Model randomisation: ρ", "data_spearman": "Data randomisation: ρ",
                 "label_spearman": "Other class: ρ", "determinism_spearman": "Determinism: ρ of repeats",
                 "hyperparameters_spearman": "Hyperparameters: ρ to reference", "minimality_gini": "Minimality: Gini"}
