"""Stage runners: truthfulness (feature removal, modality Shapley), plausibility and ground-truth importance."""
