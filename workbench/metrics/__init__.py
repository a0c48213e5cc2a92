"""Similarity metrics between model features and neural responses."""

from workbench.metrics.stats import GramStats

__all__ = ["GramStats"]
