"""Full activations as labelled xarray DataArrays (flat coordinates, no MultiIndex)."""

from __future__ import annotations

import numpy as np
import xarray as xr

from workbench import dims


def neuroid_coords(layer: str, shape: tuple[int, ...], channels_last: bool = False) -> dict:
    """Coordinates along ``neuroid`` of a flattened output of per-stimulus ``shape``.

    (C, H, W) maps give ``channel``, ``spatial_y``, ``spatial_x`` ((H, W, C) when
    ``channels_last``); (tokens, C) gives ``token`` and ``channel``; (C,) gives ``channel``.
    ``neuroid_id`` is ``"<layer>/<flat index>"``, unique across layers.
    """
    size = int(np.prod(shape)) if shape else 1
    coords = {dims.NEUROID_ID: (dims.NEUROID, np.char.add(f"{layer}/", np.arange(size).astype(str)))}
    grid = np.indices(shape).reshape(len(shape), -1) if shape else None
    if len(shape) == 3:
        names = ((dims.SPATIAL_Y, dims.SPATIAL_X, dims.CHANNEL) if channels_last
                 else (dims.CHANNEL, dims.SPATIAL_Y, dims.SPATIAL_X))
    elif len(shape) == 2:
        names = (dims.TOKEN, dims.CHANNEL)
    elif len(shape) == 1:
        names = (dims.CHANNEL,)
    else:
        names = ()
    for axis, name in enumerate(names):
        coords[name] = (dims.NEUROID, grid[axis])
    return coords


def package_layer(values: np.ndarray, *, layer: str, model: str, stimulus_ids,
                  feature_shape: tuple[int, ...], channels_last: bool = False,
                  weights: str = "") -> xr.DataArray:
    """Wrap one layer's activations.

    Parameters
    ----------
    values : ndarray
        (n_stimuli, n_features) or (n_stimuli, time_steps, n_features).
    feature_shape : tuple of int
        The per-stimulus, per-step output shape that was flattened into ``n_features``.

    Returns
    -------
    DataArray
        dims (stimulus, neuroid) or (stimulus, time_step, neuroid), with coordinates
        ``stimulus_id``, ``neuroid_id``, the neuroid layout coordinates, ``time_step`` (when
        kept), and scalar ``layer`` and ``model``; ``attrs["weights"]`` describes the weights.
    """
    coords = {
        dims.STIMULUS_ID: (dims.STIMULUS, np.asarray(stimulus_ids, dtype=str)),
        dims.LAYER: layer,
        dims.MODEL: model,
        **neuroid_coords(layer, feature_shape, channels_last),
    }
    if values.ndim == 3:
        coords[dims.TIME_STEP] = (dims.TIME_STEP, np.arange(values.shape[1]))
        names = (dims.STIMULUS, dims.TIME_STEP, dims.NEUROID)
    else:
        names = (dims.STIMULUS, dims.NEUROID)
    return xr.DataArray(values, dims=names, coords=coords, name="activations",
                        attrs={"weights": weights})
