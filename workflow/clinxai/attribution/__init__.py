"""Heatmaps: the method registry, supervoxel feature masks, running captum, post-processing and export."""
