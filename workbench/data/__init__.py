"""Neural datasets: manifests, verified fetching, loaders, stimuli and reliability.

>>> ds = workbench.data.load("cowley2023_v4")  # doctest: +SKIP
>>> ds.responses("V4").sizes  # doctest: +SKIP
Frozen({'stimulus': 640, 'neuroid': 50})
"""

from workbench.data.dataset import NeuralDataset, RegionData
from workbench.data.fetch import cache_dir, fetch
from workbench.data.manifest import FileEntry, Manifest, read_manifest
from workbench.data.registry import list_datasets, load, register_loader
from workbench.data.reliability import spearman_brown, split_half_means, split_half_reliability
from workbench.data.stimuli import StimulusSet

list = list_datasets  # noqa: A001  (``workbench.data.list()`` names the available datasets)

__all__ = [
    "FileEntry", "Manifest", "NeuralDataset", "RegionData", "StimulusSet", "cache_dir", "fetch",
    "list", "list_datasets", "load", "read_manifest", "register_loader", "spearman_brown",
    "split_half_means", "split_half_reliability",
]
