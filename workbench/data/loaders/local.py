"""Your own recordings, described by a manifest alone: responses as .npy, .mat, .nc or .nwb
plus images (a folder or a zip), loaded without writing code.

Manifest options (``loader: local``; see ``data_manifests/README.md`` for a worked example):

``responses`` (required)
    Manifest path of the responses file. ``.npy``: a numeric array. ``.mat``: the variable
    named by ``variable``. ``.nwb`` (HDF5): the dataset at the HDF5 path ``nwb_dataset``
    (e.g. ``/processing/ophys/responses/data``). ``.nc``: an xarray DataArray whose dims are
    named ``stimulus``, ``neuroid`` and optionally ``repetition``, with optional coordinates
    ``stimulus_id``, ``neuroid_id`` and ``region`` (per neuroid, one region per value).
``dims`` (default ``[stimulus, neuroid]``)
    The axis order of ``.npy``/``.mat``/``.nwb`` arrays, e.g. ``[neuroid, stimulus, repetition]``.
``images`` (required)
    A zip file (manifest path) or a folder (relative to the data root) of image files; or
    ``null`` for a recording without images (e.g. when you have only precomputed model
    features): the dataset then has ids but no images (``stimuli.has_images`` is False),
    enough to score precomputed features (``workbench.metrics.compare``) but not to extract a
    network's activations. Stimulus ids then come from the ``.nc``'s ``stimulus_id``, else
    from the stems of ``image_list``, else they are ``stim0000``, ``stim0001``, ...
``image_list`` (optional)
    A text file (manifest path) naming one image file per line, in response order. Without
    it, images are taken in sorted file-name order, and their stems are the stimulus ids;
    with an ``.nc`` that has ``stimulus_id``, each id must name an image ``<id>.<ext>``.
``region``, ``species``
    Region name (for arrays without a ``region`` coordinate; default the manifest's first
    region) and species (default the manifest's ``species``).
``reliability_threshold``, ``reliability_method``, ``reliability_splits``, ``reliability_seed``
    Keep neuroids whose split-half reliability (over the repeats) reaches the threshold
    (default: no filtering).
``reliability_file`` (optional)
    Manifest path of a ``.npy`` array with one reliability (or noise-ceiling) value per
    neuroid of the responses file, in its neuroid order (e.g. the study's
    ``noise_ceiling.npy``); it replaces the split-half estimate, and ``reliability_threshold``
    is applied to it. Pre-averaged responses (no ``repetition`` axis) can be filtered only
    this way: a threshold without repeats and without this file is an error.
``expected_stimuli``, ``expected_neuroids``
    Counts to check the files against (optional).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import xarray as xr

from workbench.data import reliability as rel
from workbench.data.assemblies import (check_finite_responses, check_repeat_padding,
                                       drop_constant_neuroids, make_assembly)
from workbench.data.dataset import NeuralDataset, build_averaged_region, build_region
from workbench.data.fetch import cache_dir
from workbench.data.loaders._io import check_options, read_mat, read_npy
from workbench.data.registry import register_loader
from workbench.data.stimuli import StimulusSet
from workbench.dims import NEUROID, NEUROID_ID, REGION, REPETITION, STIMULUS, STIMULUS_ID
from workbench.errors import DataError, ValidationError

BUILD_OPTIONS = ("reliability_threshold", "reliability_method", "reliability_splits",
                 "reliability_seed", "reliability_file", "expected_stimuli", "expected_neuroids")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif")
_ALLOWED_DIMS = (STIMULUS, NEUROID, REPETITION)


def _check_dims(dims, ndim: int, path: Path) -> list[str]:
    dims = [str(d) for d in dims]
    if sorted(dims) not in (sorted(_ALLOWED_DIMS[:2]), sorted(_ALLOWED_DIMS)):
        raise DataError(f"{path}: option 'dims' must name {STIMULUS!r}, {NEUROID!r} and optionally "
                        f"{REPETITION!r} once each, found {dims}")
    if len(dims) != ndim:
        raise DataError(f"{path}: the array has {ndim} dimensions but option 'dims' names "
                        f"{len(dims)}: {dims}")
    return dims


def _read_nwb(path: Path, dataset: str | None) -> np.ndarray:
    import h5py

    if not dataset:
        raise DataError(f"{path}: an .nwb file needs option 'nwb_dataset' (the HDF5 path of the "
                        "response array, e.g. /processing/ophys/responses/data)")
    try:
        with h5py.File(path, "r") as handle:
            if dataset not in handle:
                raise DataError(f"{path}: no HDF5 dataset {dataset!r} in the NWB file")
            return np.asarray(handle[dataset][()], dtype=np.float64)
    except OSError as exc:
        raise DataError(f"{path}: not a readable NWB/HDF5 file ({exc})") from exc


def read_responses(path: Path, *, dims, variable: str | None = None,
                   nwb_dataset: str | None = None) -> xr.DataArray:
    """Read a responses file into a DataArray with dims ``(stimulus, neuroid[, repetition])``.

    Coordinates (``stimulus_id``, ``neuroid_id``, ``region``) are kept when an ``.nc`` file
    has them.
    """
    suffix = path.suffix.lower()
    if suffix == ".nc":
        try:
            array = xr.load_dataarray(path)
        except Exception as exc:
            raise DataError(f"{path}: not a readable netCDF DataArray ({exc})") from exc
        _check_dims(array.dims, array.ndim, path)
        order = [d for d in _ALLOWED_DIMS if d in array.dims]
        return array.transpose(*order).astype(np.float64)
    if suffix == ".npy":
        values = read_npy(path, ndim=None)
    elif suffix == ".mat":
        if not variable:
            raise DataError(f"{path}: a .mat file needs option 'variable' (the array's name)")
        values = np.asarray(read_mat(path, (variable,))[variable], dtype=np.float64)
    elif suffix == ".nwb":
        values = _read_nwb(path, nwb_dataset)
    else:
        raise DataError(f"{path}: unsupported responses format {suffix!r}; expected .npy, .mat, "
                        ".nc or .nwb")
    dims = _check_dims(dims, values.ndim, path)
    order = [d for d in _ALLOWED_DIMS if d in dims]
    return xr.DataArray(values, dims=dims).transpose(*order)


def images_from(source: Path, names: list[str] | None, ids_hint: list[str] | None,
                where: str) -> StimulusSet:
    """Images from a zip or folder: listed ``names``, ids matched by stem, or sorted names."""
    if source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            available = [n for n in archive.namelist() if n.lower().endswith(IMAGE_SUFFIXES)]
    elif source.is_dir():
        available = sorted(str(p.relative_to(source)) for p in source.rglob("*")
                           if p.suffix.lower() in IMAGE_SUFFIXES)
    else:
        raise DataError(f"{where}: images {source} is neither a folder nor a readable zip archive")
    if names is None and ids_hint is not None:
        by_stem = {Path(n).stem: n for n in available}
        missing = [i for i in ids_hint if i not in by_stem]
        if missing:
            raise DataError(f"{source}: no image for {len(missing)} stimulus id(s), e.g. "
                            f"{missing[:3]}; expected files named <stimulus_id>.<ext>")
        names = [by_stem[i] for i in ids_hint]
    elif names is None:
        names = sorted(available)
    ids = ids_hint if ids_hint is not None else [Path(n).stem for n in names]
    if source.is_dir():
        return StimulusSet.from_folder(source, names, ids)
    return StimulusSet.from_zip(source, names, ids)


def read_reliability_file(manifest, files: dict, key: str, n_neuroids: int) -> np.ndarray:
    """The per-neuroid values of a manifest's ``reliability_file`` (``.npy``), shape ``(neuroid,)``.

    Raises
    ------
    DataError
        The file is not among the manifest's files, is not a 1-D numeric ``.npy`` array, or
        does not hold one value per neuroid of the responses; the message names the manifest,
        the field and the file.
    """
    where = f"manifest {manifest.source}, field 'options.reliability_file'"
    path = resolve(manifest, files, key)
    try:
        values = read_npy(path, ndim=1)
    except DataError as exc:
        raise DataError(f"{where}: {exc}") from exc
    if values.size != n_neuroids:
        raise DataError(f"{where}: {path} holds {values.size} values; expected one per neuroid "
                        f"of the responses ({n_neuroids}), in their order")
    return values


def _unusable_threshold(manifest, threshold, where: str) -> ValidationError:
    return ValidationError(
        f"manifest {manifest.source}: field 'options.reliability_threshold' is {threshold} but "
        f"it cannot be applied: the responses ({where}) are pre-averaged (no repetition axis) "
        "and the manifest gives no 'options.reliability_file' (a .npy of one reliability or "
        "noise-ceiling value per neuroid); add that file, or set reliability_threshold: null "
        "to keep every neuroid")


def build_dataset(manifest, responses: xr.DataArray, stimuli: StimulusSet, *, where: str,
                  species: str, default_region: str, files: dict | None = None,
                  reliability_threshold=None, reliability_file: str | None = None,
                  reliability_method=rel.DEFAULT_METHOD, reliability_splits=rel.DEFAULT_SPLITS,
                  reliability_seed=rel.DEFAULT_SEED, expected_stimuli=None,
                  expected_neuroids=None) -> NeuralDataset:
    """Check labelled responses against the stimuli and build one region per region name.

    ``files`` (manifest path to local file) is needed when ``reliability_file`` is given;
    the other options are the ``local`` loader's (module docstring).
    """
    n_stim, n_neur = responses.sizes[STIMULUS], responses.sizes[NEUROID]
    if n_stim != len(stimuli):
        raise DataError(f"{where}: responses to {n_stim} stimuli but {len(stimuli)} images; "
                        "they must match one to one")
    if expected_stimuli is not None and n_stim != expected_stimuli:
        raise DataError(f"{where}: {n_stim} stimuli, expected {expected_stimuli}")
    if expected_neuroids is not None and n_neur != expected_neuroids:
        raise DataError(f"{where}: {n_neur} neuroids, expected {expected_neuroids}")
    has_repeats = REPETITION in responses.dims
    if reliability_threshold is not None and not has_repeats and reliability_file is None:
        raise _unusable_threshold(manifest, reliability_threshold, where)
    given = (None if reliability_file is None
             else read_reliability_file(manifest, files or {}, reliability_file, n_neur))
    neuroid_ids = (responses[NEUROID_ID].values if NEUROID_ID in responses.coords
                   else [f"n{i:04d}" for i in range(n_neur)])
    regions = (responses[REGION].values.astype(str) if REGION in responses.coords
               else np.array([default_region] * n_neur))
    values = responses.values
    out = []
    for region in dict.fromkeys(regions):
        pick = np.flatnonzero(regions == region)
        common = dict(stimulus_ids=stimuli.ids, neuroid_ids=[str(neuroid_ids[i]) for i in pick],
                      region=str(region), species=species, dataset=manifest.name)
        if has_repeats:
            check_repeat_padding(values[:, pick, :], where, same_across_neuroids=False)
            assembly = make_assembly(values[:, pick, :], where=where, **common)
        else:
            check_finite_responses(values[:, pick], where)
            assembly = make_assembly(values[:, pick], where=where, **common)
        if given is not None:  # travels with its neuroid when constant ones are dropped
            assembly = assembly.assign_coords(reliability=(NEUROID, given[pick]))
        assembly = drop_constant_neuroids(assembly, f"{where} (region {region})")
        reliability = None if given is None else assembly["reliability"].values
        if has_repeats:
            data = build_region(assembly, species=species, threshold=reliability_threshold,
                                method=reliability_method, n_splits=reliability_splits,
                                seed=reliability_seed, reliability=reliability)
        else:
            data = build_averaged_region(assembly, species=species,
                                         threshold=reliability_threshold, reliability=reliability)
        data.n_recorded = len(pick)
        out.append(data)
    return NeuralDataset(manifest, stimuli, out)


def resolve(manifest, files: dict, key: str, *, folder_ok: bool = False) -> Path:
    """A manifest path given in an option: a fetched file, or a folder under the data root."""
    if key in files:
        return Path(files[key])
    if folder_ok:
        folder = (manifest.root or cache_dir()) / key
        if folder.is_dir():
            return folder
    folder_hint = " nor a folder under the data root" if folder_ok else ""
    raise DataError(f"manifest {manifest.source}: option path {key!r} is not among the "
                    f"manifest's files {sorted(files)}{folder_hint}")


_MISSING = object()


def _required(manifest, name: str, value, expected: str):
    if value is _MISSING:
        raise DataError(f"manifest {manifest.source}: field 'options.{name}' is missing (loader "
                        f"'local'); expected {expected}")
    return value


@register_loader("local")
def load_local(manifest, files, *, responses: str = _MISSING, images: str | None = _MISSING,
               dims=(STIMULUS, NEUROID), image_list: str | None = None,
               variable: str | None = None, nwb_dataset: str | None = None,
               region: str | None = None, species: str | None = None,
               **options) -> NeuralDataset:
    """Load a user-described dataset (options in the module docstring)."""
    _required(manifest, "responses", responses, "the manifest path of the responses file "
              "(.npy, .mat, .nc or .nwb)")
    _required(manifest, "images", images, "a zip file or folder of the stimulus images, or "
              "`images: null` for a recording without images (precomputed features can then be "
              "scored, but no network can be run on its stimuli)")
    check_options(options, BUILD_OPTIONS, f"manifest {manifest.source}")
    path = resolve(manifest, files, responses)
    try:
        array = read_responses(path, dims=dims, variable=variable, nwb_dataset=nwb_dataset)
    except DataError as exc:
        raise DataError(f"manifest {manifest.source}, option 'responses': {exc}") from exc
    names = None
    if image_list is not None:
        names = [ln.strip() for ln in resolve(manifest, files, image_list).read_text().splitlines()
                 if ln.strip()]
    ids_hint = [str(s) for s in array[STIMULUS_ID].values] if STIMULUS_ID in array.coords else None
    if images is None:
        n_stimuli = array.sizes[STIMULUS]
        ids = ids_hint or ([Path(n).stem for n in names] if names is not None
                           else [f"stim{i:04d}" for i in range(n_stimuli)])
        stimuli = StimulusSet.without_images(ids, where=f"dataset {manifest.name}")
    else:
        stimuli = images_from(resolve(manifest, files, images, folder_ok=True), names, ids_hint,
                              where=str(path))
    return build_dataset(manifest, array, stimuli, where=str(path), files=files,
                         species=species or manifest.species,
                         default_region=region or manifest.regions[0], **options)
