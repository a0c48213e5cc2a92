"""Dataset names to loaders: ``load(name)`` and ``list_datasets()``.

A loader is a function ``loader(manifest, files, **options) -> NeuralDataset`` registered
under the name a manifest gives in its ``loader`` field; ``files`` maps each manifest path to
a verified local file.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from workbench.data.dataset import NeuralDataset
from workbench.data.fetch import fetch as fetch_files
from workbench.data.manifest import Manifest, available_manifests, read_manifest
from workbench.errors import DataError

Loader = Callable[..., NeuralDataset]
_LOADERS: dict[str, Loader] = {}


def register_loader(name: str) -> Callable[[Loader], Loader]:
    """Decorator registering a loader function under ``name``."""

    def decorate(func: Loader) -> Loader:
        if name in _LOADERS:
            raise ValueError(f"loader {name!r} is already registered")
        _LOADERS[name] = func
        return func

    return decorate


def loaders() -> list[str]:
    """Names of the registered loaders."""
    _import_loaders()
    return sorted(_LOADERS)


def _import_loaders() -> None:
    import workbench.data.loaders  # noqa: F401  (registers every loader)


def list_datasets() -> list[str]:
    """Names of the datasets that have a manifest (see :mod:`workbench.data.manifest`)."""
    return list(available_manifests())


def load(name: str | os.PathLike, *, mirror: str | os.PathLike | None = None, fetch: bool = True,
         progress: bool = False, **options) -> NeuralDataset:
    """Fetch (if needed), verify and load a dataset.

    Parameters
    ----------
    name : str or path-like
        A dataset name from :func:`list_datasets` or a path to a manifest ``.yaml``.
    mirror : path-like, optional
        Local folder laid out like ``../shared/data`` to copy files from; defaults to
        ``$WORKBENCH_DATA_MIRROR``.
    fetch : bool, default: True
        Fetch missing files; with False, a missing cached file is an error.
    progress : bool, default: False
        Show progress bars while fetching.
    **options
        Loader options; they override the manifest's ``options`` (e.g. ``session="201025"``
        for ``cowley2023_v4``, ``reliability_threshold=0.5``).

    Returns
    -------
    NeuralDataset
    """
    manifest = read_manifest(name)
    _import_loaders()
    if manifest.loader not in _LOADERS:
        raise DataError(
            f"manifest {manifest.source}: field 'loader' is {manifest.loader!r}; expected one of "
            f"{sorted(_LOADERS)}"
        )
    files = fetch_files(manifest, mirror=mirror, progress=progress) if fetch else _cached(manifest)
    return _LOADERS[manifest.loader](manifest, files, **{**manifest.options, **options})


def _cached(manifest: Manifest) -> dict:
    from workbench.data.fetch import cache_dir, verify_file

    root = manifest.root or cache_dir()
    files = {}
    for entry in manifest.files:
        path = root / entry.path
        if not path.is_file():
            raise DataError(
                f"{entry.path}: not in {root}; run `workbench data fetch {manifest.name}`"
            )
        verify_file(path, entry, origin=str(path))
        files[entry.path] = path
    return files
