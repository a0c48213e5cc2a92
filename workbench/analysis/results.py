"""A run's result files: the scores (``scores.nc``, ``scores.csv``) and the RDMs (``rdms.nc``).

Every file is written atomically (:func:`workbench.storage.atomic_path`) and read back with a
:class:`~workbench.errors.DataError` that names the file when it is missing or unreadable.

- :func:`save_scores`, :func:`load_scores`: the scores Dataset (schema in
  :mod:`workbench.analysis.scores`) as netCDF (h5netcdf engine) and a tidy CSV
  (:func:`~workbench.analysis.scores.to_frame`).
- :func:`save_rdms`, :func:`load_rdms`: the RDM pairs the heatmaps show (each model's best layer
  beside each brain region), one netCDF group per pair (:func:`rdm_pairs_tree`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import xarray as xr

from workbench import dims
from workbench.analysis.scores import to_frame, validate_scores
from workbench.errors import DataError, ValidationError
from workbench.storage import atomic_path

SCORES_FILE = "scores.nc"
SCORES_CSV = "scores.csv"
RDMS_FILE = "rdms.nc"


def save_scores(scores: xr.Dataset, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``scores.nc`` and ``scores.csv`` into ``directory`` atomically; returns both paths."""
    validate_scores(scores)
    directory = Path(directory)
    nc_path, csv_path = directory / SCORES_FILE, directory / SCORES_CSV
    encoded = scores.copy()
    for var in ("layer_name", "error", "warning"):
        if var in encoded:
            encoded[var] = encoded[var].astype(str)
    with atomic_path(nc_path) as tmp:
        encoded.to_netcdf(tmp, engine="h5netcdf")
    with atomic_path(csv_path) as tmp:
        to_frame(scores).to_csv(tmp, index=False)
    return nc_path, csv_path


def load_scores(path: str | os.PathLike) -> xr.Dataset:
    """Read a scores Dataset from ``scores.nc`` or from the directory holding it."""
    path = _run_file(path, SCORES_FILE, "no scores file there; run a sweep (workbench score) first")
    try:
        scores = xr.load_dataset(path, engine="h5netcdf")
    except Exception as exc:
        raise DataError(f"{path}: not a readable scores file ({type(exc).__name__}: {exc})") from exc
    for var in ("layer_name", "error"):
        scores[var] = scores[var].astype(object)
    if "warning" in scores:
        scores["warning"] = scores["warning"].astype(object)
    elif "error" in scores:  # written before `warning` split it off `error`: no caveats recorded
        scores["warning"] = (scores["error"].dims, np.full(scores["error"].shape, "", dtype=object))
    try:
        return validate_scores(scores, name=str(path))
    except ValidationError as exc:
        raise DataError(str(exc)) from exc


def check_rdm(rdm, name: str) -> np.ndarray:
    from workbench.validation import check_array

    rdm = check_array(rdm, name, ndim=2, min_rows=2, min_cols=2)
    if rdm.shape[0] != rdm.shape[1]:
        raise ValidationError(f"{name} must be square, found shape {rdm.shape}")
    return rdm


def rdm_pairs_tree(pairs) -> xr.DataTree:
    """Package (model, layer_name, region, model_rdm, brain_rdm) tuples for ``rdms.nc``.

    Parameters
    ----------
    pairs : iterable of (str, str, str, ndarray, ndarray[, sequence of str])
        Model name, layer name, region label, the model layer's RDM and the region's RDM
        (both ``(n_stimuli, n_stimuli)`` over the same stimuli in the same order) and,
        optionally, each stimulus's category (None: no categories).

    Returns
    -------
    xarray.DataTree
        One child node per pair, holding ``model_rdm`` and ``brain_rdm`` (float32, enough for
        heatmaps) with dims ``(stimulus_a, stimulus_b)``, scalar coordinates ``model``,
        ``layer_name``, ``region`` and, when given, ``category`` on ``stimulus_a``.
    """
    children = {}
    for k, (model, layer_name, region, model_rdm, brain_rdm, *rest) in enumerate(pairs):
        model_rdm = check_rdm(model_rdm, "model_rdm")
        brain_rdm = check_rdm(brain_rdm, "brain_rdm")
        coords = {"model": model, "layer_name": layer_name, dims.REGION: region}
        categories = rest[0] if rest else None
        if categories is not None:
            if len(categories) != model_rdm.shape[0]:
                raise ValidationError(
                    f"pair {k} ({model}, {region}): {len(categories)} categories for "
                    f"{model_rdm.shape[0]} stimuli; expected one per stimulus"
                )
            coords["category"] = ("stimulus_a", np.asarray(categories, dtype=str))
        children[f"pair_{k}"] = xr.Dataset(
            {
                "model_rdm": (("stimulus_a", "stimulus_b"), model_rdm.astype(np.float32)),
                "brain_rdm": (("stimulus_a", "stimulus_b"), brain_rdm.astype(np.float32)),
            },
            coords=coords,
        )
    return xr.DataTree.from_dict(children)


def save_rdms(pairs, path: str | os.PathLike) -> Path:
    """Write RDM pairs (see :func:`rdm_pairs_tree`) to a netCDF file atomically."""
    tree = rdm_pairs_tree(pairs)
    path = Path(path)
    with atomic_path(path) as tmp:
        tree.to_netcdf(tmp, engine="h5netcdf")
    return path


def load_rdms(path: str | os.PathLike) -> xr.DataTree:
    """Read a run's RDMs: ``rdms.nc`` itself, or the run directory that holds it.

    ``rdms.nc`` is a netCDF file with one *group* per (model, region) pair, so
    ``xarray.open_dataset("rdms.nc")`` shows an empty Dataset: its root group is empty.
    Read it with this function (or ``xarray.open_datatree(path, engine="h5netcdf")``).

    Returns
    -------
    xarray.DataTree
        One child per pair, ``pair_0``, ``pair_1``, ...; each child's Dataset holds
        ``model_rdm`` and ``brain_rdm`` (float32, dims ``(stimulus_a, stimulus_b)``), the
        scalar coordinates ``model``, ``layer_name`` (the model's best layer by RSA, or by the
        first scored metric) and ``region``, and ``category`` on ``stimulus_a`` where the dataset
        has category labels (the 92-image set). Iterate with
        ``for name, node in tree.children.items(): pair = node.to_dataset()``.

    Examples
    --------
    >>> tree = load_rdms("reports/demo")  # doctest: +SKIP
    >>> {str(n["model"].values): str(n["region"].values) for n in tree.children.values()}  # doctest: +SKIP
    """
    path = _run_file(path, RDMS_FILE, "no RDM file there; `workbench score` and `workbench report` write it")
    try:
        with xr.open_datatree(path, engine="h5netcdf") as tree:
            return tree.load()
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read RDMs from {path}: {exc}") from exc


def _run_file(path: str | os.PathLike, name: str, missing: str) -> Path:
    """``path``, or ``path / name`` when it is a run directory; a DataError saying ``missing``
    when there is no such file."""
    path = Path(path)
    if path.is_dir():
        path = path / name
    if not path.is_file():
        raise DataError(f"{path}: {missing}")
    return path
