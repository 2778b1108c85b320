"""Metrics, evaluation of a model on a task, and result records."""
