"""Write full activations to chunked netCDF files (h5netcdf) during the forward pass.

One file per layer, ``<folder>/<model>__<layer>.nc``, holding the DataArray ``activations``
with the same dimensions and coordinates as :func:`workbench.activations.extract` returns;
read it back with :func:`load_activations`. Each file is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import h5netcdf
import h5py
import numpy as np
import xarray as xr

from workbench import dims
from workbench.activations.packaging import neuroid_coords
from workbench.storage import atomic_path


def activation_path(folder: str | os.PathLike, model: str, layer: str) -> Path:
    """Path of one layer's file inside ``folder``."""
    return Path(folder) / f"{model}__{layer}.nc"


def load_activations(folder: str | os.PathLike, model: str, layer: str) -> xr.DataArray:
    """Open a saved layer lazily (values are read on access)."""
    return xr.open_dataarray(activation_path(folder, model, layer), engine="h5netcdf")


class LayerWriter:
    """Append one layer's batches to a chunked netCDF file.

    Parameters
    ----------
    path : path
        Final file path (written atomically).
    layer, model : str
    stimulus_ids : sequence of str
    feature_shape : tuple of int
        Per-stimulus, per-step output shape (flattened along ``neuroid``).
    time_steps : int or None
        Length of the ``time_step`` dimension, or None when averaged over time.
    channels_last : bool
    """

    def __init__(self, path, *, layer: str, model: str, stimulus_ids, feature_shape: tuple,
                 time_steps: int | None, channels_last: bool = False, weights: str = ""):
        self._stack = contextlib.ExitStack()
        tmp = self._stack.enter_context(atomic_path(path))
        self._file = h5netcdf.File(tmp, "w")
        n, d = len(stimulus_ids), int(np.prod(feature_shape)) if feature_shape else 1
        sizes = {dims.STIMULUS: n, dims.NEUROID: d}
        names = (dims.STIMULUS, dims.NEUROID)
        chunk = (min(n, 64), min(d, 1 << 16))
        if time_steps is not None:
            sizes[dims.TIME_STEP] = time_steps
            names = (dims.STIMULUS, dims.TIME_STEP, dims.NEUROID)
            chunk = (chunk[0], 1, chunk[1])
        self._file.dimensions = sizes
        strings = h5py.string_dtype()
        ids = self._file.create_variable(dims.STIMULUS_ID, (dims.STIMULUS,), dtype=strings)
        ids[:] = np.asarray(stimulus_ids, dtype=object)
        coord_names = [dims.STIMULUS_ID, dims.LAYER, dims.MODEL]
        for name, (_, values) in neuroid_coords(layer, feature_shape, channels_last).items():
            if values.dtype.kind == "U":
                var = self._file.create_variable(name, (dims.NEUROID,), dtype=strings)
                var[:] = values.astype(object)
            else:
                self._file.create_variable(name, (dims.NEUROID,), data=values)
            coord_names.append(name)
        if time_steps is not None:
            self._file.create_variable(dims.TIME_STEP, (dims.TIME_STEP,), data=np.arange(time_steps))
        for name, value in ((dims.LAYER, layer), (dims.MODEL, model)):
            self._file.create_variable(name, (), dtype=strings)[()] = value
        self._values = self._file.create_variable("activations", names, dtype="f4", chunks=chunk)
        self._values.attrs["coordinates"] = " ".join(coord_names)
        self._values.attrs["weights"] = weights
        self._rows = 0
        self._n = n

    def append(self, batch: np.ndarray) -> None:
        """Write the next rows: (b, n_features) or (b, time_steps, n_features)."""
        self._values[self._rows:self._rows + batch.shape[0]] = batch
        self._rows += batch.shape[0]

    def close(self, success: bool = True) -> None:
        """Finish the file (renamed into place only on success and when every row was written)."""
        self._file.close()
        if success and self._rows == self._n:
            self._stack.close()  # atomic_path renames the file into place
        else:  # atomic_path removes the temporary file
            self._stack.__exit__(RuntimeError, RuntimeError("incomplete activations file"), None)
