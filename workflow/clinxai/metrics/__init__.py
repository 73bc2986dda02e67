"""Evaluation metrics of heatmaps: truthfulness (feature removal, modality importance) and plausibility."""
