"""Datasets in Brain-Score's formats, and the user-provided Macaque-Face data.

``brainscore_netcdf`` (MajajHong2015, the study's Macaque-Synthetic set): a Brain-Score
(BrainIO) neural assembly saved as netCDF, a DataArray with dims ``presentation`` x
``neuroid`` [x ``time_bin``]; each presentation carries ``image_id`` (or ``stimulus_id``) and
``repetition``, each neuroid ``neuroid_id`` and ``region`` (``"V4"``/``"IT"``), each time
bin ``time_bin_start``/``time_bin_end`` (ms). Its stimulus set is a CSV with ``image_id`` (or
``stimulus_id``) and ``filename`` columns plus the images (zip or folder). Stimuli follow the
CSV order; presentations of the same image become its repetitions, in file order.

``chang2021_face_am`` (Macaque-Face, Chang et al. 2021): the data are shared on request, so
the user provides them; the loader reads them like ``local`` (a responses array with
repeats and a folder or zip of images) with defaults for this dataset: region ``"AM"`` and
neuroids kept where their split-half reliability (noise ceiling) is at least 0.1.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from workbench.data import reliability as rel
from workbench.data.loaders._io import check_options
from workbench.data.loaders.local import (BUILD_OPTIONS, build_dataset, images_from, load_local,
                                          resolve)
from workbench.data.registry import register_loader
from workbench.dims import NEUROID, NEUROID_ID, REGION, REPETITION, STIMULUS, STIMULUS_ID
from workbench.errors import DataError

PRESENTATION = "presentation"


def _pick_column(names, candidates, where: str, what: str) -> str:
    for name in candidates:
        if name in names:
            return name
    raise DataError(f"{where}: no {what} column/coordinate; expected one of {list(candidates)}, "
                    f"found {sorted(map(str, names))}")


def _select_time_bin(assembly: xr.DataArray, time_bin, where: str) -> xr.DataArray:
    if "time_bin" not in assembly.dims:
        return assembly
    if time_bin is None:
        if assembly.sizes["time_bin"] != 1:
            raise DataError(f"{where}: {assembly.sizes['time_bin']} time bins; choose one with "
                            "option time_bin: [start_ms, end_ms]")
        return assembly.isel(time_bin=0)
    start, end = (float(t) for t in time_bin)
    match = ((assembly["time_bin_start"].values == start)
             & (assembly["time_bin_end"].values == end))
    if not match.any():
        bins = list(zip(assembly["time_bin_start"].values.tolist(),
                        assembly["time_bin_end"].values.tolist()))
        raise DataError(f"{where}: no time bin [{start}, {end}]; the file has {bins}")
    return assembly.isel(time_bin=int(np.flatnonzero(match)[0]))


def read_brainscore_assembly(path, stimulus_ids: list[str], *, time_bin=None) -> xr.DataArray:
    """A Brain-Score netCDF assembly as ``(stimulus, neuroid, repetition)``, NaN-padded.

    ``stimulus_ids`` gives the stimulus order (the stimulus CSV's); every presentation's
    image must be among them and every stimulus must have been presented.
    """
    where = str(path)
    try:
        assembly = xr.load_dataarray(path)
    except Exception as exc:
        raise DataError(f"{where}: not a readable netCDF DataArray ({exc})") from exc
    for dim in (PRESENTATION, NEUROID):
        if dim not in assembly.dims:
            raise DataError(f"{where}: dims {assembly.dims} lack {dim!r}; expected presentation x "
                            "neuroid [x time_bin]")
    assembly = _select_time_bin(assembly, time_bin, where).transpose(PRESENTATION, NEUROID)
    values = assembly.values.astype(np.float64)
    if not np.isfinite(values).all():
        raise DataError(f"{where}: {int((~np.isfinite(values)).sum())} NaN/inf response value(s)")
    id_coord = _pick_column(assembly.coords, ("image_id", STIMULUS_ID), where, "image id")
    presented = pd.Series(assembly[id_coord].values.astype(str))
    index = pd.Index(stimulus_ids)
    position = index.get_indexer(presented)
    if (position < 0).any():
        unknown = presented[position < 0].unique()[:3].tolist()
        raise DataError(f"{where}: {int((position < 0).sum())} presentation(s) of images not in "
                        f"the stimulus set, e.g. {unknown}")
    shown = np.bincount(position, minlength=len(index))
    if (shown == 0).any():
        absent = index[shown == 0][:3].tolist()
        raise DataError(f"{where}: {int((shown == 0).sum())} stimuli were never presented, e.g. "
                        f"{absent}; image count and response count must match")
    occurrence = presented.groupby(presented).cumcount().to_numpy()
    repeats = np.full((len(index), values.shape[1], shown.max()), np.nan)
    repeats[position, :, occurrence] = values
    coords = {STIMULUS_ID: (STIMULUS, list(stimulus_ids))}
    for name in (NEUROID_ID, REGION):
        if name not in assembly.coords:
            raise DataError(f"{where}: neuroid coordinate {name!r} is missing")
        coords[name] = (NEUROID, assembly[name].values.astype(str))
    return xr.DataArray(repeats, dims=(STIMULUS, NEUROID, REPETITION), coords=coords)


@register_loader("brainscore_netcdf")
def load_brainscore_netcdf(manifest, files, *, assembly: str, stimulus_csv: str, images: str,
                           time_bin=None, regions=None, species: str | None = None,
                           **options):
    """Load a Brain-Score assembly with its stimulus set (see the module docstring).

    Options: ``assembly``, ``stimulus_csv``, ``images`` (manifest paths), ``time_bin``
    ([start_ms, end_ms], needed when the file has several), ``regions`` (default the
    manifest's), plus the reliability and count options of the ``local`` loader.
    """
    where = f"manifest {manifest.source}"
    check_options(options, BUILD_OPTIONS, where)
    csv_path = resolve(manifest, files, stimulus_csv)
    try:
        table = pd.read_csv(csv_path)
    except Exception as exc:
        raise DataError(f"{csv_path}: not a readable CSV ({exc})") from exc
    id_col = _pick_column(table.columns, ("image_id", STIMULUS_ID), str(csv_path), "image id")
    file_col = _pick_column(table.columns, ("filename", "image_file_name"), str(csv_path),
                            "file name")
    ids = table[id_col].astype(str).tolist()
    stimuli = images_from(resolve(manifest, files, images, folder_ok=True),
                          table[file_col].astype(str).tolist(), ids, where=str(csv_path))
    nc_path = resolve(manifest, files, assembly)
    repeats = read_brainscore_assembly(nc_path, ids, time_bin=time_bin)
    wanted = list(regions or manifest.regions)
    found = sorted(set(repeats[REGION].values.tolist()))
    missing = [r for r in wanted if r not in found]
    if missing:
        raise DataError(f"{nc_path}: no neuroids in region(s) {missing}; the file has {found}")
    repeats = repeats.isel({NEUROID: np.flatnonzero(np.isin(repeats[REGION].values, wanted))})
    return build_dataset(manifest, repeats, stimuli, where=str(nc_path), files=files,
                         species=species or manifest.species, default_region=wanted[0], **options)


CHANG_DEFAULTS = {"region": "AM", "reliability_threshold": 0.1,
                  "reliability_method": rel.DEFAULT_METHOD}


@register_loader("chang2021_face_am")
def load_chang2021(manifest, files, **options):
    """Load the Macaque-Face AM data (options as ``local``; defaults in ``CHANG_DEFAULTS``)."""
    return load_local(manifest, files, **{**CHANG_DEFAULTS, **options})
