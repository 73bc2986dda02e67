"""Rendering: the paper's tables, figures, the heatmap export and the labels every table and figure uses."""
