"""Full activations in memory, for interactive exploration and tests of small stimulus sets."""

from __future__ import annotations

import numpy as np
import xarray as xr

from workbench.activations.extractor import ByLayer, feature_shapes, forward_batches, resolve_settings
from workbench.activations.packaging import package_layer
from workbench.activations.stimuli import check_stimuli, stimulus_ids


def extract(model, stimuli, layers=None, *, batch_size: int = 32, time_steps: int | None = None,
            time_reduce: str | None = "mean", device="cpu") -> dict[str, xr.DataArray]:
    """Extract full activations of ``layers`` for every stimulus.

    Holds every layer's stimulus x feature matrix in memory: for large stimulus sets use
    :func:`workbench.activations.extract_stats`, which streams.

    Parameters
    ----------
    model : ModelWrapper
        From :func:`workbench.models.create`.
    stimuli : sequence of PIL images or uint8 arrays
        (H, W) grayscale, (H, W, 3) RGB; ``stimuli.ids`` names them when present.
    layers : list of str, optional
        Analysis layers; default: all of ``model.layers``. Checked before any forward pass.
    batch_size : int, default: 32
    time_steps : int, optional
        T for spiking networks (default: the model's, 4); must be None or 1 otherwise.
    time_reduce : {"mean", None}, default: "mean"
        ``"mean"`` averages each layer's output over the T steps (the study's protocol);
        ``None`` keeps a ``time_step`` dimension.
    device : str or torch.device, default: "cpu"
        ``"cuda"`` runs on the GPU when present; same code path.

    Returns
    -------
    dict of str to DataArray
        Per layer, float32 (stimulus, neuroid) or (stimulus, time_step, neuroid); see
        :func:`workbench.activations.packaging.package_layer` for the coordinates.
    """
    settings = resolve_settings(model, layers, batch_size, time_steps, time_reduce, device)
    n = check_stimuli(stimuli)
    ids = stimulus_ids(stimuli)
    arrays: dict[str, np.ndarray] = {}
    shapes: dict[str, tuple] = {}
    for start, outputs in forward_batches(model, stimuli, settings):
        if not arrays:
            shapes = feature_shapes(outputs, settings)
            for layer, out in outputs.items():
                lead = out.shape[1:2] if settings.time_reduce is None else ()
                arrays[layer] = np.empty((n, *lead, int(np.prod(shapes[layer]))), np.float32)
        for layer, out in outputs.items():
            arrays[layer][start:start + out.shape[0]] = out.reshape(arrays[layer][0:out.shape[0]].shape)
    return ByLayer({
        layer: package_layer(arrays[layer], layer=layer, model=model.name, stimulus_ids=ids,
                             feature_shape=shapes[layer],
                             channels_last=layer in model.channels_last, weights=model.weights)
        for layer in settings.layers
    })
