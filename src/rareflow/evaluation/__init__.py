"""Evaluation: weighted metrics, thresholds from training data, the compare runner, plots, report."""
