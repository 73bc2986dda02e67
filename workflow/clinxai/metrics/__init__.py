"""Formulas only, one concern per module: `removal` (feature removal, ΔAUPC), `modality` (modality Shapley, MI
correlation), `localisation` (FP, MSFI against a clinical mask), `classification` (accuracy, ROC AUC)."""
