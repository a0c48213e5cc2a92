"""The scores Dataset: build, merge, validate, and read it as tables.

A sweep's result is one :class:`xarray.Dataset` with dims ``(model, layer, region, metric)``
(plus ``time_step`` on ``score_per_step`` only):

========================  ==================================  ===========================
variable                  dims                                meaning
========================  ==================================  ===========================
``score``                 (model, layer, region, metric)      similarity; NaN = not computed
``applicable``            (region, metric)                    bool; RDM-only regions: rsa only
``ceiling``               (region, metric)                    noise ceiling; NaN = none
``ceiling_low``           (region, metric)                    optional; its lower bound where
                                                              the data give one (per-subject
                                                              RDMs); NaN = unknown
``layer_name``            (model, layer)                      ``""`` past a model's last layer
``relative_depth``        (model, layer)                      ``i / (n_layers - 1)``; NaN past it
``error``                 (model)                             why cells that apply have no
                                                              score: the unit raised, a layer
                                                              or metric failed; ``""`` = none
``warning``               (model)                             optional; caveats of cells that
                                                              have a score (or are left NaN by
                                                              the protocol's choice): zero-
                                                              variance stimuli, intervals or
                                                              nulls not computed, per-step
                                                              gaps; ``""`` = none (files
                                                              before it: read as ``""``)
``cell_error``,           (model, layer, region, metric)      optional; the same per cell:
``cell_warning``                                              why that cell has no score, its
                                                              caveats; ``""`` = none (the
                                                              columns ``error``/``warning`` of
                                                              :func:`to_frame`)
``ci_low``, ``ci_high``   (model, layer, region, metric)      optional bootstrap interval
``score_per_step``        (model, layer, region, metric,      optional; SNNs per time step,
                          time_step)                          NaN for non-spiking models
``n_zero_variance``       (model, layer, region, metric)      optional; stimuli whose pattern
                                                              has zero variance (RSA only;
                                                              NaN = not checked)
``null_mean``,            (model, layer, region, metric)      optional; the chance level: mean
``null_p95``,                                                 and 95th percentile of the cell's
``p_value``                                                   stimulus-permutation null, and
                                                              ``(1 + #null >= score) / (1 + P)``
                                                              (:mod:`workbench.analysis.nulls`);
                                                              NaN where the cell has no score
``svcca_rank_x``,         (model, layer, region)              optional; canonical variables
``svcca_rank_y``                                              SVCCA used on the model / neural
                                                              side (below their columns when
                                                              a side was reduced to its
                                                              numerical rank); NaN = no SVCCA
========================  ==================================  ===========================

A cell is *unscored* when its (region, metric) applies and its layer exists but its score is
NaN. Cells that RSA cannot score because some stimuli have a zero-variance pattern follow the
protocol's ``zero_variance_stimuli`` policy: ``"unscored"`` leaves them NaN, ``"exclude"``
scores them on the other stimuli; ``n_zero_variance`` records how many stimuli that concerns
either way. :func:`unscored_cells` lists the unscored cells and those scored on fewer stimuli,
and :func:`unscored_summary` says it in a few lines for the terminal.

Coordinates: ``model`` (name) with ``family``, ``weights`` and ``time_steps`` (0 for
non-spiking models); ``layer`` (position 0..L_max-1); ``region`` (``"<dataset>/<region>"``)
with ``dataset``, ``species``, ``stimulus_set`` (fingerprint of the dataset's stimuli) and
``data_version`` (sha256 over the checksums of the dataset's files);
``metric``. Attributes: ``protocol`` and ``versions`` (JSON), ``seed``, ``created`` (ISO time).

Files: ``scores.nc`` (netCDF, h5netcdf engine; there ``layer`` is indexed by layer name, so
``.sel(layer="layer2.1")`` works on the file) and a tidy ``scores.csv`` (:func:`to_frame`),
written and read by :mod:`workbench.analysis.results`.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from workbench.dims import DATASET, LAYER, METRIC, MODEL, REGION, SPECIES, TIME_STEP
from workbench.errors import ValidationError
from workbench.provenance import package_versions

#: Variables every scores Dataset holds, with their dims.
REQUIRED_VARS = {
    "score": (MODEL, LAYER, REGION, METRIC),
    "applicable": (REGION, METRIC),
    "ceiling": (REGION, METRIC),
    "layer_name": (MODEL, LAYER),
    "relative_depth": (MODEL, LAYER),
    "error": (MODEL,),
}
#: Variables a scores Dataset may hold, with their dims.
OPTIONAL_VARS = {
    "ci_low": (MODEL, LAYER, REGION, METRIC),
    "ci_high": (MODEL, LAYER, REGION, METRIC),
    "score_per_step": (MODEL, LAYER, REGION, METRIC, TIME_STEP),
    "n_zero_variance": (MODEL, LAYER, REGION, METRIC),
    "ceiling_low": (REGION, METRIC),
    "svcca_rank_x": (MODEL, LAYER, REGION),
    "svcca_rank_y": (MODEL, LAYER, REGION),
    "null_mean": (MODEL, LAYER, REGION, METRIC),
    "null_p95": (MODEL, LAYER, REGION, METRIC),
    "p_value": (MODEL, LAYER, REGION, METRIC),
    "warning": (MODEL,),
    "cell_error": (MODEL, LAYER, REGION, METRIC),
    "cell_warning": (MODEL, LAYER, REGION, METRIC),
}
#: Optional per-cell message variables (strings, ``""`` = none), merged like the scores.
CELL_MESSAGE_VARS = ("cell_error", "cell_warning")
#: The permutation-null variables (:mod:`workbench.analysis.nulls`), per cell like the scores.
NULL_VARS = ("null_mean", "null_p95", "p_value")
#: Optional per-(model, layer, region) variables, merged like the scores.
LAYER_REGION_VARS = ("svcca_rank_x", "svcca_rank_y")
_MODEL_COORDS = {"family": "", "weights": "", "time_steps": 0}
_REGION_COORDS = {DATASET: "", SPECIES: "", "stimulus_set": "", "data_version": ""}


def region_label(dataset: str, region: str) -> str:
    """The scores' region label, unique across datasets: ``"<dataset>/<region>"``."""
    return f"{dataset}/{region}"


def relative_depths(n_layers: int) -> np.ndarray:
    """``i / (n_layers - 1)`` for each layer position ``i``; a single layer has depth 0."""
    if n_layers < 1:
        raise ValidationError(f"n_layers must be >= 1, found {n_layers}")
    if n_layers == 1:
        return np.zeros(1)
    return np.arange(n_layers) / (n_layers - 1)


def new_scores(
    *, model: str, family: str, weights: str, layer_names: Sequence[str], regions: Sequence[str],
    datasets: Sequence[str], species: Sequence[str], metrics: Sequence[str],
    stimulus_sets: Sequence[str] | None = None, data_versions: Sequence[str] | None = None,
    time_steps: int = 0, n_time_steps: int | None = None, with_ci: bool = False,
    with_zero_variance: bool = False, with_svcca_ranks: bool = False, error: str = "",
    with_null: bool = False, warning: str = "",
) -> xr.Dataset:
    """An all-NaN scores Dataset for one model (``score`` NaN, ``applicable`` False).

    Parameters
    ----------
    model, family, weights : str
        The model's name, family (``"snn"``, ``"cnn"``, ``"vit"``) and weights description.
    layer_names : sequence of str
        The model's layers, in depth order (may be empty for a model that failed to load).
    regions, datasets, species : sequence of str
        One entry per region: label (see :func:`region_label`), dataset name, species.
    metrics : sequence of str
        Metric names.
    stimulus_sets, data_versions : sequence of str, optional
        One stimulus-set fingerprint and one data version per region.
    time_steps : int, default: 0
        T the model ran for (0 for non-spiking models).
    n_time_steps : int, optional
        When given, adds ``score_per_step`` with this many time steps.
    with_ci : bool, default: False
        Adds ``ci_low`` and ``ci_high``.
    with_zero_variance : bool, default: False
        Adds ``n_zero_variance`` (NaN: not checked).
    with_svcca_ranks : bool, default: False
        Adds ``svcca_rank_x`` and ``svcca_rank_y`` (NaN: no SVCCA score).
    error : str, default: ""
        The model's error message, ``""`` when it ran fine.
    with_null : bool, default: False
        Adds ``null_mean``, ``null_p95`` and ``p_value`` (NaN: no null computed).
    warning : str, default: ""
        The model's caveats: its cells have scores, but ... (``""`` when none).
    """
    n_regions = len(regions)
    if not len(datasets) == len(species) == n_regions:
        raise ValidationError(
            f"regions, datasets and species need one entry per region: found {n_regions}, "
            f"{len(datasets)} and {len(species)}"
        )
    stimulus_sets = [""] * n_regions if stimulus_sets is None else list(stimulus_sets)
    data_versions = [""] * n_regions if data_versions is None else list(data_versions)
    n_layers, n_metrics = len(layer_names), len(metrics)
    depth = relative_depths(n_layers) if n_layers else np.zeros(0)
    shape = (1, n_layers, n_regions, n_metrics)
    data_vars = {
        "score": (REQUIRED_VARS["score"], np.full(shape, np.nan)),
        "applicable": (REQUIRED_VARS["applicable"], np.zeros((n_regions, n_metrics), bool)),
        "ceiling": (REQUIRED_VARS["ceiling"], np.full((n_regions, n_metrics), np.nan)),
        "layer_name": (REQUIRED_VARS["layer_name"], np.array([list(layer_names)], dtype=object).reshape(1, n_layers)),
        "relative_depth": (REQUIRED_VARS["relative_depth"], depth[None, :]),
        "error": (REQUIRED_VARS["error"], np.array([error], dtype=object)),
        "warning": (OPTIONAL_VARS["warning"], np.array([warning], dtype=object)),
    }
    optional = (("ci_low", "ci_high") if with_ci else ()) + (("n_zero_variance",) if with_zero_variance else ()) \
        + (NULL_VARS if with_null else ()) + (LAYER_REGION_VARS if with_svcca_ranks else ())
    for name in optional:  # NaN: not computed
        data_vars[name] = (OPTIONAL_VARS[name], np.full(shape[:len(OPTIONAL_VARS[name])], np.nan))
    coords = {
        MODEL: [model], "family": (MODEL, [family]), "weights": (MODEL, [weights]),
        "time_steps": (MODEL, [int(time_steps)]), LAYER: np.arange(n_layers),
        REGION: list(regions), DATASET: (REGION, list(datasets)), SPECIES: (REGION, list(species)),
        "stimulus_set": (REGION, stimulus_sets), "data_version": (REGION, data_versions),
        METRIC: list(metrics),
    }
    if n_time_steps is not None:
        data_vars["score_per_step"] = (OPTIONAL_VARS["score_per_step"], np.full(shape + (int(n_time_steps),), np.nan))
        coords[TIME_STEP] = np.arange(int(n_time_steps))
    return xr.Dataset(data_vars, coords=coords)


def _ordered_union(values_lists) -> list:
    seen: dict = {}
    for values in values_lists:
        for value in values:
            seen.setdefault(value, None)
    return list(seen)


def merge_scores(parts: Sequence[xr.Dataset], *, attrs: dict | None = None) -> xr.Dataset:
    """Merge per-unit scores Datasets into one (union of models, regions and metrics).

    Layers are aligned by position: the merged ``layer`` runs over 0..L_max-1 and a model
    with fewer layers gets ``layer_name=""``, ``relative_depth=NaN`` and NaN scores there.
    A model or region seen in several parts must agree on its metadata (``""`` counts as
    unknown) and ceilings; a score cell set (non-NaN) in two parts raises. A model's ``error`` messages from all parts are joined.

    Parameters
    ----------
    parts : sequence of Dataset
        Scores Datasets, e.g. one per (model, dataset) unit.
    attrs : dict, optional
        Attributes of the result (by default, those of the first part).
    """
    if not parts:
        raise ValidationError("merge_scores needs at least one scores Dataset, found none")
    merged = _Merged(parts)
    for part in parts:
        merged.add(part)
    result = merged.dataset()
    result.attrs = dict(parts[0].attrs if attrs is None else attrs)
    return result


class _Merged:
    """The arrays of :func:`merge_scores`'s result, filled part by part."""

    def __init__(self, parts: Sequence[xr.Dataset]):
        self.models = _ordered_union(p[MODEL].values.tolist() for p in parts)
        self.regions = _ordered_union(p[REGION].values.tolist() for p in parts)
        self.metrics = _ordered_union(p[METRIC].values.tolist() for p in parts)
        self.n_layers = max(p.sizes[LAYER] for p in parts)
        self.steps = _ordered_union(p[TIME_STEP].values.tolist() for p in parts if TIME_STEP in p.dims)
        with_ci = any("ci_low" in p for p in parts)
        with_zero_variance = any("n_zero_variance" in p for p in parts)
        shape = (len(self.models), self.n_layers, len(self.regions), len(self.metrics))
        self.cells = {name: np.full(shape, np.nan) for name in ("score",) + (("ci_low", "ci_high") if with_ci else ())
                      + (("n_zero_variance",) if with_zero_variance else ())
                      + tuple(v for v in NULL_VARS if any(v in p for p in parts))}
        if self.steps:
            self.cells["score_per_step"] = np.full(shape + (len(self.steps),), np.nan)
        self.per_layer_region = {name: np.full(shape[:3], np.nan) for name in LAYER_REGION_VARS
                                 if any(name in p for p in parts)}
        self.cell_messages = {name: np.full(shape, "", dtype=object) for name in CELL_MESSAGE_VARS
                              if any(name in p for p in parts)}
        grid = (len(self.regions), len(self.metrics))
        self.applicable = np.zeros(grid, bool)
        self.ceiling = np.full(grid, np.nan)
        self.ceiling_low = np.full(grid, np.nan) if any("ceiling_low" in p for p in parts) else None
        self.layer_name = np.full((len(self.models), self.n_layers), "", dtype=object)
        self.depth = np.full((len(self.models), self.n_layers), np.nan)
        self.errors: list[list[str]] = [[] for _ in self.models]
        self.cautions: list[list[str]] = [[] for _ in self.models]  # the models' warnings
        self.model_meta = {key: [None] * len(self.models) for key in _MODEL_COORDS}
        self.region_meta = {key: [None] * len(self.regions) for key in _REGION_COORDS}

    def add(self, part: xr.Dataset) -> None:
        """Merge one part in: its models' metadata, its regions' ceilings, its cells."""
        mi = [self.models.index(m) for m in part[MODEL].values.tolist()]
        ri = [self.regions.index(r) for r in part[REGION].values.tolist()]
        ki = [self.metrics.index(k) for k in part[METRIC].values.tolist()]
        self._add_models(part, mi)
        self._add_regions(part, ri, ki)
        self._add_cells(part, mi, ri, ki)

    def _add_models(self, part: xr.Dataset, mi: list[int]) -> None:
        nl = part.sizes[LAYER]
        for local, i in enumerate(mi):
            name = self.models[i]
            for key, default in _MODEL_COORDS.items():
                value = _scalar(part[key].values[local]) if key in part.coords else default
                _agree(self.model_meta, key, i, value, f"model {name!r}")
            names = part["layer_name"].values[local]
            if self.layer_name[i, :nl].any() and list(self.layer_name[i, :nl]) != list(names):
                raise ValidationError(f"merge_scores: model {name!r} has different layer lists in two parts")
            self.layer_name[i, :nl] = names
            self.depth[i, :nl] = part["relative_depth"].values[local]
            message = str(part["error"].values[local])
            if message and message not in self.errors[i]:
                self.errors[i].append(message)
            caveat = str(part["warning"].values[local]) if "warning" in part else ""
            if caveat and caveat not in self.cautions[i]:
                self.cautions[i].append(caveat)

    def _add_regions(self, part: xr.Dataset, ri: list[int], ki: list[int]) -> None:
        for local, i in enumerate(ri):
            for key, default in _REGION_COORDS.items():
                value = _scalar(part[key].values[local]) if key in part.coords else default
                _agree(self.region_meta, key, i, value, f"region {self.regions[i]!r}")
        grid = np.ix_(ri, ki)
        part_ceil = part["ceiling"].values
        self.applicable[grid] |= part["applicable"].values
        current = self.ceiling[grid]
        differ = ~np.isnan(current) & ~np.isnan(part_ceil) & ~np.isclose(current, part_ceil, rtol=1e-9, atol=0)
        if differ.any():
            raise ValidationError(
                f"merge_scores: {int(differ.sum())} ceiling(s) differ between parts for the same "
                "(region, metric); were the parts computed from different data?"
            )
        self.ceiling[grid] = np.where(np.isnan(part_ceil), current, part_ceil)
        if self.ceiling_low is not None and "ceiling_low" in part:  # same data, same bound: first wins
            low = part["ceiling_low"].values
            self.ceiling_low[grid] = np.where(np.isnan(self.ceiling_low[grid]), low, self.ceiling_low[grid])

    def _add_cells(self, part: xr.Dataset, mi: list[int], ri: list[int], ki: list[int]) -> None:
        layers = np.arange(part.sizes[LAYER])
        for name, target in self.cells.items():
            if name not in part:
                continue
            if name == "score_per_step":
                si = [self.steps.index(s) for s in part[TIME_STEP].values.tolist()]
                cell = np.ix_(mi, layers, ri, ki, si)
            else:
                cell = np.ix_(mi, layers, ri, ki)
            target[cell] = _combine(target[cell], part[name].values, name)
        for name, target in self.per_layer_region.items():
            if name in part:
                cell = np.ix_(mi, layers, ri)
                target[cell] = _combine(target[cell], part[name].values, name)
        for name, target in self.cell_messages.items():
            if name in part:  # each cell is scored in one part: its messages come from there
                cell = np.ix_(mi, layers, ri, ki)
                new = part[name].values.astype(str)
                target[cell] = np.where(new != "", new, target[cell]).astype(object)

    def dataset(self) -> xr.Dataset:
        """The merged scores (without attributes)."""
        data_vars = {name: (REQUIRED_VARS.get(name) or OPTIONAL_VARS[name], values)
                     for name, values in self.cells.items()}
        data_vars.update({name: (OPTIONAL_VARS[name], values) for name, values in self.per_layer_region.items()})
        data_vars.update({name: (OPTIONAL_VARS[name], values) for name, values in self.cell_messages.items()})
        if self.ceiling_low is not None:
            data_vars["ceiling_low"] = (OPTIONAL_VARS["ceiling_low"], self.ceiling_low)
        data_vars.update(
            applicable=(REQUIRED_VARS["applicable"], self.applicable),
            ceiling=(REQUIRED_VARS["ceiling"], self.ceiling),
            layer_name=(REQUIRED_VARS["layer_name"], self.layer_name),
            relative_depth=(REQUIRED_VARS["relative_depth"], self.depth),
            error=(REQUIRED_VARS["error"], np.array(["; ".join(e) for e in self.errors], dtype=object)),
            warning=(OPTIONAL_VARS["warning"], np.array(["; ".join(c) for c in self.cautions], dtype=object)),
        )
        coords = {
            MODEL: self.models,
            LAYER: np.arange(self.n_layers),
            REGION: self.regions,
            METRIC: self.metrics,
            **{key: (MODEL, values) for key, values in self.model_meta.items()},
            **{key: (REGION, values) for key, values in self.region_meta.items()},
        }
        if self.steps:
            coords[TIME_STEP] = self.steps
        return xr.Dataset(data_vars, coords=coords)


def _agree(store: dict, key: str, i: int, value, what: str) -> None:
    """Record ``value`` as ``store[key][i]``, unless another value is there ("" means unknown,
    e.g. the family of a model that failed to load: never a conflict)."""
    if store[key][i] is None or store[key][i] == "":
        store[key][i] = value
    elif value != "" and store[key][i] != value:
        raise ValidationError(f"merge_scores: {what} has {key}={store[key][i]!r} in one part and {value!r} in another")


def _scalar(value):
    return value.item() if isinstance(value, np.generic) else value


def _combine(current: np.ndarray, new: np.ndarray, name: str) -> np.ndarray:
    clash = ~np.isnan(current) & ~np.isnan(new)
    if clash.any():
        raise ValidationError(f"merge_scores: {int(clash.sum())} cell(s) of {name!r} are set in two parts")
    return np.where(np.isnan(new), current, new)


def validate_scores(scores: xr.Dataset, name: str = "scores") -> xr.Dataset:
    """Raise unless ``scores`` follows the scores schema; returns it unchanged.

    Checks the required variables and their dims, and that no score is stored where its
    (region, metric) is not applicable.
    """
    if not isinstance(scores, xr.Dataset):
        raise ValidationError(f"{name} must be an xarray.Dataset, found {type(scores).__name__}")
    for var, dims in {**REQUIRED_VARS, **OPTIONAL_VARS}.items():
        if var not in scores:
            if var in REQUIRED_VARS:
                raise ValidationError(
                    f"{name} has no variable {var!r}; expected {sorted(REQUIRED_VARS)} "
                    f"(found {sorted(scores.data_vars)})"
                )
            continue
        if tuple(scores[var].dims) != dims:
            raise ValidationError(f"{name}[{var!r}] has dims {scores[var].dims}; expected {dims}")
    for coord in ("family", DATASET):
        if coord not in scores.coords:
            raise ValidationError(f"{name} has no coordinate {coord!r}; expected it on {MODEL if coord == 'family' else REGION}")
    stray = scores["score"].notnull() & ~scores["applicable"]
    if bool(stray.any()):
        where = stray.any((MODEL, LAYER))
        pairs = [
            (str(r), str(k))
            for r in where[REGION].values
            for k in where[METRIC].values
            if bool(where.sel({REGION: r, METRIC: k}))
        ]
        raise ValidationError(
            f"{name} holds scores for (region, metric) pairs marked not applicable: {pairs[:5]}; "
            "not-applicable cells must be NaN"
        )
    return scores


def stamp(scores: xr.Dataset, *, protocol, versions: dict | None = None) -> xr.Dataset:
    """Set the metadata attributes: ``protocol``, ``protocol_fingerprint``, ``versions``,
    ``seed`` and ``created``; returns a new Dataset."""
    out = scores.copy()
    out.attrs.update(
        protocol=protocol.to_json(),
        protocol_fingerprint=protocol.fingerprint,
        versions=json.dumps(package_versions() if versions is None else versions, sort_keys=True),
        seed=int(protocol.seed),
        created=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    )
    return out


def to_frame(scores: xr.Dataset) -> pd.DataFrame:
    """Tidy table: one row per (model, layer, region, metric) that exists.

    Columns: model, family, weights, layer, layer_name, relative_depth, region, dataset,
    species, metric, applicable, score, ceiling, ci_low, ci_high, n_zero_variance, null_mean,
    null_p95, p_value, error (why this cell has no score), warning (this cell's caveats): each
    row carries only its own (:func:`cell_messages`). Rows
    past a model's last layer are left out; not-applicable rows are kept with NaN score. A model
    that failed on every dataset keeps one row per (region, metric), with an empty layer and its error.
    """
    validate_scores(scores)
    cell_vars = ["score"] + [v for v in ("ci_low", "ci_high", "n_zero_variance") + NULL_VARS if v in scores]
    frame = scores[cell_vars].reset_coords(drop=True).to_dataframe().reset_index()
    for column in ("ci_low", "ci_high", "n_zero_variance") + NULL_VARS:
        if column not in frame:
            frame[column] = np.nan
    per_model = pd.DataFrame(
        {MODEL: scores[MODEL].values, "family": scores["family"].values,
         "weights": scores["weights"].values if "weights" in scores.coords else "",
         "error": scores["error"].values,
         "warning": scores["warning"].values if "warning" in scores else ""}
    )
    per_layer = scores[["layer_name", "relative_depth"]].reset_coords(drop=True).to_dataframe().reset_index()
    per_region = pd.DataFrame(
        {REGION: scores[REGION].values, DATASET: scores[DATASET].values,
         SPECIES: scores[SPECIES].values if SPECIES in scores.coords else ""}
    )
    per_cell = scores[["applicable", "ceiling"]].reset_coords(drop=True).to_dataframe().reset_index()
    frame = (
        frame.merge(per_layer, on=[MODEL, LAYER])
        .merge(per_model, on=MODEL)
        .merge(per_region, on=REGION)
        .merge(per_cell, on=[REGION, METRIC])
    )
    # a model that failed on every dataset has no layer: it keeps one row per (region, metric),
    # with an empty layer, so that its error is in the table too
    no_layer = frame.groupby(MODEL)["layer_name"].transform(lambda names: (names == "").all())
    failed_rows = no_layer & (frame[LAYER] == frame[LAYER].min())
    frame = frame[(frame["layer_name"] != "") | failed_rows].copy()
    if failed_rows.any():
        frame[LAYER] = frame[LAYER].astype("Int64").mask(frame["layer_name"] == "")
    frame = cell_messages(frame, scores)
    columns = [MODEL, "family", "weights", LAYER, "layer_name", "relative_depth", REGION, DATASET,
               SPECIES, METRIC, "applicable", "score", "ceiling", "ci_low", "ci_high", "n_zero_variance",
               *NULL_VARS, "error", "warning"]
    return frame[columns].reset_index(drop=True)


def cell_messages(frame: pd.DataFrame, scores: xr.Dataset) -> pd.DataFrame:
    """Set the ``error`` and ``warning`` columns of :func:`to_frame`'s rows to each cell's own.

    ``error``: the cell's ``cell_error``; for a cell of a unit that raised (or of a model with
    no layer), the model's ``error``. ``warning``: the cell's ``cell_warning``, and its
    zero-variance stimuli (left unscored by the protocol's choice, which is no error, or scored
    without them). Not-applicable cells carry neither (except a model's with no layer).
    Scores written before per-cell messages keep the model's ``error`` on its unscored rows and
    its ``warning`` on its scored rows.
    """
    unscored = frame["score"].isna() & frame["applicable"].astype(bool)
    no_layer = frame["layer_name"] == ""
    if "cell_error" not in scores:
        frame["error"] = frame["error"].where(unscored | no_layer, "")
        frame["warning"] = frame["warning"].where(~unscored, "")
        return frame
    cells = scores[list(CELL_MESSAGE_VARS)].reset_coords(drop=True).to_dataframe().reset_index()
    frame = frame.merge(cells, on=[MODEL, LAYER, REGION, METRIC], how="left")
    frame[list(CELL_MESSAGE_VARS)] = frame[list(CELL_MESSAGE_VARS)].fillna("").astype(str)
    try:
        failed = {(u["model"], u["dataset"]) for u in json.loads(scores.attrs.get("failed_units", "[]"))}
    except (TypeError, ValueError, KeyError):
        failed = set()
    unit_failed = no_layer | (unscored & pd.Series(
        [(m, d) in failed for m, d in zip(frame[MODEL], frame[DATASET])], index=frame.index))
    frame["error"] = frame["cell_error"].where(frame["cell_error"] != "", frame["error"].where(unit_failed, ""))
    policy = zero_variance_policy(scores) or "unscored"
    zero = [zero_variance_reason(n, policy, scored=not u) if n > 0 else ""
            for n, u in zip(frame["n_zero_variance"].fillna(0), unscored)]
    frame["warning"] = ["; ".join(filter(None, pair)) for pair in zip(frame["cell_warning"], zero)]
    applicable = frame["applicable"].astype(bool)  # a layer-wide message concerns its applicable cells
    frame["error"] = frame["error"].where(applicable | no_layer, "")
    frame["warning"] = frame["warning"].where(applicable, "")
    return frame.drop(columns=list(CELL_MESSAGE_VARS))


def _shorten(text: str, width: int = 120) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis where it was cut."""
    return text if len(text) <= width else text[: width - 3] + "..."


def zero_variance_reason(count: float, policy: str, *, scored: bool) -> str:
    """Why a cell with ``count`` zero-variance stimuli has no score (``scored=False``), or what
    its score left out (``scored=True``)."""
    if scored:
        return f"scored without {int(count)} stimuli whose pattern has zero variance"
    return (f"{int(count)} stimuli have a zero-variance pattern, so RSA is undefined "
            f"(protocol zero_variance_stimuli={policy!r})")


def zero_variance_policy(scores: xr.Dataset) -> str:
    """The run's ``Protocol.zero_variance_stimuli`` (from ``attrs["protocol"]``), or ``""``."""
    try:
        return str(json.loads(scores.attrs["protocol"]).get("zero_variance_stimuli", ""))
    except (KeyError, TypeError, ValueError, AttributeError):
        return ""


def unscored_mask(scores: xr.Dataset) -> xr.DataArray:
    """Boolean (model, layer, region, metric): the cell applies and its layer exists, but it
    has no score. Layers past a model's last and not-applicable cells are False."""
    exists = scores["layer_name"].astype(str) != ""
    mask = scores["score"].isnull() & scores["applicable"] & exists
    return mask.transpose(MODEL, LAYER, REGION, METRIC).rename("unscored")


def unscored_cells(scores: xr.Dataset) -> pd.DataFrame:
    """Every cell that is unscored, or scored on fewer stimuli than the region has.

    Cells of units that raised (``scores.attrs["failed_units"]``, reported as failures) are
    left out.

    Returns
    -------
    DataFrame
        One row per such cell, columns ``model``, ``layer``, ``layer_name``, ``region``,
        ``metric``, ``status`` (``"unscored"``, or ``"excluded"``: scored without the
        zero-variance stimuli, as ``Protocol(zero_variance_stimuli="exclude")`` does),
        ``n_zero_variance`` (stimuli with a zero-variance pattern; NaN where not checked) and
        ``reason``.
    """
    validate_scores(scores)
    unscored = unscored_mask(scores).values
    n_zero = (scores["n_zero_variance"].transpose(MODEL, LAYER, REGION, METRIC).values
              if "n_zero_variance" in scores else np.full(unscored.shape, np.nan))
    finite = np.isfinite(scores["score"].transpose(MODEL, LAYER, REGION, METRIC).values)
    excluded = finite & (np.nan_to_num(n_zero) > 0)
    policy = zero_variance_policy(scores)
    try:  # units that raised are listed as failures (scores.attrs["failed_units"]), not here
        failed = {(u["model"], u["dataset"]) for u in json.loads(scores.attrs.get("failed_units", "[]"))}
    except (TypeError, ValueError, KeyError):
        failed = set()
    rows = []
    for status, mask in (("unscored", unscored), ("excluded", excluded)):
        for m, layer, r, k in zip(*np.nonzero(mask)):
            if (str(scores[MODEL].values[m]), str(scores[DATASET].values[r])) in failed:
                continue
            count = n_zero[m, layer, r, k]
            model = str(scores[MODEL].values[m])
            if status == "excluded" or count > 0:
                reason = zero_variance_reason(count, policy or "unscored", scored=status == "excluded")
            elif "cell_error" in scores and str(scores["cell_error"].values[m, layer, r, k]):
                reason = str(scores["cell_error"].values[m, layer, r, k])
            else:
                error = str(scores["error"].values[m])
                reason = f"metric raised; model error: {error}" if error else "no score computed"
            rows.append({
                MODEL: model, LAYER: int(layer), "layer_name": str(scores["layer_name"].values[m, layer]),
                REGION: str(scores[REGION].values[r]), METRIC: str(scores[METRIC].values[k]),
                "status": status, "n_zero_variance": count, "reason": reason,
            })
    columns = [MODEL, LAYER, "layer_name", REGION, METRIC, "status", "n_zero_variance", "reason"]
    return pd.DataFrame(rows, columns=columns)


def unscored_summary(scores: xr.Dataset, *, max_lines: int = 12) -> str:
    """A few lines for the terminal listing unscored cells (and cells scored on fewer stimuli).

    One line per (model, region, metric) with the layers concerned; ``""`` when every
    applicable cell of every existing layer has a score on all stimuli. The ``score``,
    ``report`` and ``demo`` commands print it.
    """
    cells = unscored_cells(scores)
    if cells.empty:
        return ""
    policy = zero_variance_policy(scores) or "unscored"
    lines = []
    for status, title in (("unscored", "unscored cell(s): the metric applies but gave no score"),
                          ("excluded", "cell(s) scored without their zero-variance stimuli")):
        part = cells[cells["status"] == status]
        if part.empty:
            continue
        # the policy decides only the cells with zero-variance stimuli; other causes are their own
        zero = (part["n_zero_variance"].fillna(0) > 0).any()
        lines.append(f"{len(part)} {title}" + (f" (protocol zero_variance_stimuli={policy!r}):" if zero else ":"))
        groups = list(part.groupby([MODEL, REGION, METRIC], sort=False))
        for (model, region, metric), group in groups[:max_lines]:
            layers = ", ".join(group["layer_name"])
            counts = group["n_zero_variance"].dropna()
            detail = ""
            if len(counts) and (counts > 0).any():
                detail = f" ({'/'.join(str(int(c)) for c in counts)} zero-variance stimuli)"
            elif status == "unscored":
                reasons = list(dict.fromkeys(group["reason"]))
                detail = f" ({_shorten(reasons[0])}{'; and other reasons' if len(reasons) > 1 else ''})"
            lines.append(f"  {model} on {region}, {metric}: {layers}{detail}")
        if len(groups) > max_lines:
            lines.append(f"  ... and {len(groups) - max_lines} more (scores.csv lists every cell)")
    return "\n".join(lines)
