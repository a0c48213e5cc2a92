"""Activation extraction: hooks, time steps for spiking networks, streaming into statistics.

- :func:`extract`: full activations as DataArrays (interactive use, small stimulus sets).
- :func:`extract_stats`: per-layer :class:`~workbench.metrics.GramStats`, all layers in one
  streamed pass, cached on disk.
"""

from workbench.activations.cache import StatsCache, default_cache_dir
from workbench.activations.in_memory import extract
from workbench.activations.store import load_activations
from workbench.activations.streaming import FeatureSpill, extract_stats

__all__ = [
    "FeatureSpill",
    "StatsCache",
    "default_cache_dir",
    "extract",
    "extract_stats",
    "load_activations",
]
