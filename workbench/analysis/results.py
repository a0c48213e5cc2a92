"""A run's result files: the scores (``scores.nc``, ``scores.csv``) and the RDMs (``rdms.nc``).

Every file is written atomically (:func:`workbench.storage.atomic_path`) and read back with a
:class:`~workbench.errors.DataError` that names the file when it is missing or unreadable.

- :func:`save_scores`, :func:`load_scores`: the scores Dataset (schema in
  :mod:`workbench.analysis.scores`) as netCDF (h5netcdf engine) and a tidy CSV
  (:func:`~workbench.analysis.scores.to_frame`). In ``scores.nc`` the ``layer`` dimension is
  indexed by layer *name* (the union of the models' layers, in order of appearance), so that
  ``xr.open_dataset("scores.nc").sel(model="sew_resnet18", layer="layer2.1")`` works; each
  model's ``layer_position`` (``-1`` where it has no such layer) gives the positions that
  :func:`load_scores` restores (the in-memory schema indexes layers by position, as do files
  written before names; both are read).
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
#: String variables of the scores, stored as text and read back as Python strings.
_STRING_VARS = ("layer_name", "error", "warning", "cell_error", "cell_warning")
#: The variable of ``scores.nc`` that marks its layers as indexed by name (:func:`layers_by_name`).
LAYER_POSITION = "layer_position"


def save_scores(scores: xr.Dataset, directory: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``scores.nc`` and ``scores.csv`` into ``directory`` atomically; returns both paths."""
    validate_scores(scores)
    directory = Path(directory)
    nc_path, csv_path = directory / SCORES_FILE, directory / SCORES_CSV
    encoded = layers_by_name(scores)
    for var in _STRING_VARS:
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
    if LAYER_POSITION in scores:
        scores = layers_by_position(scores)
    for var in _STRING_VARS:
        if var in scores:
            scores[var] = scores[var].astype(object)
    if "warning" not in scores and "error" in scores:  # written before `warning` split it off `error`: no caveats recorded
        scores["warning"] = (scores["error"].dims, np.full(scores["error"].shape, "", dtype=object))
    try:
        return validate_scores(scores, name=str(path))
    except ValidationError as exc:
        raise DataError(str(exc)) from exc


def layers_by_name(scores: xr.Dataset) -> xr.Dataset:
    """The scores as ``scores.nc`` stores them: ``layer`` indexed by layer name.

    The ``layer`` coordinate becomes the union of the models' layer names (in the order they
    first appear, model by model); ``layer_name`` is replaced by ``layer_position`` (model,
    layer): the layer's position in its model, ``-1`` where the model has no such layer (its
    cells are NaN, ``""`` or False there). :func:`layers_by_position` inverts it.
    """
    names = scores["layer_name"].transpose(dims.MODEL, dims.LAYER).values.astype(str)
    order = list(dict.fromkeys(name for row in names for name in row if name))
    position = np.full((names.shape[0], len(order)), -1, dtype=np.int64)
    for m, row in enumerate(names):
        for p, name in enumerate(row):
            if name:
                position[m, order.index(name)] = p
    out = _relayer(scores.drop_vars("layer_name"), position, order)
    out[LAYER_POSITION] = ((dims.MODEL, dims.LAYER), position)
    return out


def layers_by_position(stored: xr.Dataset) -> xr.Dataset:
    """The in-memory scores (``layer`` = position in each model) from the by-name layout of
    :func:`layers_by_name`."""
    position = stored[LAYER_POSITION].transpose(dims.MODEL, dims.LAYER).values
    n_layers = int(position.max()) + 1 if position.size else 0
    names = np.full((position.shape[0], n_layers), "", dtype=object)
    # positions of the stored columns at each in-memory slot: the inverse permutation per model
    column = np.full((position.shape[0], n_layers), -1, dtype=np.int64)
    for m, j in zip(*np.nonzero(position >= 0)):
        column[m, position[m, j]] = j
        names[m, position[m, j]] = str(stored[dims.LAYER].values[j])
    out = _relayer(stored.drop_vars(LAYER_POSITION).drop_vars(dims.LAYER), column, np.arange(n_layers))
    out["layer_name"] = ((dims.MODEL, dims.LAYER), names)
    return out


def _relayer(scores: xr.Dataset, take: np.ndarray, layers) -> xr.Dataset:
    """Every variable with a ``layer`` dim re-gathered: slot ``(m, j)`` of the result holds the
    model's layer ``take[m, j]`` (``-1``: none, filled with NaN, ``""`` or False); the
    ``layer`` coordinate becomes ``layers``."""
    models = np.arange(take.shape[0])[:, None]
    missing = take < 0
    out = scores.drop_dims(dims.LAYER)
    for name, var in scores.data_vars.items():
        if dims.LAYER not in var.dims:
            continue
        order = (dims.MODEL, dims.LAYER) + tuple(d for d in var.dims if d not in (dims.MODEL, dims.LAYER))
        values = var.transpose(*order).values[models, take.clip(0)]
        fill = np.nan if values.dtype.kind in "fc" else (False if values.dtype.kind == "b" else "")
        if values.dtype.kind in "iu":
            values = values.astype(float)
        values[missing] = fill
        out[name] = xr.DataArray(values, dims=order, attrs=var.attrs).transpose(*var.dims)
    return out.assign_coords({dims.LAYER: layers})


def check_rdm(rdm, name: str) -> np.ndarray:
    """A square RDM of at least 2 stimuli (a figure or a file can hold fewer than a score needs)."""
    from workbench.metrics.rsa import check_rdm as check_square_rdm

    return check_square_rdm(rdm, name, min_stimuli=2)


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
