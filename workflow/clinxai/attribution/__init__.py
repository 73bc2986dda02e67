"""Heatmaps: the method registry, supervoxel feature masks, running captum and post-processing (the export of
chosen cases is clinxai.report.export)."""
