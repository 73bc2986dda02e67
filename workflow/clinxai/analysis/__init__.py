"""Torch-free analysis of the stage outputs: summaries, statistics, rankings, timing and the scorecard rules."""
