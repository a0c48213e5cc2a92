"""Building and checking neural assemblies (xarray DataArrays with flat coordinates).

- responses: ``(stimulus, neuroid)``, repeat-averaged;
- repeats: ``(stimulus, neuroid, repetition)``, NaN-padded where a stimulus was shown fewer
  times than the longest;
- RDMs: ``(stimulus, stimulus_2)``, correlation distance.

Every assembly has ``stimulus_id`` on the stimulus dimension and, on the neuroid dimension,
``neuroid_id``, ``region``, ``species`` and ``dataset``; RDMs carry the last three as scalar
coordinates.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import xarray as xr

from workbench.dims import (DATASET, NEUROID, NEUROID_ID, REGION, REPETITION, SPECIES, STIMULUS,
                            STIMULUS_ID)
from workbench.errors import DataError

STIMULUS_2 = "stimulus_2"
STIMULUS_ID_2 = "stimulus_id_2"


def make_assembly(values: np.ndarray, *, stimulus_ids: Sequence[str], neuroid_ids: Sequence[str],
                  region: str, species: str, dataset: str, where: str) -> xr.DataArray:
    """Label a ``(stimulus, neuroid)`` or ``(stimulus, neuroid, repetition)`` array.

    ``where`` names the source (file) for error messages.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim not in (2, 3):
        raise DataError(
            f"{where}: expected stimulus x neuroid [x repetition], found shape {values.shape}"
        )
    n_stim, n_neur = values.shape[:2]
    if len(stimulus_ids) != n_stim:
        raise DataError(
            f"{where}: {n_stim} stimuli in the responses but {len(stimulus_ids)} images; "
            "responses and images must match one to one"
        )
    if len(neuroid_ids) != n_neur:
        raise DataError(f"{where}: {n_neur} neuroids but {len(neuroid_ids)} neuroid ids")
    if len(set(map(str, neuroid_ids))) != n_neur:
        raise DataError(f"{where}: neuroid ids are not unique")
    dims = (STIMULUS, NEUROID) if values.ndim == 2 else (STIMULUS, NEUROID, REPETITION)
    coords = {
        STIMULUS_ID: (STIMULUS, [str(s) for s in stimulus_ids]),
        NEUROID_ID: (NEUROID, [str(n) for n in neuroid_ids]),
        REGION: (NEUROID, [region] * n_neur),
        SPECIES: (NEUROID, [species] * n_neur),
        DATASET: (NEUROID, [dataset] * n_neur),
    }
    if values.ndim == 3:
        coords[REPETITION] = (REPETITION, np.arange(values.shape[2]))
    return xr.DataArray(values, dims=dims, coords=coords)


def make_rdm(matrix: np.ndarray, *, stimulus_ids: Sequence[str], region: str, species: str,
             dataset: str, where: str) -> xr.DataArray:
    """Label a square, symmetric, zero-diagonal dissimilarity matrix."""
    matrix = np.asarray(matrix, dtype=np.float64)
    n = len(stimulus_ids)
    if matrix.shape != (n, n):
        raise DataError(
            f"{where}: RDM of shape {matrix.shape}, expected ({n}, {n}) for {n} stimuli"
        )
    if not np.isfinite(matrix).all():
        raise DataError(f"{where}: RDM contains {int((~np.isfinite(matrix)).sum())} NaN/inf values")
    if not np.allclose(matrix, matrix.T, atol=1e-6) or np.abs(np.diag(matrix)).max() > 1e-6:
        raise DataError(f"{where}: RDM must be symmetric with a zero diagonal")
    ids = [str(s) for s in stimulus_ids]
    return xr.DataArray(
        matrix, dims=(STIMULUS, STIMULUS_2),
        coords={STIMULUS_ID: (STIMULUS, ids), STIMULUS_ID_2: (STIMULUS_2, ids),
                REGION: region, SPECIES: species, DATASET: dataset},
    )


def check_repeat_padding(values: np.ndarray, where: str, *,
                         same_across_neuroids: bool = True) -> None:
    """Check the NaN padding of a ``(stimulus, neuroid, repetition)`` array.

    The rule: along the repetition axis, NaN may only pad the end (no NaN followed by a
    number); every stimulus has at least one value for every neuroid; and, when
    ``same_across_neuroids`` (simultaneously recorded neuroids), each stimulus has the same
    number of repeats for every neuroid. Infinite values are never allowed.

    Raises
    ------
    DataError
        Naming ``where``, the rule broken, how many entries break it and the first one.
    """
    if np.isinf(values).any():
        first = tuple(int(i) for i in np.argwhere(np.isinf(values))[0])
        raise DataError(
            f"{where}: contains inf values (first at stimulus, neuroid, repeat = {first})"
        )
    valid = ~np.isnan(values)
    after_gap = valid[:, :, 1:] & ~valid[:, :, :-1]
    if after_gap.any():
        bad = np.argwhere(after_gap)
        s, n, r = (int(i) for i in bad[0])
        raise DataError(
            f"{where}: NaN outside the repeat padding: {len(bad)} value(s) follow a NaN along "
            f"the repetition axis (first: stimulus {s}, neuroid {n}, repeat {r + 1}); NaN may "
            "only pad the end of each stimulus's repeats"
        )
    counts = valid.sum(axis=2)
    if (counts == 0).any():
        s, n = (int(i) for i in np.argwhere(counts == 0)[0])
        raise DataError(
            f"{where}: {int((counts == 0).sum())} stimulus/neuroid pair(s) have no repeat at all "
            f"(first: stimulus {s}, neuroid {n})"
        )
    if same_across_neuroids:
        uneven = counts.min(axis=1) != counts.max(axis=1)
        if uneven.any():
            s = int(np.flatnonzero(uneven)[0])
            raise DataError(
                f"{where}: NaN outside the repeat padding: {int(uneven.sum())} stimuli have a "
                f"different number of repeats across neuroids (first: stimulus {s}, counts "
                f"{counts[s].min()}..{counts[s].max()}); simultaneously recorded neuroids must "
                "share the padding"
            )


def check_finite_responses(values: np.ndarray, where: str) -> None:
    """Raise :class:`DataError` if repeat-averaged responses hold NaN or inf."""
    bad = ~np.isfinite(values)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise DataError(f"{where}: {int(bad.sum())} NaN/inf value(s) in the responses "
                        f"(first at index {first}, shape {values.shape})")


def drop_constant_neuroids(assembly: xr.DataArray, where: str) -> xr.DataArray:
    """Drop neuroids whose response never varies across stimuli (and repeats), with a warning."""
    axes = tuple(i for i, d in enumerate(assembly.dims) if d != NEUROID)
    values = assembly.values
    spread = np.nanmax(values, axis=axes) - np.nanmin(values, axis=axes)
    constant = spread == 0
    if constant.any():
        warnings.warn(f"{where}: dropped {int(constant.sum())} of {constant.size} neuroids with "
                      "no variance across stimuli", UserWarning, stacklevel=2)
        assembly = assembly.isel({NEUROID: np.flatnonzero(~constant)})
    if assembly.sizes[NEUROID] == 0:
        raise DataError(f"{where}: no neuroid varies across stimuli")
    return assembly


def average_repeats(repeats: xr.DataArray) -> xr.DataArray:
    """Mean over the repetition axis, ignoring the NaN padding."""
    return repeats.mean(REPETITION, skipna=True)
