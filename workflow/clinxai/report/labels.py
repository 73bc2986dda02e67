"""The one table of metric labels every table and figure uses."""

METRIC_LABELS = {"delta_aupc": "ΔAUPC", "mi_correlation": "MI correlation", "msfi_global": "MSFI (whole map)",
                 "msfi": "MSFI", "fp": "FP"}
